package projection

import (
	"context"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
)

// BatchHandler is a Handler that can also apply many events in one call,
// typically as one readmodel.Batch (one script call per hash slot, one round
// trip). When a projection's Handler implements it, the runner hands each
// worker's share of a read (up to WithBatch events) to HandleBatch: the
// events of several entities, each entity's in version order, none of them
// parked. Handle is still used for single events, dead-letter retries, and
// the fallback below; WithMiddleware decorates that per-event path only.
//
// HandleBatch must be idempotent like Handle (version-guarded writes). When
// it returns an error or panics, the runner applies the same events again
// one at a time through Handle and the middleware, in order, exactly as if
// batching were off: the writes the batch did apply are skipped by the
// guard, the failing event is retried (Retry) and dead-lettered, its
// entity's later events are parked behind it, and every other event is
// applied and acked. With readmodel.Batch this is exact: after a failed
// Exec, the writes applied to each key are a prefix, in version order, of
// that key's writes, so no later version of a key can hide an earlier one.
// A batch that ends because the partition was lost or is shutting down is
// not applied again here: its events stay pending for the next holder.
type BatchHandler interface {
	Handler
	HandleBatch(ctx context.Context, events []eventstore.RecordedEvent) error
}

// WriteFunc turns one event into read-model writes queued on b.
type WriteFunc func(ctx context.Context, ev eventstore.RecordedEvent, b *readmodel.Batch) error

// Writes returns a BatchHandler from fn: HandleBatch queues every event's
// writes on one readmodel.Batch and sends it at once; Handle does the same
// for one event. The events' writes must go to models over one client.
// Each event's writes are queued under readmodel.Batch.Source(ev.Stream),
// so a Model entry fed by another stream refuses them (see
// readmodel.WithSource); a BatchHandler of your own should do the same.
func Writes(fn WriteFunc) BatchHandler { return writes(fn) }

type writes WriteFunc

func (w writes) Handle(ctx context.Context, ev eventstore.RecordedEvent) error {
	var b readmodel.Batch
	b.Source(ev.Stream)
	if err := w(ctx, ev, &b); err != nil {
		return err
	}
	_, err := b.Exec(ctx)
	return err
}

func (w writes) HandleBatch(ctx context.Context, evs []eventstore.RecordedEvent) error {
	var b readmodel.Batch
	for _, ev := range evs {
		b.Source(ev.Stream)
		if err := w(ctx, ev, &b); err != nil {
			return err
		}
	}
	_, err := b.Exec(ctx)
	return err
}
