package eventstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Event is an event to append. Data is a value of a registered Go type (see
// [Registry]); the type name is taken from the registry.
type Event struct {
	// ID identifies the event for idempotent retries. Left zero, Append
	// generates a UUIDv7. Set it yourself (and keep it across retries) when a
	// retry must be recognised as the same append.
	ID   uuid.UUID
	Data any
	Metadata
}

// Metadata travels with every event.
type Metadata struct {
	CorrelationID string
	CausationID   string
	Headers       map[string]string
}

// NewEvent returns an Event with a fresh UUIDv7 id, so that the same value can
// be passed again on a retry.
func NewEvent(data any) Event {
	return Event{ID: uuid.Must(uuid.NewV7()), Data: data}
}

// RecordedEvent is an event read back from a stream or a partition log.
type RecordedEvent struct {
	Stream        StreamID
	Version       uint64   // position in its entity stream, from 1
	Position      Position // entry id in the category's partition log
	ID            uuid.UUID
	Type          string
	SchemaVersion int       // schema version of Raw (see package aggregate's upcasting)
	Time          time.Time // when it was appended, UTC
	Metadata
	Data any    // decoded value of the registered Go type; nil when the type is unknown
	Raw  []byte // Data as stored, encoded with the store's codec
}

// ExpectedVersion is the optimistic-concurrency condition of an append:
// [Any], [NoStream], [StreamExists] or an exact version ([Exact]).
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version.
	Any ExpectedVersion = -1
	// StreamExists appends only to a stream that has (or had) events.
	StreamExists ExpectedVersion = -2
	// NoStream appends only to a stream that has never had an event (version 0).
	NoStream ExpectedVersion = 0
)

// Exact expects the stream to be at version v (0 = NoStream).
func Exact(v uint64) ExpectedVersion { return ExpectedVersion(v) }

func (e ExpectedVersion) String() string {
	switch {
	case e == Any:
		return "any"
	case e == StreamExists:
		return "stream-exists"
	case e == NoStream:
		return "no-stream"
	case e > 0:
		return strconv.FormatInt(int64(e), 10)
	}
	return fmt.Sprintf("invalid(%d)", int64(e))
}

// Position is an entry id of a partition log: milliseconds and sequence.
// Positions of one partition are totally ordered.
type Position struct{ Ms, Seq uint64 }

// ParsePosition parses "ms-seq" (as in a Redis stream entry id).
func ParsePosition(s string) (Position, error) {
	// The common case, two plain decimal numbers, without strconv's
	// generality (it was ~12% of decoding an event).
	if p, ok := parsePositionFast(s); ok {
		return p, nil
	}
	return parsePositionSlow(s)
}

// parsePositionSlow is ParsePosition with strconv.
func parsePositionSlow(s string) (Position, error) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return Position{}, fmt.Errorf("eventstore: bad position %q: want ms-seq", s)
	}
	m, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("eventstore: bad position %q: %w", s, err)
	}
	q, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("eventstore: bad position %q: %w", s, err)
	}
	return Position{Ms: m, Seq: q}, nil
}

// parsePositionFast parses "<ms>-<seq>" of 1 to 19 decimal digits each (no
// overflow possible); ok is false for anything else, which ParsePosition
// then parses, or refuses, with strconv.
func parsePositionFast(s string) (Position, bool) {
	var p Position
	i, n := 0, 0
	for ; i < len(s) && s[i] != '-'; i++ {
		c := s[i] - '0'
		if c > 9 || n == 19 {
			return p, false
		}
		p.Ms, n = p.Ms*10+uint64(c), n+1
	}
	if n == 0 || i == len(s) {
		return p, false
	}
	n = 0
	for i++; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 || n == 19 {
			return p, false
		}
		p.Seq, n = p.Seq*10+uint64(c), n+1
	}
	return p, n > 0
}

// String returns "ms-seq".
func (p Position) String() string {
	return strconv.FormatUint(p.Ms, 10) + "-" + strconv.FormatUint(p.Seq, 10)
}

// IsZero reports whether p is the zero position (before every entry).
func (p Position) IsZero() bool { return p.Ms == 0 && p.Seq == 0 }

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.Ms < q.Ms || p.Ms == q.Ms && p.Seq < q.Seq:
		return -1
	case p == q:
		return 0
	}
	return 1
}

// AppendResult describes a successful append to one stream.
type AppendResult struct {
	Stream    StreamID
	Partition int
	// Version is the stream's version after the append: the version of its
	// last event. The appended events have versions Version-len(Positions)+1 … Version.
	Version uint64
	// Positions are the events' entries in the partition log, in order.
	Positions []Position
	// Replayed is true when the append was recognised as a retry of an
	// earlier, successful one: nothing was written and the original result
	// is returned.
	Replayed bool
}

// FirstVersion returns the version of the first appended event.
func (r AppendResult) FirstVersion() uint64 { return r.Version - uint64(len(r.Positions)) + 1 }

// LastPosition returns the log position of the last appended event.
func (r AppendResult) LastPosition() Position {
	if len(r.Positions) == 0 {
		return Position{}
	}
	return r.Positions[len(r.Positions)-1]
}
