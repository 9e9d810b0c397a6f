package projection

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// StartPosition says where a projection's new consumer groups start.
type StartPosition int

const (
	// FromBeginning processes every event still in the partition logs.
	FromBeginning StartPosition = iota
	// FromNow processes only events appended after the group is created
	// (the first run of the projection). Combine with Rebuild for history.
	FromNow
)

// Option configures a Runner.
type Option func(*options)

type options struct {
	instance        string
	start           StartPosition
	batch           int
	block           time.Duration
	workers         int
	maxInFlight     int
	leaseTTL        time.Duration
	shutdownTimeout time.Duration
	pruneIdle       time.Duration
	middleware      []Middleware
	logger          *slog.Logger
	tracerProvider  trace.TracerProvider
	meterProvider   metric.MeterProvider
}

// WithInstanceID names this runner instance: its consumer name in the
// groups and the owner in its leases (default: hostname, pid and a random
// suffix). A restarted instance with the same id takes its leases back at
// once instead of waiting for them to expire; give every live process its
// own id (a pod name, say), since two processes with one id keep fencing
// each other.
func WithInstanceID(id string) Option { return func(o *options) { o.instance = id } }

// WithStart sets where new consumer groups start (default FromBeginning).
func WithStart(s StartPosition) Option { return func(o *options) { o.start = s } }

// WithBatch sets the COUNT of each read (default 256).
func WithBatch(n int) Option { return func(o *options) { o.batch = n } }

// WithBlock sets how long an idle partition reader blocks in XREAD before
// looking again (default 2s). A stop unblocks it at once (CLIENT UNBLOCK).
func WithBlock(d time.Duration) Option { return func(o *options) { o.block = d } }

// WithWorkers sets the number of handler goroutines of the runner (default
// 32). Events are spread over them by entity, so one entity's events are
// handled in order by one worker.
func WithWorkers(n int) Option { return func(o *options) { o.workers = n } }

// WithMaxInFlight bounds the events read but not yet acked, per partition
// (default 1024).
func WithMaxInFlight(n int) Option { return func(o *options) { o.maxInFlight = n } }

// WithLeaseTTL sets the partition lease TTL (default 10s). Leases are
// renewed every TTL/3 or every second, whichever is shorter; a standby
// takes a partition over at most about one TTL (plus a second) after its
// holder died, and about a second after it stopped gracefully.
func WithLeaseTTL(d time.Duration) Option { return func(o *options) { o.leaseTTL = d } }

// WithShutdownTimeout bounds the graceful stop (default 30s): in-flight
// handlers past it see their context cancelled and their events stay
// pending for the next holder.
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// WithPruneIdle sets after how long without activity another consumer with
// no pending entries is deleted from a group (default 1h).
func WithPruneIdle(d time.Duration) Option { return func(o *options) { o.pruneIdle = d } }

// WithMiddleware decorates the projection's handler (first = outermost).
func WithMiddleware(mws ...Middleware) Option {
	return func(o *options) { o.middleware = append(o.middleware, mws...) }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func (o *options) setDefaults() {
	if o.instance == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.instance = host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
	}
	if o.batch == 0 {
		o.batch = 256
	}
	if o.block == 0 {
		o.block = 2 * time.Second
	}
	if o.workers == 0 {
		o.workers = 32
	}
	if o.maxInFlight == 0 {
		o.maxInFlight = 1024
	}
	if o.leaseTTL == 0 {
		o.leaseTTL = 10 * time.Second
	}
	if o.shutdownTimeout == 0 {
		o.shutdownTimeout = 30 * time.Second
	}
	if o.pruneIdle == 0 {
		o.pruneIdle = time.Hour
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
}

// validate reports every option that cannot be applied, each by its
// option's name, joined.
func (o *options) validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, invalid(format, args...)) }
	if o.instance == "" || len(o.instance) > 200 {
		fail("WithInstanceID(%q): want 1 to 200 bytes", o.instance)
	} else if strings.ContainsFunc(o.instance, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		fail("WithInstanceID(%q): no spaces or control characters", o.instance)
	}
	if o.start != FromBeginning && o.start != FromNow {
		fail("WithStart(%d): not a start position", o.start)
	}
	if o.batch < 1 {
		fail("WithBatch(%d): must be positive", o.batch)
	}
	if o.workers < 1 {
		fail("WithWorkers(%d): must be positive", o.workers)
	}
	if o.maxInFlight < 1 {
		fail("WithMaxInFlight(%d): must be positive", o.maxInFlight)
	}
	if o.block < time.Millisecond {
		fail("WithBlock(%v): at least 1ms", o.block)
	}
	if o.leaseTTL < 100*time.Millisecond {
		fail("WithLeaseTTL(%v): at least 100ms", o.leaseTTL)
	}
	if o.shutdownTimeout <= 0 {
		fail("WithShutdownTimeout(%v): must be positive", o.shutdownTimeout)
	}
	if o.pruneIdle <= 0 {
		fail("WithPruneIdle(%v): must be positive", o.pruneIdle)
	}
	return errors.Join(errs...)
}
