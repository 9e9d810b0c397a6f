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
)

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

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
