package redistest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// Target is one Redis deployment handed to a test, with a fresh namespace.
type Target struct {
	Name      string         // "standalone" or "cluster"
	Cluster   bool           // whether the deployment is a Redis Cluster
	Addrs     []string       // host:port of the server (standalone) or of the masters (cluster)
	Namespace string         // fresh, unique per call, e.g. "tq3x7k2mzr4ab"; letters and digits only
	Client    rueidis.Client // a client for this test, closed in tb.Cleanup

	srv *Server
}

// NewClient returns an extra client for the target (e.g. with DisableCache, or a
// separate connection pool), closed in tb.Cleanup.
func (tg *Target) NewClient(tb testing.TB, opts ...func(*rueidis.ClientOption)) rueidis.Client {
	tb.Helper()
	return tg.srv.NewClient(tb, opts...)
}

// Standalone returns the process's shared standalone server, starting it on first
// use (safe for parallel tests), with a fresh namespace whose keys are deleted when
// the test ends.
func Standalone(tb testing.TB) *Target {
	tb.Helper()
	return sharedStandalone.target(tb, false)
}

// Cluster returns the process's shared 3-master cluster, starting it on first use,
// with a fresh namespace whose keys are deleted when the test ends.
func Cluster(tb testing.TB) *Target {
	tb.Helper()
	return sharedCluster.target(tb, true)
}

// Each runs fn as the subtests "standalone" and "cluster", against the shared servers.
// Call t.Parallel inside fn to run them in parallel.
func Each(t *testing.T, fn func(t *testing.T, tg *Target)) {
	t.Helper()
	t.Run("standalone", func(t *testing.T) { fn(t, Standalone(t)) })
	t.Run("cluster", func(t *testing.T) { fn(t, Cluster(t)) })
}

// Main runs the tests, stops every server this process started, and exits with the
// tests' code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := closeAll(); err != nil {
		fmt.Fprintf(os.Stderr, "redistest: stopping servers: %v\n", err)
	}
	os.Exit(code)
}

// sharedServer is one lazily started server shared by all tests of the process.
type sharedServer struct {
	once sync.Once
	srv  *Server
	err  error
}

var sharedStandalone, sharedCluster sharedServer

func (sh *sharedServer) target(tb testing.TB, cluster bool) *Target {
	tb.Helper()
	sh.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		sh.srv, sh.err = start(ctx, config{cluster: cluster, allowEnv: true}, tb.Logf)
		if sh.err == nil {
			tb.Logf("redistest: shared %s", sh.srv.desc)
		}
	})
	if sh.err != nil {
		tb.Fatalf("redistest: shared %s Redis: %v", kind(cluster), sh.err)
	}
	return newTarget(tb, sh.srv)
}

// newTarget hands out s with a fresh namespace, deleted in tb.Cleanup.
func newTarget(tb testing.TB, s *Server) *Target {
	tb.Helper()
	tg := &Target{
		Name:      kind(s.cluster),
		Cluster:   s.cluster,
		Addrs:     s.Addrs(),
		Namespace: newNamespace(),
		srv:       s,
	}
	tb.Cleanup(func() {
		if err := s.deleteNamespace(tg.Namespace); err != nil {
			tb.Logf("redistest: cleaning namespace %s: %v", tg.Namespace, err)
		}
	})
	tg.Client = s.NewClient(tb)
	return tg
}

// newNamespace returns "t" and 12 random base32 characters: 60 bits, letters and digits only.
func newNamespace() string {
	return "t" + strings.ToLower(rand.Text()[:12])
}

// deleteNamespace unlinks every key "<ns>:*". It scans each node the client knows
// (every master of a cluster) and deletes through the client, so each UNLINK is routed
// to the key's slot owner. A server that is gone is not an error worth failing a test.
func (s *Server) deleteNamespace(ns string) error {
	c, err := s.adminClient()
	if err != nil {
		return nil // closed or unreachable: nothing left to keep small
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pattern := ns + ":*"
	for addr, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				return fmt.Errorf("scan %s: %w", addr, err)
			}
			if err := s.unlink(ctx, c, e.Elements); err != nil {
				return err
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return nil
}

func (s *Server) unlink(ctx context.Context, c rueidis.Client, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	var cmds rueidis.Commands
	if s.cluster {
		// One key per UNLINK: the keys of a namespace span many slots.
		cmds = make(rueidis.Commands, 0, len(keys))
		for _, k := range keys {
			cmds = append(cmds, c.B().Unlink().Key(k).Build())
		}
	} else {
		cmds = rueidis.Commands{c.B().Unlink().Key(keys...).Build()}
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("unlink: %w", err)
		}
	}
	return nil
}
