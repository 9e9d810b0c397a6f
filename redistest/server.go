package redistest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// startTimeout bounds starting one server (all nodes of a cluster included).
const startTimeout = 2 * time.Minute

// Option configures [Start] and [NewServer].
type Option func(*config)

type config struct {
	cluster  bool
	replicas bool
	args     []string
	binary   string // WithBinary; empty: REDIS_SERVER_BIN or PATH
	source   Source
	logger   *slog.Logger         // where Start logs
	logf     func(string, ...any) // set by NewServer: log to the test instead
	// shared servers may use REDIS_URL/REDIS_CLUSTER_URL under SourceAuto; a dedicated
	// server may not, since it could not be closed, killed or restarted.
	allowEnv bool
}

// WithCluster makes the server a 3-master cluster without replicas.
func WithCluster() Option { return func(c *config) { c.cluster = true } }

// WithClusterReplicas makes the server a 3-master cluster with one replica
// per master (6 nodes), for failover tests. Local source only.
func WithClusterReplicas() Option {
	return func(c *config) { c.cluster, c.replicas = true, true }
}

// WithArgs adds redis-server arguments, e.g. WithArgs("--appendonly", "yes").
// They come after the package's own arguments, so they win. Ignored by SourceEnv.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithSource picks the source instead of SourceAuto; the server fails to start
// when that source is not available.
func WithSource(s Source) Option { return func(c *config) { c.source = s } }

// WithLogger sets where [Start] logs which source it chose and why it fell back
// (default [slog.Default]). [NewServer] ignores it and logs to its test.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Server is one Redis deployment: a standalone server or a 3-master cluster.
type Server struct {
	source  Source
	cluster bool
	addrs   []string
	base    rueidis.ClientOption // without InitAddress; from the URL for SourceEnv
	nodes   []node               // nil for SourceEnv
	cleanup func() error         // removes temp dirs; may be nil
	desc    string               // for logs: where the server came from

	mu     sync.Mutex
	closed bool
	admin  rueidis.Client // lazily created; used for namespace cleanup
}

// node is one redis-server, started by a local process or a container.
type node interface {
	addr() string
	// kill stops the server at once (SIGKILL), like a crash; idempotent.
	kill() error
	// restart starts the server again on the same port and directory after kill.
	restart(ctx context.Context) error
	// close stops the server for good and releases its resources; idempotent.
	close() error
	// gone reports a non-nil error when the server has exited, e.g. on a port collision.
	gone() error
}

// Start starts a dedicated Redis outside of a test: for programs, demos and Example
// functions. The caller owns the server and must Close it; [Server.Client] connects
// to it.
//
// Sources are chosen as for [NewServer]: with SourceAuto it honours
// REDISTEST_SOURCE, else tries a container of REDIS_IMAGE, then a local
// redis-server. REDIS_URL and REDIS_CLUSTER_URL are not used unless
// WithSource(SourceEnv) or REDISTEST_SOURCE=env asks for them: callers that prefer
// a configured server check REDIS_URL themselves.
//
// Starting is bounded by ctx and by a timeout of two minutes. A fallback from one
// source to the next is logged at Info, the server started at Debug (see
// [WithLogger]); in a program, testcontainers' own messages go to the same logger at
// Debug. A local redis-server dies with the program (on Linux); a container
// is removed only by Close (or by Ryuk, when enabled), so call Close on every path,
// signals included.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	logf, started := cfg.logf, cfg.logf
	if logf == nil {
		log := cfg.logger
		if log == nil {
			log = slog.Default()
		}
		routeContainerLogs(log)
		logf = func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }
		started = func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) }
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	s, err := start(ctx, cfg, logf)
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	started("redistest: dedicated %s", s.desc)
	return s, nil
}

// NewServer starts a dedicated server for this test, closed in tb.Cleanup. Use it for
// tests that kill or restart Redis or need special arguments. With SourceAuto it
// honours REDISTEST_SOURCE, else tries a container, then a local redis-server.
// It is [Start] logging to the test and failing it on error.
func NewServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	// Full slice expression: never write into the caller's backing array.
	s, err := Start(context.Background(), append(opts[:len(opts):len(opts)], func(c *config) { c.logf = tb.Logf })...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("redistest: close: %v", err)
		}
	})
	return s
}

// Addrs returns host:port of the server, or of the three masters of a cluster.
func (s *Server) Addrs() []string { return append([]string(nil), s.addrs...) }

// Cluster reports whether the server is a cluster.
func (s *Server) Cluster() bool { return s.cluster }

// Source returns the source the server came from (never SourceAuto).
func (s *Server) Source() Source { return s.source }

