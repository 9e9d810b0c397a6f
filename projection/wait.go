package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
)

// Waiting asks Redis, never the runner's memory: the consumer group's
// last-delivered id, the group's pending list and the parked set live in
// the partition's hash tag, so one pipelined round trip on the partition's
// node answers "applied?" whichever process, instance or connection made
// the append and whichever instance holds the partition.
//
// Polls start at minPoll and double up to maxPoll: read-your-writes
// callers wait a few milliseconds typically (the runner's block and ack
// delay), and a projection that is down costs one round trip per maxPoll
// per waiter.
const (
	minPoll = time.Millisecond
	maxPoll = 25 * time.Millisecond
)

// WaitFor returns when projection name has applied res, the result of an
// append (every event of it, and every event before them in their
// partition log): at once if it already has. It works from any process, with
// or without a Runner of the projection, as Status does: an API process
// that runs no projection waits by name. It returns a *DeadLetteredError
// (errors.Is ErrDeadLettered) when the append's entity is parked with a dead
// letter at or before res.Version, and ctx's error when ctx ends first
// (wrapped with what was still missing, for example no consumer group of
// that name on the partition: a typo, or a projection not started yet). It
// never creates a category or a consumer group.
//
// res must carry the log positions of the append, as Store.Append, Delete,
// shred's Forget and aggregate.Aggregate.LastAppend give it: a result
// without Positions (built by hand, or the zero LastAppend of an aggregate
// that wrote nothing) is refused with ErrNotWaitable rather than taken as
// applied.
//
// After WaitFor returns nil, the projection's writes for res are in Redis:
// read them without the client-side cache (readmodel.Model.GetFresh,
// Rollup.GetFresh). A cached Get may still serve the value from before the
// write for a moment, until Redis' invalidation reaches the reading
// connection; see the README's "Read your writes".
func WaitFor(ctx context.Context, store *eventstore.Store, name string, res eventstore.AppendResult) error {
	return waitFor(ctx, store, name, res, nil)
}

// WaitFor returns when the runner's projection has applied res: see the
// function WaitFor, which it calls. It also refuses a result of a category
// the projection does not follow (ErrInvalid), and acks made by this runner
// wake it early.
func (r *Runner) WaitFor(ctx context.Context, res eventstore.AppendResult) error {
	if err := checkWaitable(res); err != nil {
		return err
	}
	if !r.follows(res.Stream.Category) {
		return invalid("projection %s does not follow category %s", r.proj.Name, res.Stream.Category)
	}
	return waitFor(ctx, r.store, r.proj.Name, res, r.ackSignal)
}

func (r *Runner) follows(cat string) bool {
	for _, c := range r.proj.Categories {
		if c == cat {
			return true
		}
	}
	return false
}

func checkWaitable(res eventstore.AppendResult) error {
	if len(res.Positions) == 0 {
		return fmt.Errorf("%w: the result for %s v%d has no Positions; pass the AppendResult that Store.Append (or Delete, Forget, Aggregate.LastAppend after a save that wrote events) returned, or set Positions to the event's log Position (RecordedEvent.Position)",
			ErrNotWaitable, res.Stream, res.Version)
	}
	return nil
}

// waitFor polls applied until it holds; wake, when set, returns a channel
// closed when acks reach Redis in this process (a Runner's).
func waitFor(ctx context.Context, store *eventstore.Store, name string, res eventstore.AppendResult, wake func() <-chan struct{}) error {
	if err := checkWaitable(res); err != nil {
		return err
	}
	if store == nil {
		return invalid("nil store")
	}
	if err := readmodel.ValidateName(name); err != nil {
		return invalid("projection name: %v", err)
	}
	n, err := store.Partitions(ctx, res.Stream.Category)
	if err != nil {
		return fmt.Errorf("projection %s: wait for %s v%d: %w", name, res.Stream, res.Version, err)
	}
	if res.Partition < 0 || res.Partition >= n {
		return fmt.Errorf("%w: the result for %s v%d names partition %d of %d", ErrNotWaitable, res.Stream, res.Version, res.Partition, n)
	}
	w := waiter{store: store, name: name, k: keys{ks: store.Keys(), name: name}.part(res.Stream.Category, res.Partition)}
	pos := res.LastPosition()
	poll := minPoll
	for {
		var sig <-chan struct{}
		if wake != nil {
			sig = wake()
		}
		done, err := w.applied(ctx, pos, res)
		if err != nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			// rueidis may report ctx's end before ctx.Err() does.
			return w.ended(ctx, res)
		}
		if err != nil || done {
			return err
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return w.ended(ctx, res)
		case <-sig:
		case <-t.C:
			poll = min(2*poll, maxPoll)
		}
		t.Stop()
	}
}

// ended is the error of a wait whose ctx ended: ctx's error, with what the
// last look found missing.
func (w *waiter) ended(ctx context.Context, res eventstore.AppendResult) error {
	missing := w.missing
	if missing == "" {
		missing = "Redis did not answer"
	}
	cause := ctx.Err()
	if cause == nil {
		cause = context.DeadlineExceeded
	}
	return fmt.Errorf("projection %s: wait for %s v%d (log entry %s of %s/%d): %s: %w",
		w.name, res.Stream, res.Version, res.LastPosition(), res.Stream.Category, res.Partition, missing, cause)
}

type waiter struct {
	store   *eventstore.Store
	name    string
	k       partKeys
	missing string // what the last look found missing, for ctx's error
}

// applied: the group has delivered pos, nothing at or before pos is pending,
// and the entity has no dead letter at or before res.Version.
func (w *waiter) applied(ctx context.Context, pos eventstore.Position, res eventstore.AppendResult) (bool, error) {
	c := w.store.Client()
	out := c.DoMulti(ctx,
		c.B().XinfoGroups().Key(w.k.log).Build(),
		c.B().Xpending().Key(w.k.log).Group(w.name).Start("-").End(pos.String()).Count(1).Build(),
		c.B().Hexists().Key(w.k.parked).Field(res.Stream.ID).Build())
	g, err := findGroup(out[0], w.name)
	if err != nil {
		return false, fmt.Errorf("projection %s: wait: %w", w.name, err)
	}
	switch {
	case !g.found:
		w.missing = "the projection has no consumer group on this partition (not started yet, or it does not follow this category?)"
		return false, nil
	case g.delivered.Compare(pos) < 0:
		w.missing = "not delivered yet (delivered up to " + g.delivered.String() + ")"
		return false, nil
	}
	pend, err := out[1].ToArray()
	if err != nil {
		return false, fmt.Errorf("projection %s: wait: %w", w.name, err)
	}
	if len(pend) > 0 {
		w.missing = "delivered, still pending (being applied, or waiting for a runner to take the partition over)"
		return false, nil
	}
	parked, err := out[2].AsBool()
	if err != nil {
		return false, fmt.Errorf("projection %s: wait: %w", w.name, err)
	}
	if !parked {
		return true, nil
	}
	letters, err := readLetters(ctx, c, w.store, w.name, res.Stream.Category, res.Partition, w.k.dlq)
	if err != nil {
		return false, err
	}
	for _, l := range letters {
		if l.Stream == res.Stream && l.Version <= res.Version {
			return true, &DeadLetteredError{Projection: w.name, Stream: res.Stream}
		}
	}
	return true, nil
}
