package redistest

import (
	"net"
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