// String describes the server, e.g. "standalone Redis from local redis-server at 127.0.0.1:40101".
func (s *Server) String() string { return s.desc }

// NewClient returns a client for the server, closed in tb.Cleanup. opts adjust the
// client options, e.g. func(o *rueidis.ClientOption) { o.DisableCache = true }.
func (s *Server) NewClient(tb testing.TB, opts ...func(*rueidis.ClientOption)) rueidis.Client {
	tb.Helper()
	c, err := s.Client(opts...)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Client returns a new client for the server; the caller closes it. A standalone
// server gets a single-node client, a cluster a cluster client. opts adjust the
// client options, e.g. func(o *rueidis.ClientOption) { o.DisableCache = true }.
func (s *Server) Client(opts ...func(*rueidis.ClientOption)) (rueidis.Client, error) {
	c, err := s.newClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("redistest: client for %s: %w", s.desc, err)
	}
	return c, nil
}

func (s *Server) newClient(opts ...func(*rueidis.ClientOption)) (rueidis.Client, error) {
	opt := s.base
	opt.InitAddress = s.Addrs()
	// A standalone target is standalone even if it happens to be a cluster node.
	opt.ForceSingleClient = !s.cluster
	for _, f := range opts {
		f(&opt)
	}
	return rueidis.NewClient(opt)
}

// Kill stops every node at once, like a crash: SIGKILL for a local process, docker
// stop without grace period for a container. Files stay; Restart starts the server
// again. Not supported for SourceEnv.
func (s *Server) Kill() error {
	return s.killNodes(s.nodes)
}

// KillNode stops the one node at addr with SIGKILL (a crashed master, say),
// leaving the others running. Local sources only.
func (s *Server) KillNode(addr string) error {
	for _, n := range s.nodes {
		if n.addr() == addr {
			return n.kill()
		}
	}
	return fmt.Errorf("redistest: no node %s in %s", addr, s.desc)
}

// RestartNode starts the node at addr again after KillNode, on the same
// port and directory (a cluster node keeps its nodes.conf: it rejoins).
func (s *Server) RestartNode(ctx context.Context, addr string) error {
	for _, n := range s.nodes {
		if n.addr() == addr {
			if err := n.restart(ctx); err != nil {
				return err
			}
			return waitReady(ctx, addr, n.gone)
		}
	}
	return fmt.Errorf("redistest: no node %s in %s", addr, s.desc)
}

func (s *Server) killNodes(nodes []node) error {
	if nodes == nil {
		return fmt.Errorf("redistest: Kill not supported for %s", s.desc)
	}
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.kill())
	}
	return errors.Join(errs...)
}

// Restart starts the server again on the same ports and directories, killing it
// first if it still runs, and waits until it answers PING (a cluster: until
// cluster_state is ok). Data survives only when persistence was enabled (WithArgs).
func (s *Server) Restart(ctx context.Context) error {
	if s.nodes == nil {
		return fmt.Errorf("redistest: Restart not supported for %s", s.desc)
	}
	if err := s.Kill(); err != nil {
		return err
	}
	for _, n := range s.nodes {
		if err := n.restart(ctx); err != nil {
			return fmt.Errorf("redistest: restart %s: %w", n.addr(), err)
		}
	}
	for _, n := range s.nodes {
		if err := waitReady(ctx, n.addr(), n.gone); err != nil {
			return fmt.Errorf("redistest: restart: %w", err)
		}
	}
	if s.cluster {
		if err := waitClusterOK(ctx, s.addrs); err != nil {
			return fmt.Errorf("redistest: restart: %w", err)
		}
	}
	return nil
}

// Close stops the server and removes its files. Closing twice is a no-op; closing an
// env server only closes the package's own connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	admin := s.admin
	s.admin = nil
	s.mu.Unlock()
	untrack(s)

	if admin != nil {
		admin.Close()
	}
	var errs []error
	for _, n := range s.nodes {
		errs = append(errs, n.close())
	}
	if s.cleanup != nil {
		errs = append(errs, s.cleanup())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s: %w", s.desc, err)
	}
	return nil
}

// adminClient is the package's own client, used to delete namespaces.
func (s *Server) adminClient() (rueidis.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("server closed")
	}
	if s.admin == nil {
		c, err := s.newClient(func(o *rueidis.ClientOption) { o.DisableCache = true })
		if err != nil {
			return nil, err
		}
		s.admin = c
	}
	return s.admin, nil
}

