package eventstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"reflect"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/versionid"
	"github.com/vmihailenco/msgpack/v5"
)

// This file owns the wire format of entries. lua/append.lua writes the same
// field names.
//
// Entity stream entry, id "<version>-0":
//
//	e  the event envelope (below)
//	p  the entry id of the same event in the partition log
//
// Partition log entry, id chosen by Redis ("*"):
//
//	s  entity id (the category is the log's)
//	v  the event's entry id in its entity stream, "<version>-0"
//	e  the event envelope
//
// Envelope: the 16 bytes of the event id, then a msgpack array
//
//	[type, schema version, unix nanos, data (bin), correlation id, causation id, headers]
//
// where trailing empty elements are omitted. The id comes first, unencoded, so
// the append script can compare event ids (idempotent retries) with one
// string.sub. Few fields per entry keep XADD cheap: each field pair costs
// Redis ~0.3 µs per append (measured with EVALSHA on Redis 7.0).
const (
	fieldEnvelope = "e"
	fieldPos      = "p"
	fieldStream   = "s"
	fieldVer      = "v"
)

// envelope is an event as stored.
type envelope struct {
	id            uuid.UUID
	typ           string
	schemaVersion int
	nanos         int64
	data          []byte
	Metadata
}

type envEnc struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var envEncPool = sync.Pool{New: func() any {
	m := &envEnc{}
	m.enc = msgpack.NewEncoder(&m.buf)
	return m
}}

// encodeEnvelope is hand-rolled (no reflection): it runs once per appended
// event.
func encodeEnvelope(e *envelope) ([]byte, error) {
	n := 4
	switch {
	case len(e.Headers) > 0:
		n = 7
	case e.CausationID != "":
		n = 6
	case e.CorrelationID != "":
		n = 5
	}
	p := envEncPool.Get().(*envEnc)
	p.buf.Reset()
	p.buf.Write(e.id[:])
	enc := p.enc
	err := enc.EncodeArrayLen(n)
	if err == nil {
		err = enc.EncodeString(e.typ)
	}
	if err == nil {
		err = enc.EncodeInt(int64(e.schemaVersion))
	}
	if err == nil {
		err = enc.EncodeInt(e.nanos)
	}
	if err == nil {
		err = enc.EncodeBytes(e.data)
	}
	if err == nil && n >= 5 {
		err = enc.EncodeString(e.CorrelationID)
	}
	if err == nil && n >= 6 {
		err = enc.EncodeString(e.CausationID)
	}
	if err == nil && n >= 7 {
		err = enc.EncodeMapLen(len(e.Headers))
		for k, v := range e.Headers {
			if err == nil {
				err = enc.EncodeString(k)
			}
			if err == nil {
				err = enc.EncodeString(v)
			}
		}
	}
	var out []byte
	if err == nil {
		out = bytes.Clone(p.buf.Bytes())
	}
	if p.buf.Cap() <= 64<<10 {
		envEncPool.Put(p)
	}
	return out, err
}

type envDec struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var envDecPool = sync.Pool{New: func() any {
	return &envDec{dec: msgpack.NewDecoder(nil)}
}}

// decodeEnvelope parses b. The returned data aliases b.
func decodeEnvelope(b []byte) (e envelope, err error) {
	if len(b) < 17 {
		return e, fmt.Errorf("envelope of %d bytes", len(b))
	}
	copy(e.id[:], b[:16])
	rest := b[16:]
	d := envDecPool.Get().(*envDec)
	defer envDecPool.Put(d)
	d.r.Reset(rest)
	d.dec.Reset(&d.r)
	dec := d.dec
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return e, err
	}
	if n < 4 || n > 32 {
		return e, fmt.Errorf("envelope has %d elements", n)
	}
	if e.typ, err = dec.DecodeString(); err != nil {
		return e, err
	}
	sv, err := dec.DecodeInt64()
	if err != nil {
		return e, err
	}
	e.schemaVersion = int(sv)
	if e.nanos, err = dec.DecodeInt64(); err != nil {
		return e, err
	}
	// Decode the payload in place: its length prefix tells where it is.
	start := len(rest) - d.r.Len()
	dl, err := dec.DecodeBytesLen()
	if err != nil {
		return e, err
	}
	hdr := len(rest) - d.r.Len() - start
	if dl < 0 || dl > d.r.Len() {
		return e, fmt.Errorf("envelope data length %d", dl)
	}
	e.data = rest[start+hdr : start+hdr+dl : start+hdr+dl]
	if _, err := d.r.Seek(int64(dl), io.SeekCurrent); err != nil {
		return e, err
	}
	if n >= 5 {
		if e.CorrelationID, err = dec.DecodeString(); err != nil {
			return e, err
		}
	}
	if n >= 6 {
		if e.CausationID, err = dec.DecodeString(); err != nil {
			return e, err
		}
	}
	if n >= 7 {
		hn, err := dec.DecodeMapLen()
		if err != nil {
			return e, err
		}
		if hn > d.r.Len() { // each pair takes at least two bytes: a bogus length
			return e, fmt.Errorf("envelope headers length %d", hn)
		}
		if hn > 0 {
			e.Headers = make(map[string]string, hn)
		}
		for range hn {
			k, err := dec.DecodeString()
			if err != nil {
				return e, err
			}
			v, err := dec.DecodeString()
			if err != nil {
				return e, err
			}
			e.Headers[k] = v
		}
	}
	// Elements past the seventh are from a newer writer: skip them.
	for i := 7; i < n; i++ {
		if err := dec.Skip(); err != nil {
			return e, err
		}
	}
	return e, nil
}

