package eventstore

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/versionid"
)

// ReadOption configures a read.
type ReadOption func(*readOptions)

type readOptions struct {
	limit    int
	pageSize int
}

// Limit stops a read after n events (0: no limit).
func Limit(n int) ReadOption { return func(o *readOptions) { o.limit = n } }

// PageSize sets how many entries one round trip fetches (default 256).
func PageSize(n int) ReadOption { return func(o *readOptions) { o.pageSize = n } }

func (s *Store) readOpts(opts []ReadOption) readOptions {
	o := readOptions{pageSize: s.opts.readPageSize}
	for _, f := range opts {
		f(&o)
	}
	if o.pageSize < 1 {
		o.pageSize = s.opts.readPageSize
	}
	return o
}

// Read yields the events of a stream in order, starting at version from
// (0 or 1: from the first event still stored). A stream that never had
// events yields one *StreamNotFoundError. An event of a type the registry
// does not know is yielded with an *UnknownEventTypeError (Data nil, Raw
// set), one stored with an older schema version is upcast (see
// RegisterUpcast) or yielded with an *UpcastError; the caller may go on or
// stop.
func (s *Store) Read(ctx context.Context, stream StreamID, from uint64, opts ...ReadOption) iter.Seq2[RecordedEvent, error] {
	return s.readStream(ctx, stream, from, false, opts)
}

// ReadBackward yields the events of a stream from version from down to the
// first one still stored (from 0: from the last event).
func (s *Store) ReadBackward(ctx context.Context, stream StreamID, from uint64, opts ...ReadOption) iter.Seq2[RecordedEvent, error] {
	return s.readStream(ctx, stream, from, true, opts)
}

func (s *Store) readStream(ctx context.Context, stream StreamID, from uint64, backward bool, opts []ReadOption) iter.Seq2[RecordedEvent, error] {
	o := s.readOpts(opts)
	return func(yield func(RecordedEvent, error) bool) {
		_, key, known, err := s.locateKnown(ctx, stream)
		if err == nil && !known {
			err = &StreamNotFoundError{Stream: stream} // its category does not exist
		}
		if err != nil {
			yield(RecordedEvent{}, err)
			return
		}
		start := "-"
		if backward {
			start = "+"
		}
		if from > 1 || backward && from > 0 {
			start = versionid.Format(from)
		}
		n, first := 0, true
		for {
			page := o.pageSize
			if o.limit > 0 && o.limit-n < page {
				page = o.limit - n
			}
			var cmd rueidis.Completed
			if backward {
				cmd = s.client.B().Xrevrange().Key(key).End(start).Start("-").Count(int64(page)).Build()
			} else {
				cmd = s.client.B().Xrange().Key(key).Start(start).End("+").Count(int64(page)).Build()
			}
			entries, err := asEntries(s.client.Do(ctx, cmd))
			if err != nil {
				yield(RecordedEvent{}, fmt.Errorf("read %s: %w", stream, err))
				return
			}
			if first && len(entries) == 0 {
				if err := s.checkExists(ctx, stream, key); err != nil {
					yield(RecordedEvent{}, err)
				}
				return
			}
			first = false
			for _, e := range entries {
				ev, err := s.dec.decodeEntry(ctx, key, e, stream)
				if !yield(ev, err) {
					return
				}
				n++
			}
			if len(entries) < page || o.limit > 0 && n >= o.limit {
				return
			}
			start = "(" + entries[len(entries)-1].ID
		}
	}
}

// checkExists returns a StreamNotFoundError when key does not exist.
func (s *Store) checkExists(ctx context.Context, stream StreamID, key string) error {
	n, err := s.client.Do(ctx, s.client.B().Exists().Key(key).Build()).AsInt64()
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	if n == 0 {
		return &StreamNotFoundError{Stream: stream}
	}
	return nil
}

// Last returns the last event of a stream. A stream without events (never
// written, or trimmed to empty) returns a *StreamNotFoundError.
func (s *Store) Last(ctx context.Context, stream StreamID) (RecordedEvent, error) {
	for ev, err := range s.ReadBackward(ctx, stream, 0, Limit(1)) {
		return ev, err
	}
	return RecordedEvent{}, &StreamNotFoundError{Stream: stream}
}

// Version returns a stream's current version: that of its last event, also
// when the stream has been trimmed (to empty, even) or its tail removed by
// hand. 0 means no live stream (never written, or deleted; see Info).
func (s *Store) Version(ctx context.Context, stream StreamID) (uint64, error) {
	in, err := s.Info(ctx, stream)
	if err != nil {
		return 0, err
	}
	return in.Version, nil
}

