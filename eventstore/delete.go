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
	if expected == NoStream || expected < StreamExists {
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
	keys := []string{s.keys.Log(stream.Category, p), key, s.keys.Snapshot(stream, p), s.keys.Tombstone(stream, p)}
	args := []string{stream.ID, fmt.Sprint(int64(expected)), rueidis.BinaryString(env)}
	var res []rueidis.RedisMessage
	err = s.retryRefused(ctx, func() (err error) {
		res, err = s.deleteScript.Exec(ctx, s.client, keys, args).ToArray()
		return err
	})
	if err != nil {
		return AppendResult{}, fmt.Errorf("delete %s: %w", stream, classify(err))
	}
	if len(res) != 3 {
		return AppendResult{}, fmt.Errorf("delete %s: bad script reply", stream)
	}
	status, _ := res[0].AsInt64()
	ver, _ := res[1].AsInt64()
	switch status {
	case 2:
		return AppendResult{}, &WrongVersionError{Stream: stream, Expected: expected, Actual: uint64(ver)}
	case 3:
		return AppendResult{}, &StreamNotFoundError{Stream: stream}
	}
	ps, err := res[2].ToString()
	if err != nil {
		return AppendResult{}, fmt.Errorf("delete %s: %w", stream, err)
	}
	pos, err := ParsePosition(ps)
	if err != nil {
		return AppendResult{}, fmt.Errorf("delete %s: %w", stream, err)
	}
	return AppendResult{Stream: stream, Partition: p, Version: uint64(ver), Positions: []Position{pos}}, nil
}
