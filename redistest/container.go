package redistest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

const (
	// containerBudget bounds the whole container attempt under SourceAuto (probe,
	// pull, start of every node): a broken Docker setup must not stall every test
	// binary for minutes before the local fallback.
	containerBudget = 30 * time.Second
	// pullTimeout bounds the single pull attempt of a missing image.
	pullTimeout = 20 * time.Second
	// dockerProbeTimeout bounds the check that Docker answers at all.
	dockerProbeTimeout = 5 * time.Second
	// containerLabel marks containers started by this package (docker ps --filter label=...).
	containerLabel = "dev.streamfold.redistest"
)

// containerNode is a redis-server in a container on the host network, so the port it
// listens on (and announces to cluster peers) is the port the test connects to.
type containerNode struct {
	ctr  *testcontainers.DockerContainer
	port int

	mu        sync.Mutex
	lastCheck time.Time
}

func (n *containerNode) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// gone asks Docker whether the container still runs, at most every 250 ms since
// waitReady calls it between PING attempts.
func (n *containerNode) gone() error {
	n.mu.Lock()
	if time.Since(n.lastCheck) < 250*time.Millisecond {
		n.mu.Unlock()
		return nil
	}
	n.lastCheck = time.Now()
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := n.ctr.State(ctx)
	if err != nil || st.Running {
		return nil // unknown: let the PING deadline decide
	}
	return fmt.Errorf("container redis-server on port %d exited (%s): %s", n.port, st.Status, n.logTail())
}

func (n *containerNode) kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var zero time.Duration
	return n.ctr.Stop(ctx, &zero)
}

func (n *containerNode) restart(ctx context.Context) error { return n.ctr.Start(ctx) }

func (n *containerNode) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.ctr.Terminate(ctx, testcontainers.StopTimeout(0))
}

func (n *containerNode) logTail() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := n.ctr.Logs(ctx)
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = s[len(s)-600:]
	}
	return s
}

// startContainer starts one container (three for a cluster) of REDIS_IMAGE.
func startContainer(ctx context.Context, cfg config) (_ *Server, err error) {
	if cfg.replicas {
		return nil, errors.New("container: cluster replicas are supported by the local source only")
	}
	image := redisImage()
	if err := ensureImage(ctx, image); err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	v, err := imageServerVersion(ctx, image)
	if err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	s := &Server{source: SourceContainer, cluster: cfg.cluster}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	var members []clusterMember
	for range nodeCount(cfg.cluster) {
		n, busPort, err := startContainerNode(ctx, image, v, cfg)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", image, err)
		}
		s.nodes = append(s.nodes, n)
		s.addrs = append(s.addrs, n.addr())
		members = append(members, clusterMember{addr: n.addr(), port: n.port, busPort: busPort})
	}
	if cfg.cluster {
		if err := formCluster(ctx, members); err != nil {
			return nil, fmt.Errorf("container %s: %w", image, err)
		}
	}
	vs := ""
	if v != (version{}) {
		vs = " " + v.String()
	}
	s.desc = fmt.Sprintf("%s Redis%s from container image %s at %s", kind(cfg.cluster), vs, image, strings.Join(s.addrs, ","))
	return s, nil
}

