package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/testcontainers/testcontainers-go"
)

func TestMain(m *testing.M) { Main(m) }

// newTestServer starts a dedicated server from src, or skips when src is not
// available here. In CI, and whenever REDIS_IMAGE names an image while Docker is
// reachable, an unavailable container is a failure: that path must be exercised.
func newTestServer(t *testing.T, src Source, opts ...Option) *Server {
	t.Helper()
	switch src {
	case SourceEnv:
		name := envURL
		if isCluster(opts) {
			name = envClusterURL
		}
		if os.Getenv(name) == "" {
			t.Skipf("%s not set", name)
		}
	case SourceLocal:
		if _, err := exec.LookPath("redis-server"); err != nil {
			skipOrFailInCI(t, "redis-server not on PATH")
		}
	case SourceContainer:
		ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		cancel()
		if err != nil {
			skipOrFailInCI(t, "docker not reachable: "+err.Error())
		} else {
			cli.Close()
		}
		if os.Getenv(envImage) == "" {
			// The default image needs a registry; only a configured image must work.
			ctx, cancel := context.WithTimeout(context.Background(), containerBudget)
			defer cancel()
			if err := ensureImage(ctx, redisImage()); err != nil {
				t.Skipf("REDIS_IMAGE not set and default image unavailable: %v", err)
			}
		}
	}
	return NewServer(t, append(opts, WithSource(src))...)
}

func skipOrFailInCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

func isCluster(opts []Option) bool {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c.cluster
}

var sources = []Source{SourceEnv, SourceContainer, SourceLocal}

func TestServerSources(t *testing.T) {
	t.Parallel()
	for _, src := range sources {
		t.Run(src.String(), func(t *testing.T) {
			t.Parallel()
			t.Run("standalone", func(t *testing.T) {
				t.Parallel()
				s := newTestServer(t, src)
				checkStandalone(t, s, src)
			})
			t.Run("cluster", func(t *testing.T) {
				t.Parallel()
				s := newTestServer(t, src, WithCluster())
				checkCluster(t, s, src)
			})
		})
	}
}

