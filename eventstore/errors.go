package eventstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/rueidis"
)

// Sentinel errors. Every error the store returns for these conditions matches
// one of them with errors.Is; the typed errors below carry the detail.
var (
	// ErrWrongVersion: the stream's version is not the expected one.
	ErrWrongVersion = errors.New("eventstore: wrong expected version")
	// ErrStreamNotFound: the stream has no events and never had any.
	ErrStreamNotFound = errors.New("eventstore: stream not found")
	// ErrUnknownEventType: a type name or Go type is not in the registry.
	ErrUnknownEventType = errors.New("eventstore: unknown event type")
	// ErrInvalidStreamID: a category, entity id or namespace could break the key layout.
	ErrInvalidStreamID = errors.New("eventstore: invalid stream id")
	// ErrEventTooLarge: an encoded event exceeds the store's maximum event size.
	ErrEventTooLarge = errors.New("eventstore: event too large")
	// ErrCrossPartition: a multi-stream append names streams of different partitions.
	ErrCrossPartition = errors.New("eventstore: streams in different partitions")
	// ErrEmptyAppend: an append with no events, or a multi-stream append with no streams.
	ErrEmptyAppend = errors.New("eventstore: nothing to append")
	// ErrInvalidEvent: an event that cannot be written (duplicate id in one append, bad type name, encode failure).
	ErrInvalidEvent = errors.New("eventstore: invalid event")
	// ErrCorruptEntry: an entry read from Redis is not in Streamfold's wire format.
	ErrCorruptEntry = errors.New("eventstore: corrupt entry")
	// ErrOutOfMemory: Redis refused a write because it reached maxmemory
	// (with noeviction). Nothing was written; retry once memory is freed.
	ErrOutOfMemory = errors.New("eventstore: Redis is out of memory")
	// ErrReadOnly: the server is a read-only replica. Nothing was written.
	ErrReadOnly = errors.New("eventstore: Redis is read-only")
	// ErrAppendFailed: Redis refused a write of one append of a grouped
	// call while others of the call were written (see AppendFailedError).
	ErrAppendFailed = errors.New("eventstore: append failed")
	// ErrStreamDamaged: events were removed from a stream by hand (XDEL of
	// its tail): its version is beyond its last stored event, and an append
	// would leave a hole that no load can fold. See DamagedStreamError.
	ErrStreamDamaged = errors.New("eventstore: stream damaged")
	// ErrUnknownCategory: a read named a category that no append has created
	// (a typo, or a Redis emptied since). Reads never create categories; see
	// UnknownCategoryError and Store.CreateCategory.
	ErrUnknownCategory = errors.New("eventstore: unknown category")
)

// classify adds a sentinel to the Redis refusals a caller can act on,
// keeping the original error in the chain.
func classify(err error) error {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return err
	}
	msg := re.Error()
	switch {
	case strings.HasPrefix(msg, "OOM"):
		return &refusedError{sentinel: ErrOutOfMemory, err: err}
	case strings.HasPrefix(msg, "READONLY"):
		return &refusedError{sentinel: ErrReadOnly, err: err}
	}
	return err
}

type refusedError struct{ sentinel, err error }

func (e *refusedError) Error() string   { return e.sentinel.Error() + ": " + e.err.Error() }
func (e *refusedError) Unwrap() []error { return []error{e.sentinel, e.err} }

// AppendFailedError is one transaction's own failure inside a script call
// that wrote other transactions (group commit): Redis refused one of its
// writes. Unless Partial, nothing of it was written and it may be retried.
// Partial means some of its events were written before a later write
// failed, which the store's checks rule out; the stream then needs an
// operator's look (Store.Info, Read).
type AppendFailedError struct {
	Stream  StreamID
	Partial bool
	Reason  string // Redis' error
}

func (e *AppendFailedError) Error() string {
	if e.Partial {
		return fmt.Sprintf("eventstore: append to %s: partly written before Redis refused a write: %s; inspect the stream", e.Stream, e.Reason)
	}
	return fmt.Sprintf("eventstore: append to %s: nothing written: Redis refused the write: %s", e.Stream, e.Reason)
}

// Unwrap returns ErrAppendFailed, and ErrOutOfMemory or ErrReadOnly when
// Redis' error says so.
func (e *AppendFailedError) Unwrap() []error {
	errs := []error{ErrAppendFailed}
	switch {
	case strings.HasPrefix(e.Reason, "OOM"):
		errs = append(errs, ErrOutOfMemory)
	case strings.HasPrefix(e.Reason, "READONLY"):
		errs = append(errs, ErrReadOnly)
	}
	return errs
}

// DamagedStreamError refuses an append to a stream whose last events were
// removed by hand (XDEL): the stream is at Version, its last stored event at
// Last. Appending would leave versions Last+1..Version missing for good, and
// every load of the entity would fail. Nothing was written.
type DamagedStreamError struct {
	Stream  StreamID
	Version uint64
	Last    uint64
}

func (e *DamagedStreamError) Error() string {
	return fmt.Sprintf("eventstore: append to %s: the stream is damaged: it is at version %d but its last stored event is version %d (events removed by hand, XDEL); an append would leave a hole no load can fold. Delete the stream (Store.Delete) and start it again, from an archive or with compensating events", e.Stream, e.Version, e.Last)
}

