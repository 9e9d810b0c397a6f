package projection

import (
	"context"
	"fmt"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/readmodel"
)

// Inline is write-through: it appends and then, in the caller's goroutine,
// applies the appended events to the handler, so the read model is current
// when Append returns. Run the same projection's Runner beside it
// (write-behind): the runner applies whatever the inline step did not, and
// the version guard makes the overlap harmless.
//
// Inline writes use readmodel.WithNextGuard: a write applies only when the
// entry is at exactly the previous version. An inline write can thus never
// jump over events the runner has not applied yet (which the runner would
// then skip as old); in that case the inline step is skipped and the runner
// does the work.
type Inline struct {
	store   *eventstore.Store
	handler Handler
}

// NewInline returns write-through for handler (decorated by mws).
func NewInline(store *eventstore.Store, handler Handler, mws ...Middleware) *Inline {
	return &Inline{store: store, handler: Chain(Chain(handler, Recover()), mws...)}
}

// Append appends like eventstore.Store.Append and applies the events. An
// error of the apply step is returned with the (successful) result: the
// events are stored, and the runner will apply them.
func (i *Inline) Append(ctx context.Context, stream eventstore.StreamID, expected eventstore.ExpectedVersion, events ...eventstore.Event) (eventstore.AppendResult, error) {
	res, err := i.store.Append(ctx, stream, expected, events...)
	if err != nil {
		return res, err
	}
	return res, i.Apply(ctx, res)
}

// Apply applies the events of a successful append: it reads them back from
// the entity stream (one round trip), so the handler sees exactly what the
// runner will see.
func (i *Inline) Apply(ctx context.Context, res eventstore.AppendResult) error {
	if len(res.Positions) == 0 {
		return nil
	}
	ctx = readmodel.WithSource(readmodel.WithNextGuard(ctx), res.Stream)
	first := res.FirstVersion()
	n := 0
	for ev, err := range i.store.Read(ctx, res.Stream, first, eventstore.Limit(len(res.Positions))) {
		if err != nil {
			return fmt.Errorf("write-through %s: %w", res.Stream, err)
		}
		if err := i.handler.Handle(ctx, ev); err != nil {
			return fmt.Errorf("write-through %s v%d: %w", res.Stream, ev.Version, err)
		}
		n++
	}
	return nil
}
