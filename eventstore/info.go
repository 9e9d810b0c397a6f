package eventstore

import (
	"context"
	"fmt"
)

// StreamInfo is what the store knows of one stream's life: its version,
// which of its events are still stored, and where its current life began.
type StreamInfo struct {
	Stream StreamID
	// Version is the stream's version: that of the last event written in
	// its current life (Redis' last-generated-id), also when events were
	// trimmed or removed by hand. 0: no live stream (never written, or
	// deleted).
	Version uint64
	// First is the version of the first event still stored; 0 when none is
	// (no stream, or trimmed to empty behind a snapshot).
	First uint64
	// Last is the version of the last event still stored; below Version
	// when events were removed from the stream's tail by hand (XDEL), 0
	// when none is stored.
	Last uint64
	// Start is the first version of the current life (or of the next, for
	// a deleted stream): 1, or DeletedAt+1 after a Delete.
	Start uint64
	// Damaged: the stream's last events were removed by hand (XDEL): its
	// version is beyond its last stored event, or (Redis 7+) its last
	// event was deleted and nothing after it stored. Appends to it are
	// refused (ErrStreamDamaged); a fold of it stops short of its version.
	// A stream trimmed behind a snapshot is not damaged.
	Damaged bool
	// Deleted: the stream was deleted and has not been written since.
	Deleted bool
	// DeletedAt is the version of the last deletion marker (0: never
	// deleted).
	DeletedAt uint64
}

// Truncated reports whether the oldest events of the current life are no
// longer stored: a fold of what the stream holds would be partial, so only
// a snapshot at or after First-1 can complete it.
func (i StreamInfo) Truncated() bool {
	return i.Version > 0 && (i.First == 0 || i.First > i.Start)
}

// Info returns what the store knows of stream's life in one round trip (a
// read-only script; it reads the stream's metadata with XINFO STREAM).
// Tools, retention and loads use it to tell a truncated or re-created
// stream from a whole one.
func (s *Store) Info(ctx context.Context, stream StreamID) (StreamInfo, error) {
	p, key, known, err := s.locateKnown(ctx, stream)
	if err != nil {
		return StreamInfo{}, err
	}
	if !known {
		return StreamInfo{Stream: stream, Start: 1}, nil // its category does not exist
	}
	var arr []int64
	err = s.retryRefused(ctx, func() (err error) {
		arr, err = s.infoScript.Exec(ctx, s.client, infoKeys(key, s.keys.Tombstone(stream, p)), nil).AsIntSlice()
		return err
	})
	var r infoReply
	if err == nil {
		r, err = parseInfoReply(arr)
	}
	if err != nil {
		return StreamInfo{}, fmt.Errorf("info of %s: %w", stream, classify(err))
	}
	in := StreamInfo{Stream: stream, Version: r.version, First: r.first, DeletedAt: r.deletedAt, Last: r.last, Damaged: r.damaged}
	in.Start = in.DeletedAt + 1
	in.Deleted = in.Version == 0 && in.DeletedAt > 0
	return in, nil
}