// Unwrap makes errors.Is(err, ErrStreamDamaged) true.
func (e *DamagedStreamError) Unwrap() error { return ErrStreamDamaged }

// WrongVersionError is returned when the expected version check fails.
type WrongVersionError struct {
	Stream   StreamID
	Expected ExpectedVersion
	Actual   uint64 // the stream's version when the append was refused
}

func (e *WrongVersionError) Error() string {
	return fmt.Sprintf("eventstore: append to %s: wrong expected version: expected %s, actual %d", e.Stream, e.Expected, e.Actual)
}

// Unwrap makes errors.Is(err, ErrWrongVersion) true.
func (e *WrongVersionError) Unwrap() error { return ErrWrongVersion }

// StreamNotFoundError is returned when a read finds no stream.
type StreamNotFoundError struct{ Stream StreamID }

func (e *StreamNotFoundError) Error() string {
	return "eventstore: stream " + e.Stream.String() + " not found"
}

// Unwrap makes errors.Is(err, ErrStreamNotFound) true.
func (e *StreamNotFoundError) Unwrap() error { return ErrStreamNotFound }

// UnknownCategoryError names a category no append (nor CreateCategory)
// created in the namespace, and lists the ones that exist.
type UnknownCategoryError struct {
	Category string
	Known    []string // sorted
}

func (e *UnknownCategoryError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("eventstore: unknown category %q (the namespace has none yet: an append creates one)", e.Category)
	}
	return fmt.Sprintf("eventstore: unknown category %q; known: %s", e.Category, strings.Join(e.Known, ", "))
}

// Unwrap makes errors.Is(err, ErrUnknownCategory) true.
func (e *UnknownCategoryError) Unwrap() error { return ErrUnknownCategory }

// UnknownEventTypeError names an event type the registry does not know.
type UnknownEventTypeError struct {
	Type   string // the stored type name, or the Go type when appending
	Stream StreamID
}

func (e *UnknownEventTypeError) Error() string {
	return fmt.Sprintf("eventstore: unknown event type %q in stream %s", e.Type, e.Stream)
}

// Unwrap makes errors.Is(err, ErrUnknownEventType) true.
func (e *UnknownEventTypeError) Unwrap() error { return ErrUnknownEventType }

// InvalidStreamIDError explains why a category, id, namespace or key was refused.
type InvalidStreamIDError struct {
	Field  string // "category", "id", "namespace", "key" or "" for a whole stream id
	Value  string
	Reason string
}

func (e *InvalidStreamIDError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("eventstore: invalid stream id %q: %s", e.Value, e.Reason)
	}
	return fmt.Sprintf("eventstore: invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidStreamID) true.
func (e *InvalidStreamIDError) Unwrap() error { return ErrInvalidStreamID }

// EventTooLargeError names an event whose encoded size exceeds the limit.
type EventTooLargeError struct {
	Stream StreamID
	Type   string
	Size   int
	Max    int
}

func (e *EventTooLargeError) Error() string {
	return fmt.Sprintf("eventstore: event %s in stream %s is %d bytes encoded, more than the maximum %d", e.Type, e.Stream, e.Size, e.Max)
}

// Unwrap makes errors.Is(err, ErrEventTooLarge) true.
func (e *EventTooLargeError) Unwrap() error { return ErrEventTooLarge }

// CrossPartitionError names two streams of one multi-stream append that do
// not share a partition (and so cannot be written by one script).
type CrossPartitionError struct {
	A, B                   StreamID
	PartitionA, PartitionB int
}

func (e *CrossPartitionError) Error() string {
	if e.PartitionA < 0 {
		return fmt.Sprintf("eventstore: cannot append atomically to %s and %s: streams must share a category and partition", e.A, e.B)
	}
	return fmt.Sprintf("eventstore: cannot append atomically to %s (partition %d) and %s (partition %d): streams must share a category and partition", e.A, e.PartitionA, e.B, e.PartitionB)
}

// Unwrap makes errors.Is(err, ErrCrossPartition) true.
func (e *CrossPartitionError) Unwrap() error { return ErrCrossPartition }

// InvalidEventError explains why an event was refused before writing.
type InvalidEventError struct {
	Stream StreamID
	Index  int // position of the event in the append
	Reason string
	Err    error // underlying cause, if any (for example the codec's error)
}

func (e *InvalidEventError) Error() string {
	msg := fmt.Sprintf("eventstore: invalid event %d for stream %s: %s", e.Index, e.Stream, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrInvalidEvent and the underlying cause.
func (e *InvalidEventError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidEvent, e.Err}
	}
	return []error{ErrInvalidEvent}
}

// CorruptEntryError describes an entry read from Redis that is not in
// Streamfold's format (written by another program, or damaged).
type CorruptEntryError struct {
	Key     string
	EntryID string
	Reason  string
	Err     error
}

func (e *CorruptEntryError) Error() string {
	msg := fmt.Sprintf("eventstore: corrupt entry %s in %s: %s", e.EntryID, e.Key, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrCorruptEntry and the underlying cause.
func (e *CorruptEntryError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrCorruptEntry, e.Err}
	}
	return []error{ErrCorruptEntry}
}