// withDocker calls fn with a Docker client and a context bounded by
// dockerProbeTimeout (for quick questions), closing the client after; a
// Docker that does not answer is an error.
func withDocker(ctx context.Context, fn func(pctx context.Context, cli *testcontainers.DockerClient) error) (err error) {
	defer func() {
		// testcontainers panics in some setups without a Docker socket.
		if r := recover(); r != nil {
			err = fmt.Errorf("docker not reachable: %v", r)
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, dockerProbeTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(pctx)
	if err != nil {
		return fmt.Errorf("docker not reachable: %w", err)
	}
	defer cli.Close()
	return fn(pctx, cli)
}

// ensureImage checks that Docker answers and the image is present, pulling it once
// (no retries: without a registry a retry loop would only burn the time budget).
func ensureImage(ctx context.Context, image string) error {
	return withDocker(ctx, func(_ context.Context, cli *testcontainers.DockerClient) error {
		if _, err := cli.ImageInspect(ctx, image); err == nil {
			return nil
		}
		pullCtx, cancelPull := context.WithTimeout(ctx, pullTimeout)
		defer cancelPull()
		resp, err := cli.ImagePull(pullCtx, image, client.ImagePullOptions{})
		if err == nil {
			err = resp.Wait(pullCtx)
			resp.Close()
		}
		if err != nil {
			return fmt.Errorf("image %s not present and pull failed: pull it or build one (any image whose entrypoint runs redis-server, e.g. FROM redis:7), set %s to it, or unset %s to use a local redis-server: %w", image, envImage, envImage, err)
		}
		if _, err := cli.ImageInspect(ctx, image); err != nil {
			return fmt.Errorf("image %s: %w", image, err)
		}
		return nil
	})
}

// imageServerVersion reads the server version an image declares (see
// imageVersion); the zero version when it declares none.
func imageServerVersion(ctx context.Context, image string) (v version, err error) {
	err = withDocker(ctx, func(pctx context.Context, cli *testcontainers.DockerClient) error {
		info, err := cli.ImageInspect(pctx, image)
		if err != nil {
			return fmt.Errorf("image %s: %w", image, err)
		}
		if info.Config != nil {
			v = imageVersion(info.Config.Labels, info.Config.Env)
		}
		return nil
	})
	return v, err
}

// startContainerNode runs one node on fresh ports, retrying when the ports were taken
// between choosing and binding them. It returns the node and its cluster bus port.
func startContainerNode(ctx context.Context, image string, v version, cfg config) (*containerNode, int, error) {
	var last error
	for range startAttempts {
		ports, err := nodePorts(cfg.cluster, v)
		if err != nil {
			return nil, 0, err
		}
		// Arguments only, starting with "--": the official image's entrypoint prepends
		// redis-server to them, and an image whose ENTRYPOINT is redis-server takes them as is.
		ctr, err := testcontainers.Run(ctx, image,
			testcontainers.WithLogger(tclog.NewNoopLogger()),
			testcontainers.WithCmd(serverArgs(ports[0], ports[1], cfg.cluster, v, cfg.args)...),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "host" }),
			testcontainers.WithLabels(map[string]string{containerLabel: "1"}),
		)
		if err != nil {
			if ctr != nil {
				_ = ctr.Terminate(context.Background(), testcontainers.StopTimeout(0))
			}
			if strings.Contains(err.Error(), "reaper") && os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
				err = fmt.Errorf("%w (without a registry set TESTCONTAINERS_RYUK_DISABLED=true)", err)
			}
			return nil, 0, err
		}
		n := &containerNode{ctr: ctr, port: ports[0]}
		last = waitReady(ctx, n.addr(), n.gone)
		if last == nil {
			return n, ports[1], nil
		}
		logs := n.logTail()
		_ = n.close()
		if ctx.Err() != nil || !strings.Contains(logs, "already in use") {
			return nil, 0, last
		}
	}
	return nil, 0, last
}

// tcLogOnce guards the one change Start makes to testcontainers' process-wide
// default logger.
var tcLogOnce sync.Once

// routeContainerLogs sends testcontainers' default logger (otherwise a Docker
// banner on stderr, in the middle of a program's output) to l at Debug, once per
// process, at the first Start. Programs only: in a test binary testcontainers keeps
// its own behaviour (its output shows with go test -v).
func routeContainerLogs(l *slog.Logger) {
	if testing.Testing() {
		return
	}
	tcLogOnce.Do(func() { tclog.SetDefault(slogPrintf{l}) })
}

// slogPrintf adapts a slog.Logger to testcontainers' Printf logger.
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, args ...any) {
	p.l.Debug(strings.TrimSpace(fmt.Sprintf(format, args...)))
}
