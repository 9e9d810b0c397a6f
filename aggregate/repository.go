package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/snapshot"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Sentinel errors; typed errors carry the detail.
var (
	// ErrConflict: Update gave up after its retries all met a concurrent
	// writer. Such errors also match eventstore.ErrWrongVersion.
	ErrConflict = errors.New("aggregate: too many concurrent updates")
	// ErrHistoryGap: the events read do not follow the state they are folded
	// into (a stream trimmed behind a snapshot that cannot be used).
	ErrHistoryGap = errors.New("aggregate: gap in event history")
	// ErrWrongType: an aggregate was saved through another type's repository.
	ErrWrongType = errors.New("aggregate: aggregate of another type")
)

// ConflictError is returned by Update when every attempt lost to a
// concurrent writer.
type ConflictError struct {
	Stream   eventstore.StreamID
	Attempts int
	Err      error // the last *eventstore.WrongVersionError
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("aggregate: update %s: gave up after %d attempts: %v", e.Stream, e.Attempts, e.Err)
}

// Unwrap returns ErrConflict and the last version conflict.
func (e *ConflictError) Unwrap() []error { return []error{ErrConflict, e.Err} }

// Repository loads and saves the aggregates of one Type through an event
// store, with snapshots when configured. It is safe for concurrent use.
type Repository[S any] struct {
	store  *eventstore.Store
	typ    *Type[S]
	opts   options
	codec  eventstore.Codec
	local  keyedMutex
	tracer trace.Tracer
}

type options struct {
	snaps    *snapshot.Store
	retry    Retry
	logger   *slog.Logger
	unlocked bool
	tracer   trace.TracerProvider
}

// Retry is how Update retries after a version conflict (WithRetry): at
// most Attempts tries in all, waiting a random time up to Base·2ⁿ (capped
// at Max) before try n+1. A zero field means its default. Full jitter
// spreads competing writers apart instead of letting them collide again in
// lockstep.
type Retry struct {
	Attempts int           // tries in all (default 10)
	Base     time.Duration // first backoff bound (default 1ms)
	Max      time.Duration // cap of the backoff bound (default 100ms)
}

// Option configures a Repository.
type Option func(*options)

// WithTracerProvider sets where load spans ("streamfold.load") go (default
// otel.GetTracerProvider(): a no-op until one is installed).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }

// WithSnapshots makes the repository load from snapshots and offer new ones
// to snaps after saves its policy marks due. The state S is then encoded with
// msgpack: its exported fields (or a msgpack.CustomEncoder) must hold all of
// it, or loads from snapshots will differ from loads from events.
func WithSnapshots(snaps *snapshot.Store) Option { return func(o *options) { o.snaps = snaps } }

// WithRetry sets how Update retries after a version conflict (default
// Retry{Attempts: 10, Base: time.Millisecond, Max: 100 * time.Millisecond}).
func WithRetry(r Retry) Option { return func(o *options) { o.retry = r } }

