package aggregate

import (
	"time"

	"github.com/streamfold/streamfold/eventstore"
)

// Aggregate is one entity of type S: its state, the version of the last
// stored event folded into it, and the events raised since (pending until
// saved). It is not safe for concurrent use; load one per command.
type Aggregate[S any] struct {
	typ     *Type[S]
	id      string
	state   S
	version uint64
	pending []eventstore.Event
	// The result of the last append that saved this value (zero if none).
	appended eventstore.AppendResult

	// The latest snapshot this writer knows of, for the snapshot policy.
	snapVersion uint64
	snapTime    time.Time
}

// ID returns the entity id.
func (a *Aggregate[S]) ID() string { return a.id }

// Stream returns the aggregate's event stream.
func (a *Aggregate[S]) Stream() eventstore.StreamID {
	return eventstore.Stream(a.typ.category, a.id)
}

// Type returns the aggregate's type.
func (a *Aggregate[S]) Type() *Type[S] { return a.typ }

// State returns the current state, pending events included. It is a shallow
// copy: change state only by raising events.
func (a *Aggregate[S]) State() S { return a.state }

// Version returns the version of the last stored event folded into the
// state (0 for an aggregate never saved). Pending events come after it.
func (a *Aggregate[S]) Version() uint64 { return a.version }

// LastAppend returns the result of the append by which this value was last
// saved (by Repository.Save or Update): what projection.WaitFor needs for
// read-your-writes, with the stream, partition, version and log positions
// of the events written. It is the zero AppendResult (no Positions, which
// WaitFor refuses with ErrNotWaitable) when this value wrote nothing: loaded
// and not saved, or run through a command that raised no events. A save
// recognised as a retry of an earlier one (after a timeout) returns the
// original append's result, positions included.
func (a *Aggregate[S]) LastAppend() eventstore.AppendResult { return a.appended }

// Appended reports whether this value has been saved with events since it
// was loaded (or created): whether LastAppend holds an append's result.
func (a *Aggregate[S]) Appended() bool { return len(a.appended.Positions) > 0 }

// IsNew reports whether the aggregate has no stored events.
func (a *Aggregate[S]) IsNew() bool { return a.version == 0 }

// Pending returns the data of the events raised and not yet saved.
func (a *Aggregate[S]) Pending() []any {
	out := make([]any, len(a.pending))
	for i, e := range a.pending {
		out[i] = e.Data
	}
	return out
}

// Raise records new events: each is applied to the state at once and kept
// pending until the aggregate is saved. Each gets its event id now, so that
// saving the same aggregate again after a timeout is recognised as a retry.
func (a *Aggregate[S]) Raise(events ...any) {
	a.RaiseWith(eventstore.Metadata{}, events...)
}

// RaiseWith is Raise with metadata (correlation and causation ids, headers)
// attached to every event.
func (a *Aggregate[S]) RaiseWith(md eventstore.Metadata, events ...any) {
	for _, ev := range events {
		a.typ.apply(&a.state, ev)
		e := eventstore.NewEvent(ev)
		e.Metadata = md
		a.pending = append(a.pending, e)
	}
}

// Replay folds events that are already stored (history) into the state: the
// version advances by one per event and nothing becomes pending. Repositories
// use it when loading; tests use it to set up a history.
func (a *Aggregate[S]) Replay(events ...any) {
	for _, ev := range events {
		a.typ.apply(&a.state, ev)
		a.version++
	}
}

// Decide adapts a pure command handler to the callback of Repository.Update
// (and aggregatetest's When): it runs decide on the current state and raises
// the events it returns. A domain error is returned as is, and nothing is
// raised.
func Decide[S, C any](decide func(state S, cmd C) ([]any, error), cmd C) func(*Aggregate[S]) error {
	return func(a *Aggregate[S]) error {
		events, err := decide(a.state, cmd)
		if err != nil {
			return err
		}
		a.Raise(events...)
		return nil
	}
}