func checkStandalone(t *testing.T, s *Server, src Source) {
	t.Helper()
	if s.Source() != src || s.Cluster() || len(s.Addrs()) != 1 {
		t.Fatalf("server %v: source %v cluster %v addrs %v", s, s.Source(), s.Cluster(), s.Addrs())
	}
	ctx := context.Background()
	c := s.NewClient(t)
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	key := newNamespace() + ":k"
	t.Cleanup(func() { c.Do(context.Background(), c.B().Unlink().Key(key).Build()) })
	if err := c.Do(ctx, c.B().Set().Key(key).Value("v").Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Do(ctx, c.B().Get().Key(key).Build()).ToString(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v", got, err)
	}
}

// slotKeys are keys whose hash tags fall in the three masters' slot ranges
// ("{b}" 3300, "{c}" 7365, "{a}" 15495).
var slotKeys = []string{"{b}", "{c}", "{a}"}

func checkCluster(t *testing.T, s *Server, src Source) {
	t.Helper()
	if s.Source() != src || !s.Cluster() || len(s.Addrs()) != 3 {
		t.Fatalf("server %v: source %v cluster %v addrs %v", s, s.Source(), s.Cluster(), s.Addrs())
	}
	ctx := context.Background()
	c := s.NewClient(t)
	ns := newNamespace()
	var keys []string
	for i, tag := range slotKeys {
		key := ns + ":" + tag
		keys = append(keys, key)
		slot, err := c.Do(ctx, c.B().ClusterKeyslot().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT: %v", err)
		}
		if r := slotRanges[i]; slot < r[0] || slot > r[1] {
			t.Fatalf("key %s in slot %d, want range %v", key, slot, r)
		}
		if err := c.Do(ctx, c.B().Set().Key(key).Value(tag).Build()).Error(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
	}
	t.Cleanup(func() {
		for _, k := range keys {
			c.Do(context.Background(), c.B().Unlink().Key(k).Build())
		}
	})
	for i, key := range keys {
		if got, err := c.Do(ctx, c.B().Get().Key(key).Build()).ToString(); err != nil || got != slotKeys[i] {
			t.Fatalf("GET %s = %q, %v", key, got, err)
		}
	}
	for _, addr := range s.Addrs() {
		info, err := clusterInfo(ctx, addr)
		if err != nil {
			t.Fatalf("CLUSTER INFO %s: %v", addr, err)
		}
		if info["cluster_state"] != "ok" || info["cluster_size"] != "3" || info["cluster_slots_assigned"] != "16384" {
			t.Fatalf("CLUSTER INFO %s: %v", addr, info)
		}
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	for _, src := range []Source{SourceLocal, SourceContainer} {
		t.Run(src.String(), func(t *testing.T) {
			t.Parallel()
			t.Run("standalone", func(t *testing.T) {
				t.Parallel()
				// AOF with fsync always: a key written before SIGKILL survives the restart.
				s := newTestServer(t, src, WithArgs("--appendonly", "yes", "--appendfsync", "always"))
				ctx := context.Background()
				c := s.NewClient(t, func(o *rueidis.ClientOption) { o.DisableCache = true })
				if err := c.Do(ctx, c.B().Set().Key("durable").Value("1").Build()).Error(); err != nil {
					t.Fatal(err)
				}
				killAndRestart(t, s)
				got, err := c.Do(ctx, c.B().Get().Key("durable").Build()).ToString()
				if err != nil || got != "1" {
					t.Fatalf("after restart GET = %q, %v", got, err)
				}
			})
			t.Run("cluster", func(t *testing.T) {
				if src == SourceContainer {
					t.Skip("the container cluster restart adds seconds and no coverage the local one lacks")
				}
				t.Parallel()
				s := newTestServer(t, src, WithCluster())
				killAndRestart(t, s)
				checkCluster(t, s, src)
			})
		})
	}
}

func killAndRestart(t *testing.T, s *Server) {
	t.Helper()
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	for _, addr := range s.Addrs() {
		if err := ping(context.Background(), addr); err == nil {
			t.Fatalf("%s answers PING after Kill", addr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	t.Logf("restart took %v", time.Since(start).Round(time.Millisecond))
	for _, addr := range s.Addrs() {
		if err := ping(ctx, addr); err != nil {
			t.Fatalf("%s after Restart: %v", addr, err)
		}
	}
}

func TestEnvSourceKillUnsupported(t *testing.T) {
	t.Parallel()
	s := &Server{source: SourceEnv, desc: "env"}
	if s.Kill() == nil || s.Restart(context.Background()) == nil {
		t.Fatal("Kill/Restart of an env server must fail")
	}
}

var namespaceRE = regexp.MustCompile(`^[A-Za-z0-9]+$`)

func TestNamespaceUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 10000 {
		ns := newNamespace()
		if !namespaceRE.MatchString(ns) || seen[ns] {
			t.Fatalf("namespace %q: bad or repeated", ns)
		}
		seen[ns] = true
	}
}

// TestNamespaceCleanup checks, on both shared servers, that targets get distinct
// namespaces and that a namespace's keys are gone once its test has finished,
// while other keys stay.
func TestNamespaceCleanup(t *testing.T) {
	t.Parallel()
	type used struct {
		srv *Server
		ns  string
	}
	var mu sync.Mutex
	var all []used
	var keep []used

	t.Run("group", func(t *testing.T) {
		Each(t, func(t *testing.T, tg *Target) {
			t.Parallel()
			other := Standalone(t)
			if tg.Cluster {
				other = Cluster(t)
			}
			if tg.Namespace == other.Namespace || !namespaceRE.MatchString(tg.Namespace) {
				t.Fatalf("namespaces %q and %q", tg.Namespace, other.Namespace)
			}
			if tg.Name != kind(tg.Cluster) || len(tg.Addrs) != nodeCount(tg.Cluster) {
				t.Fatalf("target %+v", tg)
			}
			ctx := context.Background()
			// 100 keys span many slots, so a cluster cleanup must reach every master.
			cmds := make(rueidis.Commands, 0, 100)
			for i := range 100 {
				cmds = append(cmds, tg.Client.B().Set().Key(fmt.Sprintf("%s:k%d", tg.Namespace, i)).Value("v").Build())
			}
			for _, r := range tg.Client.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					t.Fatal(err)
				}
			}
			// A key outside the namespace, in a namespace of a still-running target.
			sub := tg.Namespace + "x"
			extra := tg.NewClient(t, func(o *rueidis.ClientOption) { o.DisableCache = true })
			if err := extra.Do(ctx, extra.B().Set().Key(sub+":k").Value("v").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			all = append(all, used{tg.srv, tg.Namespace}, used{other.srv, other.Namespace})
			keep = append(keep, used{tg.srv, sub})
			mu.Unlock()
		})
	})
	if len(all) != 4 {
		t.Fatalf("ran %d targets, want 4", len(all))
	}
	for _, u := range all {
		if n := countKeys(t, u.srv, u.ns); n != 0 {
			t.Errorf("%s: %d keys of namespace %s left after the test", u.srv, n, u.ns)
		}
	}
	for _, u := range keep {
		if n := countKeys(t, u.srv, u.ns); n != 1 {
			t.Errorf("%s: %d keys of namespace %s, want 1 (not ours to delete)", u.srv, n, u.ns)
		}
		if err := u.srv.deleteNamespace(u.ns); err != nil {
			t.Error(err)
		}
	}
}

func countKeys(t *testing.T, s *Server, ns string) int {
	t.Helper()
	c, err := s.newClient(func(o *rueidis.ClientOption) { o.DisableCache = true })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 0
	for _, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(context.Background(), node.B().Scan().Cursor(cursor).Match(ns+":*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				t.Fatal(err)
			}
			n += len(e.Elements)
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return n
}

func TestParseSeeds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw      string
		addrs    []string
		password string
	}{
		{"redis://127.0.0.1:7000", []string{"127.0.0.1:7000"}, ""},
		{"redis://:pw@h1:7000, h2:7001,redis://h3:7002", []string{"h1:7000", "h2:7001", "h3:7002"}, "pw"},
		{"h1:1,h2:2", []string{"h1:1", "h2:2"}, ""},
	}
	for _, tt := range tests {
		opt, err := parseSeeds(tt.raw)
		if err != nil {
			t.Fatalf("%q: %v", tt.raw, err)
		}
		if fmt.Sprint(opt.InitAddress) != fmt.Sprint(tt.addrs) || opt.Password != tt.password {
			t.Errorf("%q: addrs %v password %q, want %v %q", tt.raw, opt.InitAddress, opt.Password, tt.addrs, tt.password)
		}
	}
	if _, err := parseSeeds(" , "); err == nil {
		t.Error("empty seed list accepted")
	}
	if _, err := parseSeeds("http://x:1"); err == nil {
		t.Error("http URL accepted")
	}
}

// TestForcedSource is not parallel: it sets REDISTEST_SOURCE.
func TestForcedSource(t *testing.T) {
	tests := []struct {
		env  string
		want Source
		bad  bool
	}{
		{"", SourceAuto, false},
		{"env", SourceEnv, false},
		{"Container", SourceContainer, false},
		{"local", SourceLocal, false},
		{"docker", SourceAuto, true},
	}
	for _, tt := range tests {
		t.Setenv(envSource, tt.env)
		got, err := forcedSource()
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("%s=%q: %v, %v", envSource, tt.env, got, err)
		}
		if !tt.bad && tt.env != "" && got.String() != strings.ToLower(tt.env) {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}