// WithoutLocalLock lets Updates of one aggregate in this process run
// concurrently, competing through optimistic concurrency alone. By default
// they wait for each other (contention between processes is still resolved
// by the expected version): a conflict costs two round trips and a backoff,
// waiting in line costs nothing.
func WithoutLocalLock() Option { return func(o *options) { o.unlocked = true } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// setDefaults fills what no option set.
func (o *options) setDefaults() {
	if o.retry.Attempts == 0 {
		o.retry.Attempts = 10
	}
	if o.retry.Base == 0 {
		o.retry.Base = time.Millisecond
	}
	if o.retry.Max == 0 {
		o.retry.Max = 100 * time.Millisecond
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.tracer == nil {
		o.tracer = otel.GetTracerProvider()
	}
}

// validate reports every option that cannot be applied, by name, joined.
func (o *options) validate() error {
	var errs []error
	r := o.retry
	if r.Attempts < 1 {
		errs = append(errs, fmt.Errorf("aggregate: WithRetry: Attempts %d, want at least 1", r.Attempts))
	}
	if r.Base < 0 || r.Max < r.Base {
		errs = append(errs, fmt.Errorf("aggregate: WithRetry: delays must be 0 ≤ Base ≤ Max, got Base %v, Max %v", r.Base, r.Max))
	}
	return errors.Join(errs...)
}

// NewRepository returns the repository of typ's aggregates in store. It
// registers typ's events in the store's registry. Every problem of typ and
// the options is reported, joined.
func NewRepository[S any](store *eventstore.Store, typ *Type[S], opts ...Option) (*Repository[S], error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	o.setDefaults()
	if err := errors.Join(o.validate(), typ.validate()); err != nil {
		return nil, err
	}
	if err := typ.registerInto(store.Registry()); err != nil {
		return nil, err
	}
	return &Repository[S]{store: store, typ: typ, opts: o, codec: eventstore.Msgpack{}, tracer: o.tracer.Tracer("github.com/streamfold/streamfold/aggregate")}, nil
}

// Type returns the repository's aggregate type.
func (r *Repository[S]) Type() *Type[S] { return r.typ }

// Load returns aggregate id with every stored event folded in: from its
// snapshot and the events after it when snapshots are configured, else from
// all its events. An id without events is a new aggregate at version 0, not
// an error, so that a command can create it.
func (r *Repository[S]) Load(ctx context.Context, id string) (_ *Aggregate[S], err error) {
	ctx, span := r.tracer.Start(ctx, "streamfold.load", trace.WithAttributes(attribute.String("streamfold.category", r.typ.category), attribute.String("streamfold.id", id)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	a := r.typ.New(id)
	stream := a.Stream()
	if err := stream.Validate(); err != nil {
		return nil, err
	}
	var events func(yield func(eventstore.RecordedEvent, error) bool)
	if r.opts.snaps != nil {
		events = r.opts.snaps.Load(ctx, stream, r.typ.stateVersion, func(sn snapshot.Snapshot) error {
			var st S
			if err := r.codec.Unmarshal(sn.State, &st); err != nil {
				return err
			}
			a.state, a.version, a.snapVersion, a.snapTime = st, sn.Version, sn.Version, sn.Time
			return nil
		})
	} else {
		events = r.store.Read(ctx, stream, 0)
	}
	found, read := true, false
	for ev, err := range events {
		if err != nil {
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				found = false
				break
			}
			return nil, fmt.Errorf("aggregate: load %s: %w", stream, err)
		}
		if ev.Version != a.version+1 {
			if err := r.checkStart(ctx, a, ev.Version, read); err != nil {
				return nil, err
			}
		}
		read = true
		r.typ.apply(&a.state, ev.Data)
		a.version = ev.Version
	}
	if found && !read && a.version == 0 {
		// The stream exists but gave neither events nor a usable snapshot:
		// trimmed to empty behind a snapshot this process cannot use.
		in, err := r.store.Info(ctx, stream)
		if err != nil {
			return nil, fmt.Errorf("aggregate: load %s: %w", stream, err)
		}
		if in.Version > 0 {
			return nil, fmt.Errorf("aggregate: load %s: %w: the stream is at version %d but holds no events and no usable snapshot (truncated behind a snapshot of another schema, or one that does not decode); restore its events from the archive or a snapshot this code can read", stream, ErrHistoryGap, in.Version)
		}
	}
	span.SetAttributes(attribute.Int64("streamfold.version", int64(a.version)), attribute.Int64("streamfold.snapshot_version", int64(a.snapVersion)))
	return a, nil
}

// checkStart accepts a first event at version v that does not follow a's
// version when it is the first event of the stream's current life: after a
// Delete, a new life continues after the deletion marker's version. Any
// other jump is a gap: the oldest events were truncated behind a snapshot
// this process cannot use.
func (r *Repository[S]) checkStart(ctx context.Context, a *Aggregate[S], v uint64, read bool) error {
	stream := a.Stream()
	if !read && a.version == 0 {
		in, err := r.store.Info(ctx, stream)
		if err != nil {
			return fmt.Errorf("aggregate: load %s: %w", stream, err)
		}
		if v == in.Start {
			a.version = v - 1
			return nil
		}
		if in.Start > 1 && v > in.Start {
			return fmt.Errorf("aggregate: load %s: %w: its current life starts at version %d but its first stored event is version %d, and no usable snapshot covers the rest (truncated behind a snapshot of another schema, or one that does not decode); restore its events from the archive or a snapshot this code can read", stream, ErrHistoryGap, in.Start, v)
		}
	}
	return fmt.Errorf("aggregate: load %s: %w: event version %d follows version %d (truncated behind a snapshot of another schema, or one that does not decode?); restore its events from the archive or a snapshot this code can read", stream, ErrHistoryGap, v, a.version)
}

// Save appends a's pending events, expecting the stream to be still at the
// version a was loaded at: if another writer got there first it returns an
// error matching eventstore.ErrWrongVersion, and a is stale (load it again).
// Saving the same aggregate again after an error that left the outcome
// unknown (a timeout) is safe: the events keep their ids, and an append
// already stored is recognised and not repeated. An aggregate without pending
// events is not written. After a save, a.LastAppend() is the append's result
// (for projection.WaitFor).
func (r *Repository[S]) Save(ctx context.Context, a *Aggregate[S]) error {
	if a.typ != r.typ {
		return fmt.Errorf("aggregate: save %s: %w", a.Stream(), ErrWrongType)
	}
	if len(a.pending) == 0 {
		return nil
	}
	stream := a.Stream()
	res, err := r.store.Append(ctx, stream, eventstore.Exact(a.version), a.pending...)
	if err != nil {
		return fmt.Errorf("aggregate: save %s: %w", stream, err)
	}
	a.version, a.pending, a.appended = res.Version, nil, res
	r.offerSnapshot(a)
	return nil
}

// offerSnapshot queues a snapshot of a when the policy says so. The state is
// encoded here, on the caller's goroutine, because the caller keeps a and
// may change it; the write to Redis is left to the snapshot store's workers.
func (r *Repository[S]) offerSnapshot(a *Aggregate[S]) {
	snaps := r.opts.snaps
	if snaps == nil {
		return
	}
	now := snaps.Now()
	if !snaps.Due(snapshot.Info{Stream: a.Stream(), Version: a.version, SnapshotVersion: a.snapVersion, SnapshotTime: a.snapTime, Now: now}) {
		return
	}
	state, err := r.codec.Marshal(&a.state)
	if err != nil {
		r.opts.logger.Warn("aggregate: cannot encode state for a snapshot", "stream", a.Stream().String(), "error", err)
		return
	}
	if snaps.Offer(a.Stream(), snapshot.Snapshot{Version: a.version, SchemaVersion: r.typ.stateVersion, Time: now, State: state}) {
		a.snapVersion, a.snapTime = a.version, now
	}
}

// Update loads aggregate id, runs fn on it and saves the events fn raised.
// When another writer saved first, it loads again and reruns fn, up to the
// configured attempts (see WithRetry), then returns a *ConflictError. Updates
// of one id through one Repository run one at a time (see WithoutLocalLock).
// An
// error from fn is returned as is, and nothing is saved. fn may run several
// times: it must not have side effects other than raising events. Update
// returns the aggregate as saved; its LastAppend is the result of the
// append, which projection.WaitFor takes for read-your-writes (zero when fn
// raised no events: nothing was written).
func (r *Repository[S]) Update(ctx context.Context, id string, fn func(*Aggregate[S]) error) (*Aggregate[S], error) {
	if !r.opts.unlocked {
		unlock, err := r.local.lock(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("aggregate: update %s: %w", eventstore.Stream(r.typ.category, id), err)
		}
		defer unlock()
	}
	for attempt := 1; ; attempt++ {
		a, err := r.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := fn(a); err != nil {
			return nil, err
		}
		err = r.Save(ctx, a)
		if err == nil {
			return a, nil
		}
		var wrong *eventstore.WrongVersionError
		if !errors.As(err, &wrong) {
			return nil, err
		}
		if attempt >= r.opts.retry.Attempts {
			return nil, &ConflictError{Stream: a.Stream(), Attempts: attempt, Err: wrong}
		}
		if err := r.backoff(ctx, attempt); err != nil {
			return nil, fmt.Errorf("aggregate: update %s: %w", a.Stream(), err)
		}
	}
}

// backoff sleeps a random time in [0, min(max, base·2^(attempt-1))).
func (r *Repository[S]) backoff(ctx context.Context, attempt int) error {
	d := r.opts.retry.Max
	if attempt-1 < 30 {
		d = min(d, r.opts.retry.Base<<(attempt-1))
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(rand.N(d))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