// start picks the source and starts (or, for env, connects to) a server.
func start(ctx context.Context, cfg config, logf func(string, ...any)) (*Server, error) {
	src := cfg.source
	if src == SourceAuto {
		forced, err := forcedSource()
		if err != nil {
			return nil, err
		}
		src = forced
	}
	var s *Server
	var err error
	switch src {
	case SourceEnv:
		s, err = startEnv(ctx, cfg)
	case SourceContainer:
		s, err = startContainer(ctx, cfg)
	case SourceLocal:
		s, err = startLocal(ctx, cfg)
	case SourceAuto:
		s, err = startAuto(ctx, cfg, logf)
	default:
		err = fmt.Errorf("unknown source %v", src)
	}
	if err != nil {
		return nil, err
	}
	track(s)
	return s, nil
}

func startAuto(ctx context.Context, cfg config, logf func(string, ...any)) (*Server, error) {
	var reasons []string
	if cfg.allowEnv {
		v := envURL
		if cfg.cluster {
			v = envClusterURL
		}
		if os.Getenv(v) != "" {
			return startEnv(ctx, cfg)
		}
		reasons = append(reasons, "env: "+v+" is not set")
	}

	if why := containerRuledOut(ctx, cfg); why != "" {
		reasons = append(reasons, "container: "+why)
	} else {
		// The container attempt has its own, shorter budget so a broken Docker setup costs
		// seconds, not minutes, before the local fallback.
		cctx, cancel := context.WithTimeout(ctx, containerBudget)
		s, err := startContainer(cctx, cfg)
		cancel()
		if err == nil {
			return s, nil
		}
		reasons = append(reasons, err.Error()) // already says "container: ..."
		if ctx.Err() != nil {
			// Cancelled (a signal, a deadline): starting a local server now would only fail slower.
			return nil, fmt.Errorf("%s: %w", err, ctx.Err())
		}
	}

	if _, lerr := serverBinary(cfg); lerr != nil {
		reasons = append(reasons, "local: "+lerr.Error())
		return nil, fmt.Errorf("no Redis available; set %s/%s, or make Docker reachable (image from %s), or install redis-server on PATH:\n  %s",
			envURL, envClusterURL, envImage, strings.Join(reasons, "\n  "))
	}
	logf("redistest: falling back to a local redis-server: %s", strings.Join(reasons, "; "))
	return startLocal(ctx, cfg)
}

// containerRuledOut says why SourceAuto must not use a container although
// Docker may be reachable: a binary was named (its version is the one the
// caller wants) and no image was, or the image holds another version. Mixing
// versions would test the wrong server without saying so.
func containerRuledOut(ctx context.Context, cfg config) string {
	if !binaryChosen(cfg) {
		return ""
	}
	if cfg.binary != "" {
		return "WithBinary names a local redis-server"
	}
	if os.Getenv(envImage) == "" {
		return envServerBin + " is set and " + envImage + " is not (the default image holds another server)"
	}
	bin, err := serverBinary(cfg)
	if err != nil {
		return err.Error()
	}
	bv, err := binaryVersion(ctx, bin)
	if err != nil {
		return err.Error()
	}
	iv, err := imageServerVersion(ctx, redisImage())
	if err == nil && iv != (version{}) && iv != bv {
		return fmt.Sprintf("%s holds Redis %s, %s names %s (%s)", redisImage(), iv, envServerBin, bin, bv)
	}
	return ""
}

// waitReady polls PING until it answers, the server is gone, or ctx ends.
func waitReady(ctx context.Context, addr string, gone func() error) error {
	var last error
	for {
		if gone != nil {
			if err := gone(); err != nil {
				return err
			}
		}
		if last = ping(ctx, addr); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer PING: %w (last error: %v)", addr, ctx.Err(), last)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func ping(ctx context.Context, addr string) error {
	c, err := nodeClient(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Do(ctx, c.B().Ping().Build()).Error()
}

// nodeClient talks to exactly one node, cluster-enabled or not.
func nodeClient(addr string) (rueidis.Client, error) {
	return rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{addr},
		ForceSingleClient: true,
		DisableCache:      true,
		DisableRetry:      true,
		Dialer:            netDialer(),
	})
}

// Every server this process started and has not closed, for Main.
var live = struct {
	sync.Mutex
	m map[*Server]struct{}
}{m: map[*Server]struct{}{}}

func track(s *Server) {
	live.Lock()
	live.m[s] = struct{}{}
	live.Unlock()
}

func untrack(s *Server) {
	live.Lock()
	delete(live.m, s)
	live.Unlock()
}

// closeAll closes every live server.
func closeAll() error {
	live.Lock()
	all := make([]*Server, 0, len(live.m))
	for s := range live.m {
		all = append(all, s)
	}
	live.Unlock()
	var errs []error
	for _, s := range all {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
