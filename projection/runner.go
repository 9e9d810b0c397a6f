package projection

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
)

// The runner's parts live a file each: lease.go (leases and the
// maintenance round that takes and renews them), reader.go (a held
// partition's read loop), acks.go, dispatch.go (workers and their tasks),
// parking.go (the runner's side of dead letters), verify.go (forged log
// entries), heal.go (a Redis that lost the projection's state), groups.go,
// scripts.go (the Go side of lua/*.lua), status.go, wait.go, telemetry.go.

// unit is one partition of one category.
type unit struct {
	cat string
	p   int
}

// Runner runs one projection in this process: it competes with the
// projection's other instances for partition leases, reads the partitions it
// holds through the projection's consumer groups and hands the events to
// the handler. Create it with NewRunner, start it with Run.
type Runner struct {
	store   *eventstore.Store
	client  rueidis.Client
	proj    Projection
	handler Handler
	batch   BatchHandler // p.Handler when it is one (see BatchHandler)
	opts    options
	tel     telemetry
	keys    keys
	sc      scripts
	log     *slog.Logger

	running atomic.Bool

	mu    sync.Mutex
	units []unit
	parts map[unit]*partition

	workers []chan task

	// acked is closed and replaced whenever acks reach Redis (WaitFor).
	ackMu sync.Mutex
	acked chan struct{}

	// Healing a Redis that lost the projection's state (see heal).
	healMu     sync.Mutex
	healWarned time.Time   // last WARN of a heal
	healWanted atomic.Bool // a partition found its lease state lost
	failOnce   sync.Once
	failed     chan struct{} // closed by fail: Run stops and returns failErr
	failErr    error

	warns    warnLimiter
	lastHeld []unit // maintain's goroutine only: see logHeld
}

// NewRunner returns a runner of p over store.
func NewRunner(store *eventstore.Store, p Projection, opts ...Option) (*Runner, error) {
	if store == nil {
		return nil, invalid("nil store")
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	o.setDefaults()
	if err := errors.Join(p.Validate(), o.validate()); err != nil {
		return nil, err
	}
	h := Chain(Chain(p.Handler, Recover()), o.middleware...)
	bh, _ := p.Handler.(BatchHandler)
	r := &Runner{
		store:   store,
		client:  store.Client(),
		proj:    p,
		handler: h,
		batch:   bh,
		opts:    o,
		keys:    keys{ks: store.Keys(), name: p.Name},
		sc:      newScripts(o.leaseTTL),
		log:     o.logger.With("projection", p.Name, "instance", o.instance),
		parts:   map[unit]*partition{},
		acked:   make(chan struct{}),
	}
	if err := r.tel.init(r, o); err != nil {
		return nil, err
	}
	return r, nil
}

// Instance returns this runner's instance id.
func (r *Runner) Instance() string { return r.opts.instance }

// Projection returns the projection the runner runs.
func (r *Runner) Projection() Projection { return r.proj }

// Run runs the projection until ctx ends, then stops gracefully: it stops
// reading, lets in-flight events finish (bounded by WithShutdownTimeout),
// acks them and releases its leases, and returns nil. A category that does
// not exist yet is waited for (one WARN names the known ones): the runner
// starts on it once an append (or Store.CreateCategory) creates it, and
// never creates one itself. It returns an error when it cannot start (Redis
// unreachable), and a *StateLostError, after the same
// graceful stop, when Redis lost the projection's state and the runner
// cannot recreate it (see the package doc, "An emptied Redis").
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	r.failOnce, r.failed, r.failErr = sync.Once{}, make(chan struct{}), nil
	units, err := r.setup(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for a category
		}
		return err
	}
	r.mu.Lock()
	r.units = units
	r.mu.Unlock()
	r.lastHeld = nil
	r.log.Info("projection: runner started", "categories", strings.Join(r.proj.Categories, ","), "partitions", len(units),
		"workers", r.opts.workers, "lease_ttl", r.opts.leaseTTL)

	stopWorkers := r.startWorkers()
	defer r.tel.observe(r)()
	r.maintainUntilDone(ctx)

	// Graceful stop: every partition finishes, acks and releases; then the
	// workers (whose queues are empty by then) end.
	r.stopPartitions()
	stopWorkers()
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	r.leave(bg)
	r.mu.Lock()
	r.parts = map[unit]*partition{}
	r.mu.Unlock()
	select {
	case <-r.failed:
		return r.failErr
	default:
		return nil
	}
}

// maintainUntilDone runs the maintenance round at once and then every
// maintainEvery, until ctx ends or the runner fails.
func (r *Runner) maintainUntilDone(ctx context.Context) {
	tick := time.NewTicker(maintainEvery(r.opts.leaseTTL))
	defer tick.Stop()
	r.maintain(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.failed:
			return
		case <-tick.C:
			r.maintain(ctx)
		}
	}
}

// stopPartitions asks every partition to stop and waits until they have.
func (r *Runner) stopPartitions() {
	r.mu.Lock()
	parts := make([]*partition, 0, len(r.parts))
	for _, p := range r.parts {
		parts = append(parts, p)
	}
	r.mu.Unlock()
	for _, p := range parts {
		p.requestStop()
	}
	for _, p := range parts {
		<-p.done
	}
}

// fail makes Run stop gracefully and return err (the first one).
func (r *Runner) fail(err error) {
	r.failOnce.Do(func() {
		r.failErr = err
		r.log.Error("projection: stopping", "err", err)
		close(r.failed)
	})
}
