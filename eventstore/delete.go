package eventstore

import (
	"context"
	"fmt"
	"reflect"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
)

// DeletedType is the type of the marker Delete writes to the partition log.
// Projections receive it as a RecordedEvent with Data of type Deleted.
const DeletedType = "$deleted"

// Deleted is the payload of a deletion marker.
type Deleted struct{}

// ForgottenType is the type of the event package shred appends when it
// forgets an entity (crypto-shredding): projections receive it as a
// RecordedEvent with Data of type Forgotten, at its own version, and drop
// or rewrite the personal data they derived from the entity.
const ForgottenType = "$forgotten"

// Forgotten is the payload of the event ForgottenType. Every registry knows
// it: it can be appended (package shred does) and is decoded by every
// reader. An aggregate's fold receives it like any event (ignore it, or
// clear the state's personal fields).
type Forgotten struct{}

// forgottenInfo is the built-in registration of Forgotten.
func forgottenInfo() *typeInfo {
	return &typeInfo{name: ForgottenType, typ: reflect.TypeFor[Forgotten](), schemaVersion: 1}
}

// Delete removes an entity: its stream and its snapshot, in one script, and
// writes a deletion marker (type DeletedType, version = the stream's last
// version + 1) to the partition log so projections can drop what they
// derived from it. The entity's events are gone from Redis (archive them
// first if they must be kept; see package retention).
//
// A small stream tombstone stays (a string key beside the stream holding the
// marker's version, kept for good): the stream reads as not found, and a
// later append with NoStream (or Any) starts a new life of the entity whose
// versions continue after the marker, as with KurrentDB's soft delete. So
// nothing derived from the old life — a read-model tombstone, a snapshot
// written late — can hide or overwrite the new one: read models apply the
// new events (their versions are newer), and old snapshots are refused.
//
// expected is checked as for Append (NoStream makes no sense here and is
// refused). A stream that does not exist returns a *StreamNotFoundError.
func (s *Store) Delete(ctx context.Context, stream StreamID, expected ExpectedVersion) (AppendResult, error) {
	if expected != Any && expected != StreamExists && expected <= 0 {
		return AppendResult{}, fmt.Errorf("delete %s: %w: expected version %s", stream, ErrInvalidEvent, expected)
	}
	p, key, known, err := s.locateKnown(ctx, stream)
	if err == nil && !known {
		err = &StreamNotFoundError{Stream: stream} // its category does not exist
	}
	if err != nil {
		return AppendResult{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return AppendResult{}, err
	}
	env, err := encodeEnvelope(&envelope{id: id, typ: DeletedType, schemaVersion: 1, nanos: s.opts.clock().UTC().UnixNano(), data: []byte{0x80}})
	if err != nil {
		return AppendResult{}, err
	}
	req := deleteRequest{
		log: s.keys.Log(stream.Category, p), stream: key, snapshot: s.keys.Snapshot(stream, p), tombstone: s.keys.Tombstone(stream, p),
		id: stream.ID, expected: expected, marker: env,
	}
	var res []rueidis.RedisMessage
	err = s.retryRefused(ctx, func() (err error) {
		res, err = s.deleteScript.Exec(ctx, s.client, req.keys(), req.args()).ToArray()
		return err
	})
	if err != nil {
		return AppendResult{}, fmt.Errorf("delete %s: %w", stream, classify(err))
	}
	rep, err := parseDeleteReply(res)
	if err != nil {
		return AppendResult{}, fmt.Errorf("delete %s: %w", stream, err)
	}
	switch rep.status {
	case deleteDeleted:
	case deleteConflict:
		return AppendResult{}, &WrongVersionError{Stream: stream, Expected: expected, Actual: rep.version}
	case deleteNoStream:
		return AppendResult{}, &StreamNotFoundError{Stream: stream}
	default:
		return AppendResult{}, fmt.Errorf("delete %s: bad script reply: unknown status %d", stream, rep.status)
	}
	pos, err := ParsePosition(rep.position)
	if err != nil {
		return AppendResult{}, fmt.Errorf("delete %s: %w", stream, err)
	}
	return AppendResult{Stream: stream, Partition: p, Version: rep.version, Positions: []Position{pos}}, nil
}
