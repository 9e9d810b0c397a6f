package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamfold/streamfold/internal/refusal"
)

// ErrUnavailable: Redis refused a call without running it (a hash slot being
// migrated between cluster nodes, a server loading its data or busy with a
// script) and kept refusing it, with retries, until the caller's deadline.
// Nothing was written: the same call may be retried as is. See
// UnavailableError.
var ErrUnavailable = errors.New("eventstore: Redis unavailable")

// UnavailableError reports a call that Redis refused without running it, on
// every attempt: MOVED or ASK that could not be followed, TRYAGAIN (during a
// slot migration, the keys of a script are split between two nodes, or a new
// stream's keys are missing on the importing one), CLUSTERDOWN, LOADING or
// BUSY. The store retries such refusals with backoff as long as the caller's
// context allows (30 s without a deadline) and returns this error only then.
// Nothing of the call was written, so retrying it is safe; a refusal that
// lasts (a migration left half-way, see CLUSTER SETSLOT ... STABLE) needs an
// operator.
type UnavailableError struct {
	Retries int           // attempts after the first, all refused
	Waited  time.Duration // time spent waiting between them
	Err     error         // Redis' last refusal (joined with the context's error if it ended during a wait)
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("eventstore: nothing written: Redis refused the call without running it (retried %d times over %v): %v",
		e.Retries, e.Waited.Round(time.Millisecond), e.Err)
}

// Unwrap makes errors.Is(err, ErrUnavailable) true, and keeps Redis' error
// (and the context's) in the chain.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// retryRefused runs call, one script call to Redis, and runs it again while
// Redis refuses it without running it (package internal/refusal: a slot
// migration's TRYAGAIN or redirection, CLUSTERDOWN, LOADING, BUSY), with
// capped exponential backoff and jitter, until ctx's deadline. A refusal it
// gives up on becomes an *UnavailableError (nothing written). Every other
// error, a network error after sending included, is returned as is: the
// call's outcome is unknown.
//
// Why not rueidis' own retries (scripts built with NewLuaScriptRetryable)?
// rueidis then also resends a script after a network error, when it may have
// run: an append would come back as a replay (safe: event ids), but a Delete
// would report its own deletion as ErrWrongVersion or ErrStreamNotFound. And
// they would not cover the durable path, whose DoMulti pairs the script with
// WAIT.
func (s *Store) retryRefused(ctx context.Context, call func() error) error {
	st, err := refusal.Retry(ctx, call)
	if st.Retries > 0 {
		s.inst.refused.Add(ctx, int64(st.Retries))
	}
	if err != nil && refusal.Is(err) {
		return &UnavailableError{Retries: st.Retries, Waited: st.Waited, Err: err}
	}
	return err
}
