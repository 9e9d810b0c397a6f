package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sentinel is a local redis-server in sentinel mode monitoring one primary.
type Sentinel struct {
	node *localNode
	root string
}

// SentinelConfig tunes a Sentinel. Zero values take the defaults shown.
type SentinelConfig struct {
	MasterSet   string        // name of the monitored set (default "mymaster")
	Quorum      int           // sentinels that must agree the primary is down (default 1)
	DownAfter   time.Duration // unanswered PINGs for this long mark the primary down (default 1s)
	FailoverMax time.Duration // failover-timeout (default 5s)
}

// NewSentinel starts a local sentinel (redis-server --sentinel: the one
// REDIS_SERVER_BIN names, else the one on PATH) on a free loopback port, monitoring primary ("host:port"), closed in
// tb.Cleanup. Start several with the same config for a quorum; they find
// each other through the primary. Only local processes are supported:
// sentinel writes its config file, and containers would need announce
// addresses.
func NewSentinel(tb testing.TB, primary string, cfg SentinelConfig) *Sentinel {
	tb.Helper()
	s, err := startSentinel(primary, cfg)
	if err != nil {
		tb.Fatalf("redistest: sentinel: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func startSentinel(primary string, cfg SentinelConfig) (_ *Sentinel, err error) {
	cfg = cfg.withDefaults()
	host, port, err := net.SplitHostPort(primary)
	if err != nil {
		return nil, err
	}
	bin, err := serverBinary(config{})
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "redistest-sentinel-")
	if err != nil {
		return nil, err
	}
	s := &Sentinel{root: root}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var last error
	for range startAttempts {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(root, "sentinel.conf")
		if err := os.WriteFile(path, []byte(cfg.conf(ports[0], root, host, port)), 0o644); err != nil {
			return nil, err
		}
		n := &localNode{bin: bin, dir: root, port: ports[0], args: []string{path, "--sentinel"}}
		if err := n.spawn(); err != nil {
			return nil, err
		}
		if last = waitReady(ctx, n.addr(), n.gone); last == nil {
			s.node = n
			return s, nil
		}
		_ = n.kill()
		if !strings.Contains(n.logTail(), "already in use") {
			break
		}
	}
	return nil, last
}

// withDefaults fills in what cfg leaves zero.
func (cfg SentinelConfig) withDefaults() SentinelConfig {
	if cfg.MasterSet == "" {
		cfg.MasterSet = "mymaster"
	}
	if cfg.Quorum == 0 {
		cfg.Quorum = 1
	}
	if cfg.DownAfter == 0 {
		cfg.DownAfter = time.Second
	}
	if cfg.FailoverMax == 0 {
		cfg.FailoverMax = 5 * time.Second
	}
	return cfg
}

// conf is the sentinel.conf of a sentinel on port, in dir, monitoring the
// primary at host:primaryPort.
func (cfg SentinelConfig) conf(port int, dir, host, primaryPort string) string {
	return strings.Join([]string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"dir " + dir,
		fmt.Sprintf("sentinel monitor %s %s %s %d", cfg.MasterSet, host, primaryPort, cfg.Quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", cfg.MasterSet, cfg.DownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", cfg.MasterSet, cfg.FailoverMax.Milliseconds()),
		fmt.Sprintf("sentinel parallel-syncs %s 1", cfg.MasterSet),
		"",
	}, "\n")
}

// Addr returns host:port of the sentinel.
func (s *Sentinel) Addr() string { return s.node.addr() }

// Close stops the sentinel and removes its directory.
func (s *Sentinel) Close() error {
	var err error
	if s.node != nil {
		err = s.node.close()
	}
	if rerr := os.RemoveAll(s.root); err == nil {
		err = rerr
	}
	return err
}