// ReadLog yields the entries of a category's partition log after position
// after (the zero Position: from the start), for tools and rebuilds. The
// logs are transport and may be trimmed; the entity streams are the truth.
func (s *Store) ReadLog(ctx context.Context, category string, partition int, after Position, opts ...ReadOption) iter.Seq2[RecordedEvent, error] {
	o := s.readOpts(opts)
	return func(yield func(RecordedEvent, error) bool) {
		n, err := s.Partitions(ctx, category)
		if err != nil {
			yield(RecordedEvent{}, err)
			return
		}
		if partition < 0 || partition >= n {
			yield(RecordedEvent{}, fmt.Errorf("eventstore: partition %d of category %s out of range 0..%d", partition, category, n-1))
			return
		}
		key := s.keys.Log(category, partition)
		start := "-"
		if !after.IsZero() {
			start = "(" + after.String()
		}
		stream := StreamID{Category: category}
		count := 0
		for {
			page := o.pageSize
			if o.limit > 0 && o.limit-count < page {
				page = o.limit - count
			}
			entries, err := asEntries(s.client.Do(ctx, s.client.B().Xrange().Key(key).Start(start).End("+").Count(int64(page)).Build()))
			if err != nil {
				yield(RecordedEvent{}, fmt.Errorf("read log %s/%d: %w", category, partition, err))
				return
			}
			for _, e := range entries {
				ev, err := s.dec.decodeEntry(ctx, key, e, stream)
				if !yield(ev, err) {
					return
				}
				count++
			}
			if len(entries) < page || o.limit > 0 && count >= o.limit {
				return
			}
			start = "(" + entries[len(entries)-1].ID
		}
	}
}

// Decode decodes one entry read from Redis without the store: from a
// partition log (Keyspace.Log), as a consumer with its own consumer group
// reads it with XREADGROUP, or from an entity stream (Keyspace.Stream). key
// is the key the entry was read from; it tells the two apart and names the
// stream or category. Upcasters and the store's codec apply as in Read (a
// codec that fetches keys, such as package shred's, uses ctx). Errors are
// those of Read (*CorruptEntryError, *UnknownEventTypeError, *UpcastError),
// or an *InvalidStreamIDError when key is neither kind of key of this
// store's namespace.
func (s *Store) Decode(ctx context.Context, key string, e rueidis.XRangeSlice) (RecordedEvent, error) {
	stream, err := s.decodeKey(key)
	if err != nil {
		return RecordedEvent{}, err
	}
	return s.dec.decodeEntry(ctx, key, e, stream)
}

// decodedKey is a key Decode has classified: the stream it names (ID empty
// for a partition log).
type decodedKey struct {
	key    string
	stream StreamID
}

// decodeKey classifies a key for Decode, which is called for every entry of
// a read, mostly of one key: the last key is kept (parsing it again cost
// ~20% of decoding an event, BenchmarkDecode). The key is not validated
// further (ParseStreamKey would check the entity id): a key that is not the
// store's held nothing it wrote.
func (s *Store) decodeKey(key string) (StreamID, error) {
	if d := s.lastDecoded.Load(); d != nil && d.key == key {
		return d.stream, nil
	}
	var stream StreamID
	// By its ending first: a failed parse allocates its error.
	if !strings.HasSuffix(key, "}:log") {
		if cat, _, id, err := s.keys.parseTagged(key, "s:", ""); err == nil && id != "" {
			stream = StreamID{Category: cat, ID: id}
		}
	} else if cat, _, rest, err := s.keys.parseTagged(key, "log", ""); err == nil && rest == "" {
		stream = StreamID{Category: cat}
	}
	if stream.Category == "" {
		return StreamID{}, &InvalidStreamIDError{Field: "key", Value: key, Reason: "neither a partition log nor an entity stream key of namespace " + s.keys.Namespace()}
	}
	s.lastDecoded.Store(&decodedKey{key: key, stream: stream})
	return stream, nil
}

// asEntries reads an XRANGE-style reply, keeping field order.
func asEntries(res rueidis.RedisResult) ([]rueidis.XRangeSlice, error) {
	arr, err := res.ToArray()
	if err != nil {
		return nil, err
	}
	out := make([]rueidis.XRangeSlice, 0, len(arr))
	for i := range arr {
		e, err := arr[i].AsXRangeSlice()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
