package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// serverArgs are the redis-server arguments shared by local processes and containers:
// loopback only, no persistence, and for a cluster node an explicit bus port (the
// default port+10000 may be taken or above 65535 for a kernel-chosen port). A
// server before Redis 7.0 (v.legacyCluster) has no --cluster-port: its bus port
// is port+10000, and nodePorts chose the port for that.
func serverArgs(port, busPort int, cluster bool, v version, extra []string) []string {
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
	}
	if cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
		)
		if !v.legacyCluster() {
			args = append(args, "--cluster-port", strconv.Itoa(busPort))
		}
	}
	return append(args, extra...)
}

// localNode is a redis-server child process.
type localNode struct {
	bin     string
	dir     string // working dir: nodes.conf, AOF, redis.log
	port    int
	busPort int // cluster bus; unused for standalone
	args    []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
}

func (n *localNode) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

func (n *localNode) spawn() error {
	logf, err := os.OpenFile(filepath.Join(n.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(n.bin, n.args...)
	cmd.Dir = n.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed server carries no information
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	return nil
}

func (n *localNode) gone() error {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	select {
	case <-done:
		return fmt.Errorf("redis-server on port %d exited: %s", n.port, n.logTail())
	default:
		return nil
	}
}

func (n *localNode) kill() error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-done
	return nil
}

func (n *localNode) restart(context.Context) error { return n.spawn() }

func (n *localNode) close() error { return n.kill() }

// logTail returns the end of the server's log, for error messages.
func (n *localNode) logTail() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "redis.log"))
	b = bytes.TrimSpace(b)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return string(b)
}

// startLocal starts one redis-server (or three cluster nodes) in a temp dir.
func startLocal(ctx context.Context, cfg config) (_ *Server, err error) {
	bin, err := serverBinary(cfg)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	v, err := binaryVersion(ctx, bin)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	root, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	s := &Server{
		source:  SourceLocal,
		cluster: cfg.cluster,
		cleanup: func() error { return os.RemoveAll(root) },
	}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	var members []clusterMember
	count := nodeCount(cfg.cluster)
	if cfg.replicas {
		count = 2 * count
	}
	for i := range count {
		n, err := startLocalNode(ctx, bin, v, filepath.Join(root, "node"+strconv.Itoa(i)), cfg)
		if err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		s.nodes = append(s.nodes, n)
		s.addrs = append(s.addrs, n.addr())
		members = append(members, clusterMember{addr: n.addr(), port: n.port, busPort: n.busPort})
	}
	if cfg.cluster {
		masters := members[:len(slotRanges)]
		if err := formCluster(ctx, masters); err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		if cfg.replicas {
			if err := addReplicas(ctx, masters, members[len(slotRanges):]); err != nil {
				return nil, fmt.Errorf("local: %w", err)
			}
		}
	}
	s.desc = fmt.Sprintf("%s Redis %s from local %s at %s", kind(cfg.cluster), v, bin, strings.Join(s.addrs, ","))
	return s, nil
}

// startLocalNode starts a node on fresh ports, retrying when another process took them.
func startLocalNode(ctx context.Context, bin string, v version, dir string, cfg config) (*localNode, error) {
	var last error
	for range startAttempts {
		ports, err := nodePorts(cfg.cluster, v)
		if err != nil {
			return nil, err
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		n := &localNode{bin: bin, dir: dir, port: ports[0], busPort: ports[1]}
		n.args = append(serverArgs(ports[0], ports[1], cfg.cluster, v, cfg.args), "--dir", dir)
		if err := n.spawn(); err != nil {
			return nil, err
		}
		last = waitReady(ctx, n.addr(), n.gone)
		if last == nil {
			return n, nil
		}
		_ = n.kill()
		if ctx.Err() != nil || !strings.Contains(n.logTail(), "already in use") {
			return nil, last
		}
	}
	return nil, last
}

func nodeCount(cluster bool) int {
	if cluster {
		return 3
	}
	return 1
}

func kind(cluster bool) string {
	if cluster {
		return "cluster"
	}
	return "standalone"
}
