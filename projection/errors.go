package projection

import (
	"errors"
	"fmt"

	"github.com/streamfold/streamfold/eventstore"
)

var (
	// ErrInvalid: a projection or option is not usable.
	ErrInvalid = errors.New("projection: invalid configuration")
	// ErrFenced: this instance's lease on a partition was taken over; its
	// reads, acks and dead-letter writes are refused.
	ErrFenced = errors.New("projection: lease lost (fenced)")
	// ErrDeadLettered: WaitFor's event (or an earlier event of its entity)
	// is in the dead-letter queue, so it has not been applied.
	ErrDeadLettered = errors.New("projection: event dead-lettered")
	// ErrNotRetryable: a dead letter without an event (trimmed from the log
	// while pending) cannot be retried; rebuild the entity or skip it.
	ErrNotRetryable = errors.New("projection: dead letter cannot be retried")
	// ErrRunning: Run was called on a runner that is already running.
	ErrRunning = errors.New("projection: runner already running")
	// ErrNotWaitable: WaitFor got a result without log positions (built by
	// hand, say): pass the AppendResult that Store.Append, Delete or
	// Forget returned, or one carrying the event's Position.
	ErrNotWaitable = errors.New("projection: WaitFor needs an append's result with its log positions")
	// ErrStateLost: Redis lost the projection's state (emptied, or restarted
	// without persistence) and the runner could not recreate it; Run
	// returns a *StateLostError.
	ErrStateLost = errors.New("projection: state lost in Redis and not recreated")
)

// StateLostError is Run's error when the runner cannot heal a Redis that
// lost its state (see the package doc, "An emptied Redis").
type StateLostError struct {
	Projection string
	Reason     string
	Err        error // Redis' refusal, if any
}

func (e *StateLostError) Error() string {
	s := fmt.Sprintf("projection %s: state lost in Redis and not recreated: %s", e.Projection, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap makes errors.Is(err, ErrStateLost) true, and keeps Redis' error.
func (e *StateLostError) Unwrap() []error { return []error{ErrStateLost, e.Err} }

// DeadLetteredError names the parked entity WaitFor found.
type DeadLetteredError struct {
	Projection string
	Stream     eventstore.StreamID
}

func (e *DeadLetteredError) Error() string {
	return fmt.Sprintf("projection %s: %s is parked in the dead-letter queue", e.Projection, e.Stream)
}

// Unwrap makes errors.Is(err, ErrDeadLettered) true.
func (e *DeadLetteredError) Unwrap() error { return ErrDeadLettered }

// unknownTypeError explains an event of an unregistered type (err is the
// store's *eventstore.UnknownEventTypeError, kept for errors.As).
func (r *Runner) unknownTypeError(err error) error {
	return fmt.Errorf("projection %s: %w; register the type in this process's eventstore.Registry and retry the entity's dead letters, or set Projection.UnknownTypes (UnknownSkip, UnknownDeliver)", r.proj.Name, err)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