// entryDecoder turns stream entries into RecordedEvents.
type entryDecoder struct {
	reg   *Registry
	codec Codec
}

// decodeEntry decodes an entity stream entry (stream set) or a partition log
// entry (stream.ID empty; category set). On an unknown event type it returns
// the event without Data, and an *UnknownEventTypeError; likewise an
// *UpcastError when a payload of another schema version cannot be upcast.
func (d entryDecoder) decodeEntry(ctx context.Context, key string, e rueidis.XRangeSlice, stream StreamID) (RecordedEvent, error) {
	fromLog := stream.ID == ""
	var ev RecordedEvent
	corrupt := func(reason string, err error) (RecordedEvent, error) {
		return RecordedEvent{}, &CorruptEntryError{Key: key, EntryID: e.ID, Reason: reason, Err: err}
	}
	var env, pos, ver string
	var haveEnv bool
	for _, fv := range e.FieldValues {
		switch fv.Field {
		case fieldEnvelope:
			env, haveEnv = fv.Value, true
		case fieldPos:
			pos = fv.Value
		case fieldStream:
			stream.ID = fv.Value
		case fieldVer:
			ver = fv.Value
		}
	}
	if !haveEnv {
		return corrupt("no envelope field", nil)
	}
	var err error
	if fromLog {
		if err := ValidateEntityID(stream.ID); err != nil {
			return corrupt("bad stream field", err)
		}
		v, ok := versionid.Parse(ver)
		if !ok {
			return corrupt("bad version field", nil)
		}
		ev.Version = v
		if ev.Position, err = ParsePosition(e.ID); err != nil {
			return corrupt("bad entry id", err)
		}
	} else {
		v, ok := versionid.Parse(e.ID)
		if !ok {
			return corrupt("entry id is not <version>-0", nil)
		}
		ev.Version = v
		if pos != "" {
			if ev.Position, err = ParsePosition(pos); err != nil {
				return corrupt("bad position field", err)
			}
		}
	}
	en, err := decodeEnvelope([]byte(env))
	if err != nil {
		return corrupt("bad envelope", err)
	}
	ev.Stream = stream
	ev.ID = en.id
	ev.Type = en.typ
	ev.SchemaVersion = en.schemaVersion
	ev.Time = time.Unix(0, en.nanos).UTC()
	ev.Metadata = en.Metadata
	ev.Raw = en.data
	switch en.typ {
	case DeletedType:
		ev.Data = Deleted{}
		return ev, nil
	case ForgottenType:
		ev.Data = Forgotten{}
		return ev, nil
	}
	ti := d.reg.lookupName(en.typ)
	if ti == nil {
		return ev, &UnknownEventTypeError{Type: en.typ, Stream: stream}
	}
	if en.schemaVersion != ti.schemaVersion {
		if ev.Data, err = d.upcast(codecFor(ctx, d.codec, stream), ti, stream, en.schemaVersion, ev.Raw); err != nil {
			return ev, err
		}
		return ev, nil
	}
	ptr := reflect.New(ti.typ)
	if err := codecFor(ctx, d.codec, stream).Unmarshal(ev.Raw, ptr.Interface()); err != nil {
		return corrupt(fmt.Sprintf("cannot decode %s payload", en.typ), err)
	}
	ev.Data = ptr.Elem().Interface()
	return ev, nil
}
