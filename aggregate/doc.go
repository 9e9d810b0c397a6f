// Package aggregate turns plain Go domain code into event-sourced aggregates
// on an eventstore.Store.
//
// The domain is three kinds of plain Go, none of which touches Redis:
//
//   - a state type S, a struct;
//   - an apply function func(*S, event any) that folds one event into it;
//   - commands: functions of the state that decide events, or refuse with a
//     domain error (see Decide).
//
// NewType binds them to a category, RegisterEvent names the event types, and a
// Repository loads (Load), saves (Save) and runs commands with optimistic
// concurrency (Update retries on a version conflict, bounded and jittered).
// Package aggregatetest tests the domain with given/when/then and no Redis.
//
// # Why a state type and an apply function, not an embedded Root
//
// Embedding a Root in the domain struct (the hallgren/eventsourcing style)
// makes the framework's bookkeeping (id, version, pending events) part of the
// user's struct: it ends up in snapshots unless excluded by hand, the
// framework must call back into the outer type through an interface, and
// generic code needs a pointer-method constraint (Repository[T, PT]). Keeping
// S free of framework fields means:
//
//   - S is exactly what a snapshot stores (msgpack of S), nothing to exclude;
//   - Aggregate[S] holds the bookkeeping, so Repository has one type
//     parameter and every call is inferred;
//   - the fold is a pure function of (S, event), trivially testable, and its
//     zero value S{} is the state before the first event.
//
// # Loading cost
//
// Without snapshots a load reads and folds every event of the stream. With a
// snapshot.Store (WithSnapshots) a load is one script call that returns the
// snapshot and the events after it, so its cost depends on the events since
// the last snapshot, not on the stream's length; snapshots are taken by the
// snapshot store's background workers when its policy says so. A snapshot of
// another StateVersion, or one that does not decode, is ignored and the
// aggregate is folded from its events.
//
// # Errors
//
// Update returns a *ConflictError (ErrConflict, and also
// eventstore.ErrWrongVersion) when every attempt lost to another writer; a
// domain error from the command unchanged; store errors wrapped with the
// stream. A load that finds events not following their predecessor (a stream
// trimmed behind an unusable snapshot) fails with ErrHistoryGap rather than
// return a wrong state.
package aggregate
