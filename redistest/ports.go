package redistest

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"time"
)

// freePorts returns n distinct free loopback ports. They are released before
// redis-server binds them, so another process may take one first: callers retry with
// fresh ports when the server fails to start.
func freePorts(n int) ([]int, error) {
	// Hold all listeners until every port is chosen so the kernel cannot hand out the same one twice.
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func netDialer() net.Dialer { return net.Dialer{Timeout: 2 * time.Second} }

// startAttempts is how often a node is started on fresh ports before giving up.
const startAttempts = 4

// nodePorts returns a node's port and cluster bus port. A cluster node of a
// server before Redis 7.0 has no --cluster-port: its bus listens on port+10000,
// so both must be free and the port at most 55535.
func nodePorts(cluster bool, v version) ([]int, error) {
	if !cluster || !v.legacyCluster() {
		return freePorts(2)
	}
	for range 200 {
		// Below the usual ephemeral range (32768+), where the kernel hands out
		// ports of its own; the bus port lands in 30000-39999.
		p := 20000 + rand.IntN(10000)
		a, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+legacyBusOffset)))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return []int{p, p + legacyBusOffset}, nil
	}
	return nil, errors.New("no free port pair (p, p+10000) for a cluster node before Redis 7.0")
}

// legacyBusOffset is the distance of a cluster node's bus port from its port
// before Redis 7.0 (CLUSTER_PORT_INCR).
const legacyBusOffset = 10000
