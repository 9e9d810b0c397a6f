// Package refusal retries the Redis calls that Redis refused without running
// them, so that a slot migration, a server loading its data or a long script
// does not reach the callers of the store and the projection runner.
//
// Only replies that prove the command did not run are retried: a cluster
// redirection (MOVED, ASK) or refusal (TRYAGAIN: the keys of a multi-key call
// are split between two nodes during a migration; CLUSTERDOWN), LOADING, and
// BUSY (another script is running). A network error or a timeout after the
// command was sent is never retried here: the command may have run, and only
// the caller can tell whether repeating it is safe.
//
// rueidis follows MOVED and ASK by itself for ordinary calls and retries
// TRYAGAIN, CLUSTERDOWN and LOADING only for commands marked retryable. The
// store's scripts are not marked: rueidis would then also resend them after a
// network error, when they may have run (a Delete would report
// ErrWrongVersion for its own deletion, a dead-letter write would count
// twice). This package retries exactly the refusals instead.
package refusal

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Backoff of the retries: capped exponential with jitter. A slot migration
// moves a batch of keys in milliseconds, a whole slot in tens of
// milliseconds to seconds; LOADING and BUSY last longer. The first retries
// come fast, later ones at most every MaxDelay.
const (
	FirstDelay = 2 * time.Millisecond
	MaxDelay   = 100 * time.Millisecond
	// NoDeadline bounds the retries of a call whose context has no
	// deadline, so that a refusal that never ends (a slot left open by a
	// failed migration) is reported instead of hanging the caller.
	NoDeadline = 30 * time.Second
)

// Is reports whether err is a reply by which Redis refused a command
// without running it, and which may clear by itself: MOVED, ASK, TRYAGAIN,
// CLUSTERDOWN, LOADING or BUSY.
func Is(err error) bool {
	var re *rueidis.RedisError
	if !errors.As(err, &re) || re == nil || re.IsNil() {
		return false
	}
	if _, moved := re.IsMoved(); moved {
		return true
	}
	if _, ask := re.IsAsk(); ask {
		return true
	}
	msg := re.Error()
	return re.IsTryAgain() || re.IsClusterDown() || re.IsLoading() || strings.HasPrefix(msg, "BUSY ")
}

// Stats says what Retry did.
type Stats struct {
	Retries int           // calls of op after the first
	Waited  time.Duration // time spent waiting between them
}

// Retry calls op, and calls it again while it returns a refusal (Is), with
// capped exponential backoff and jitter, as long as the wait ends before
// ctx's deadline (NoDeadline after the first call when ctx has none). It
// returns op's last error: nil, an error other than a refusal, or the last
// refusal when it gives up; when ctx ends during a wait, that refusal joined
// with ctx.Err(). A refusal returned means op never ran on the server.
func Retry(ctx context.Context, op func() error) (Stats, error) {
	var st Stats
	err := op()
	if err == nil || !Is(err) {
		return st, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(NoDeadline)
	}
	delay := FirstDelay
	for {
		// Equal jitter: at least half the delay, so retries of many
		// callers spread out but still back off.
		wait := delay/2 + rand.N(delay/2+1)
		if time.Until(deadline) <= wait {
			return st, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return st, joinCtx(err, ctx.Err())
		case <-t.C:
		}
		st.Retries++
		st.Waited += wait
		err = op()
		if err == nil || !Is(err) {
			return st, err
		}
		delay = min(2*delay, MaxDelay)
	}
}

// ctxError keeps the refusal first in the message and lets errors.Is find
// both it and the context's error.
type ctxError struct{ refusal, ctx error }

func (e *ctxError) Error() string   { return e.refusal.Error() + " (" + e.ctx.Error() + ")" }
func (e *ctxError) Unwrap() []error { return []error{e.refusal, e.ctx} }

func joinCtx(refusal, ctx error) error { return &ctxError{refusal: refusal, ctx: ctx} }
