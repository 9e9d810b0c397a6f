package projection

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/streamfold/streamfold/eventstore"
)

// Handler applies one event to a read model. It is called at least once per
// event (again after a crash before the ack), in version order per entity, and
// never concurrently for the same entity. Make it idempotent, typically with
// the version-guarded writes of package readmodel.
//
// A returned error dead-letters the event (after the retries of a [Retry]
// middleware, if any): the event and the entity's later events are parked
// until the dead letter is retried or skipped; other entities go on.
type Handler interface {
	Handle(ctx context.Context, ev eventstore.RecordedEvent) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, ev eventstore.RecordedEvent) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, ev eventstore.RecordedEvent) error {
	return f(ctx, ev)
}

// Middleware decorates a Handler (retries, metrics, logging, ...), as in
// watermill: policies live in decorators, not in the runner.
type Middleware func(Handler) Handler

// Chain wraps h in mws; the first middleware is the outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// PermanentError marks an error that retrying cannot fix (a malformed event):
// Retry gives up at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that Retry does not retry it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// RetryError is returned by Retry when it gives up: the last error and the
// number of attempts (recorded with the dead letter).
type RetryError struct {
	Attempts int
	Err      error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("after %d attempts: %v", e.Attempts, e.Err)
}

// Unwrap returns the last error.
func (e *RetryError) Unwrap() error { return e.Err }

// RetryPolicy is an exponential backoff with full jitter.
type RetryPolicy struct {
	Attempts   int           // total attempts, including the first (default 5)
	Initial    time.Duration // first backoff (default 50ms)
	Max        time.Duration // backoff cap (default 5s)
	Multiplier float64       // growth per attempt (default 2)
}

func (p *RetryPolicy) setDefaults() {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.Initial <= 0 {
		p.Initial = 50 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 5 * time.Second
	}
	if p.Multiplier < 1 {
		p.Multiplier = 2
	}
}

// Retry retries a failing handler with backoff. Waiting blocks the worker
// of the entity (and of the other entities hashed to the same worker), so
// keep the total short and let the dead-letter queue take longer outages.
// It stops early on a PermanentError or when ctx ends.
func Retry(p RetryPolicy) Middleware {
	p.setDefaults()
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			backoff := p.Initial
			var err error
			for attempt := 1; ; attempt++ {
				if err = next.Handle(ctx, ev); err == nil {
					return nil
				}
				var perm *PermanentError
				if attempt >= p.Attempts || errors.As(err, &perm) {
					return &RetryError{Attempts: attempt, Err: err}
				}
				t := time.NewTimer(time.Duration(rand.Int64N(int64(backoff)) + 1))
				select {
				case <-ctx.Done():
					t.Stop()
					return &RetryError{Attempts: attempt, Err: err}
				case <-t.C:
				}
				backoff = min(time.Duration(float64(backoff)*p.Multiplier), p.Max)
			}
		})
	}
}

// Counters are the figures of the Metrics middleware.
type Counters struct {
	Handled  atomic.Int64 // calls that returned nil
	Failed   atomic.Int64 // calls that returned an error
	Duration atomic.Int64 // total handler time, nanoseconds
}

// Metrics counts calls, failures and time into c. Export c to your metrics
// system (an expvar, a Prometheus collector) as you see fit.
func Metrics(c *Counters) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) error {
			start := time.Now()
			err := next.Handle(ctx, ev)
			c.Duration.Add(int64(time.Since(start)))
			if err != nil {
				c.Failed.Add(1)
			} else {
				c.Handled.Add(1)
			}
			return err
		})
	}
}

// PanicError is a handler panic turned into an error.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// Recover turns a handler panic into a *PanicError, so that one bad event is
// dead-lettered instead of crashing the process. The runner always applies
// it innermost.
func Recover() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, ev eventstore.RecordedEvent) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = &PanicError{Value: v, Stack: debug.Stack()}
				}
			}()
			return next.Handle(ctx, ev)
		})
	}
}
