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

// envEncPool holds the envelope's encoders: encBuf as the codec's, without
// its settings (encodeEnvelope calls the encoder's typed methods only).
var envEncPool = sync.Pool{New: func() any {
	m := &encBuf{}
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
	p := envEncPool.Get().(*encBuf)
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
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return e, err
	}
	if n < 4 || n > 32 {
		return e, fmt.Errorf("envelope has %d elements", n)
	}
	if err := d.required(&e, rest); err != nil {
		return e, err
	}
	if err := d.optional(&e, n); err != nil {
		return e, err
	}
	// Elements past the seventh are from a newer writer: skip them.
	for i := 7; i < n; i++ {
		if err := d.dec.Skip(); err != nil {
			return e, err
		}
	}
	return e, nil
}

// required decodes the elements every envelope has: type, schema version,
// unix nanos and data. rest is the array the decoder reads, which data
// aliases.
func (d *envDec) required(e *envelope, rest []byte) (err error) {
	dec := d.dec
	if e.typ, err = dec.DecodeString(); err != nil {
		return err
	}
	sv, err := dec.DecodeInt64()
	if err != nil {
		return err
	}
	e.schemaVersion = int(sv)
	if e.nanos, err = dec.DecodeInt64(); err != nil {
		return err
	}
	// Decode the payload in place: its length prefix tells where it is.
	start := len(rest) - d.r.Len()
	dl, err := dec.DecodeBytesLen()
	if err != nil {
		return err
	}
	hdr := len(rest) - d.r.Len() - start
	if dl < 0 || dl > d.r.Len() {
		return fmt.Errorf("envelope data length %d", dl)
	}
	e.data = rest[start+hdr : start+hdr+dl : start+hdr+dl]
	_, err = d.r.Seek(int64(dl), io.SeekCurrent)
	return err
}

// optional decodes the elements of an envelope of n elements that a writer
// may omit when empty: correlation id, causation id, headers.
func (d *envDec) optional(e *envelope, n int) (err error) {
	if n >= 5 {
		if e.CorrelationID, err = d.dec.DecodeString(); err != nil {
			return err
		}
	}
	if n >= 6 {
		if e.CausationID, err = d.dec.DecodeString(); err != nil {
			return err
		}
	}
	if n >= 7 {
		e.Headers, err = d.headers()
	}
	return err
}

// headers decodes the envelope's headers map (nil when empty).
func (d *envDec) headers() (map[string]string, error) {
	hn, err := d.dec.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	if hn > d.r.Len() { // each pair takes at least two bytes: a bogus length
		return nil, fmt.Errorf("envelope headers length %d", hn)
	}
	var h map[string]string
	if hn > 0 {
		h = make(map[string]string, hn)
	}
	for range hn {
		k, err := d.dec.DecodeString()
		if err != nil {
			return h, err
		}
		v, err := d.dec.DecodeString()
		if err != nil {
			return h, err
		}
		h[k] = v
	}
	return h, nil
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
	ev, err := d.decode(ctx, e, stream)
	if f, ok := err.(*entryFault); ok {
		return RecordedEvent{}, &CorruptEntryError{Key: key, EntryID: e.ID, Reason: f.reason, Err: f.err}
	}
	return ev, err
}

// entryFault is what makes an entry corrupt, before decodeEntry names the
// entry in a *CorruptEntryError.
type entryFault struct {
	reason string
	err    error
}

func (f *entryFault) Error() string { return f.reason }

// decode is decodeEntry, reporting a corrupt entry as an *entryFault.
func (d entryDecoder) decode(ctx context.Context, e rueidis.XRangeSlice, stream StreamID) (RecordedEvent, error) {
	f := readFields(e.FieldValues)
	if !f.haveEnv {
		return RecordedEvent{}, &entryFault{reason: "no envelope field"}
	}
	ev, err := f.place(e.ID, stream)
	if err != nil {
		return RecordedEvent{}, err
	}
	en, err := decodeEnvelope([]byte(f.env))
	if err != nil {
		return RecordedEvent{}, &entryFault{"bad envelope", err}
	}
	ev.ID = en.id
	ev.Type = en.typ
	ev.SchemaVersion = en.schemaVersion
	ev.Time = time.Unix(0, en.nanos).UTC()
	ev.Metadata = en.Metadata
	ev.Raw = en.data
	return d.payload(ctx, ev)
}

// entryFields are the fields of an entry (see the format above).
type entryFields struct {
	env, pos, stream, ver string
	haveEnv, haveStream   bool
}

func readFields(fvs []rueidis.XRangeFieldValue) entryFields {
	var f entryFields
	for _, fv := range fvs {
		switch fv.Field {
		case fieldEnvelope:
			f.env, f.haveEnv = fv.Value, true
		case fieldPos:
			f.pos = fv.Value
		case fieldStream:
			f.stream, f.haveStream = fv.Value, true
		case fieldVer:
			f.ver = fv.Value
		}
	}
	return f
}

// place returns the event's stream, version and log position, from the
// fields and the entry id of a log entry (stream.ID empty) or of an entity
// stream entry.
func (f entryFields) place(entryID string, stream StreamID) (RecordedEvent, error) {
	var ev RecordedEvent
	var err error
	fromLog := stream.ID == ""
	if f.haveStream {
		stream.ID = f.stream
	}
	if fromLog {
		if err := ValidateEntityID(stream.ID); err != nil {
			return ev, &entryFault{"bad stream field", err}
		}
		v, ok := versionid.Parse(f.ver)
		if !ok {
			return ev, &entryFault{reason: "bad version field"}
		}
		ev.Version = v
		if ev.Position, err = ParsePosition(entryID); err != nil {
			return ev, &entryFault{"bad entry id", err}
		}
	} else {
		v, ok := versionid.Parse(entryID)
		if !ok {
			return ev, &entryFault{reason: "entry id is not <version>-0"}
		}
		ev.Version = v
		if f.pos != "" {
			if ev.Position, err = ParsePosition(f.pos); err != nil {
				return ev, &entryFault{"bad position field", err}
			}
		}
	}
	ev.Stream = stream
	return ev, nil
}

// payload sets ev.Data: decoded, upcast from an older schema version, or
// the marker of a deletion or a forgotten entity.
func (d entryDecoder) payload(ctx context.Context, ev RecordedEvent) (RecordedEvent, error) {
	switch ev.Type {
	case DeletedType:
		ev.Data = Deleted{}
		return ev, nil
	case ForgottenType:
		ev.Data = Forgotten{}
		return ev, nil
	}
	ti := d.reg.lookupName(ev.Type)
	if ti == nil {
		return ev, &UnknownEventTypeError{Type: ev.Type, Stream: ev.Stream}
	}
	codec := codecFor(ctx, d.codec, ev.Stream)
	if ev.SchemaVersion != ti.schemaVersion {
		var err error
		ev.Data, err = d.upcast(codec, ti, ev.Stream, ev.SchemaVersion, ev.Raw)
		return ev, err
	}
	ptr := reflect.New(ti.typ)
	if err := codec.Unmarshal(ev.Raw, ptr.Interface()); err != nil {
		return ev, &entryFault{fmt.Sprintf("cannot decode %s payload", ev.Type), err}
	}
	ev.Data = ptr.Elem().Interface()
	return ev, nil
}
