package eventstore

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
	"github.com/vmihailenco/msgpack/v5"
)

// This file owns the wire format of entries. The Lua scripts write the same
// field names (see lua/append.lua).
//
// Entity stream entry, id "<version>-0":
//
//	id    event id, UUID text form
//	type  event type name
//	meta  msgpack array [unix nanos, schema version, correlation id, causation id, headers];
//	      trailing empty elements are omitted
//	data  payload, encoded with the store's codec
//	pos   the entry id of the same event in the partition log
//
// Partition log entry, id chosen by Redis ("*"):
//
//	stream  entity id (the category is the log's)
//	ver     version of the event in the entity stream
//	id, type, meta, data as above
const (
	fieldID     = "id"
	fieldType   = "type"
	fieldMeta   = "meta"
	fieldData   = "data"
	fieldPos    = "pos"
	fieldStream = "stream"
	fieldVer    = "ver"
)

// meta is the decoded meta field.
type meta struct {
	nanos         int64
	schemaVersion int
	Metadata
}

type metaEnc struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var metaEncPool = sync.Pool{New: func() any {
	m := &metaEnc{}
	m.enc = msgpack.NewEncoder(&m.buf)
	return m
}}

// encodeMeta appends the meta field. It is hand-rolled (no reflection): it
// runs once per appended event.
func encodeMeta(m meta) ([]byte, error) {
	n := 2
	switch {
	case len(m.Headers) > 0:
		n = 5
	case m.CausationID != "":
		n = 4
	case m.CorrelationID != "":
		n = 3
	}
	e := metaEncPool.Get().(*metaEnc)
	defer metaEncPool.Put(e)
	e.buf.Reset()
	enc := e.enc
	err := enc.EncodeArrayLen(n)
	if err == nil {
		err = enc.EncodeInt(m.nanos)
	}
	if err == nil {
		err = enc.EncodeInt(int64(m.schemaVersion))
	}
	if err == nil && n >= 3 {
		err = enc.EncodeString(m.CorrelationID)
	}
	if err == nil && n >= 4 {
		err = enc.EncodeString(m.CausationID)
	}
	if err == nil && n >= 5 {
		err = enc.EncodeMapLen(len(m.Headers))
		for k, v := range m.Headers {
			if err == nil {
				err = enc.EncodeString(k)
			}
			if err == nil {
				err = enc.EncodeString(v)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

type metaDec struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var metaDecPool = sync.Pool{New: func() any {
	return &metaDec{dec: msgpack.NewDecoder(nil)}
}}

func decodeMeta(b []byte) (m meta, err error) {
	d := metaDecPool.Get().(*metaDec)
	defer metaDecPool.Put(d)
	d.r.Reset(b)
	d.dec.Reset(&d.r)
	dec := d.dec
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return m, err
	}
	if n < 2 || n > 16 {
		return m, fmt.Errorf("meta has %d elements", n)
	}
	if m.nanos, err = dec.DecodeInt64(); err != nil {
		return m, err
	}
	sv, err := dec.DecodeInt64()
	if err != nil {
		return m, err
	}
	m.schemaVersion = int(sv)
	if n >= 3 {
		if m.CorrelationID, err = dec.DecodeString(); err != nil {
			return m, err
		}
	}
	if n >= 4 {
		if m.CausationID, err = dec.DecodeString(); err != nil {
			return m, err
		}
	}
	if n >= 5 {
		hn, err := dec.DecodeMapLen()
		if err != nil {
			return m, err
		}
		if hn > len(b) { // each pair takes at least two bytes: a bogus length
			return m, fmt.Errorf("meta headers length %d", hn)
		}
		if hn > 0 {
			m.Headers = make(map[string]string, hn)
		}
		for range hn {
			k, err := dec.DecodeString()
			if err != nil {
				return m, err
			}
			v, err := dec.DecodeString()
			if err != nil {
				return m, err
			}
			m.Headers[k] = v
		}
	}
	// Elements past the fifth are from a newer writer: skip them.
	for i := 5; i < n; i++ {
		if err := dec.Skip(); err != nil {
			return m, err
		}
	}
	return m, nil
}

// parseVersionID returns v from an entity stream entry id "<v>-0".
func parseVersionID(id string) (uint64, bool) {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok || seq != "0" {
		return 0, false
	}
	v, err := strconv.ParseUint(ms, 10, 64)
	return v, err == nil && v > 0
}

func versionID(v uint64) string { return strconv.FormatUint(v, 10) + "-0" }

// entryDecoder turns stream entries into RecordedEvents.
type entryDecoder struct {
	reg   *Registry
	codec Codec
}

// decodeEntry decodes an entity stream entry (stream set) or a partition log
// entry (stream.ID empty; category set). On an unknown event type it returns
// the event without Data, and an *UnknownEventTypeError.
func (d entryDecoder) decodeEntry(key string, e rueidis.XRangeSlice, stream StreamID) (RecordedEvent, error) {
	fromLog := stream.ID == ""
	var ev RecordedEvent
	corrupt := func(reason string, err error) (RecordedEvent, error) {
		return RecordedEvent{}, &CorruptEntryError{Key: key, EntryID: e.ID, Reason: reason, Err: err}
	}
	var id, typ, metaRaw, data, pos, ver string
	var haveID, haveType, haveMeta, haveData bool
	for _, fv := range e.FieldValues {
		switch fv.Field {
		case fieldID:
			id, haveID = fv.Value, true
		case fieldType:
			typ, haveType = fv.Value, true
		case fieldMeta:
			metaRaw, haveMeta = fv.Value, true
		case fieldData:
			data, haveData = fv.Value, true
		case fieldPos:
			pos = fv.Value
		case fieldStream:
			stream.ID = fv.Value
		case fieldVer:
			ver = fv.Value
		}
	}
	if !haveID || !haveType || !haveMeta || !haveData {
		return corrupt("missing fields (want id, type, meta, data)", nil)
	}
	var err error
	if ev.ID, err = uuid.Parse(id); err != nil {
		return corrupt("bad event id", err)
	}
	if fromLog {
		if err := ValidateEntityID(stream.ID); err != nil {
			return corrupt("bad stream field", err)
		}
		v, err := strconv.ParseUint(ver, 10, 64)
		if err != nil || v == 0 {
			return corrupt("bad ver field", err)
		}
		ev.Version = v
		if ev.Position, err = ParsePosition(e.ID); err != nil {
			return corrupt("bad entry id", err)
		}
	} else {
		v, ok := parseVersionID(e.ID)
		if !ok {
			return corrupt("entry id is not <version>-0", nil)
		}
		ev.Version = v
		if pos != "" {
			if ev.Position, err = ParsePosition(pos); err != nil {
				return corrupt("bad pos field", err)
			}
		}
	}
	m, err := decodeMeta([]byte(metaRaw))
	if err != nil {
		return corrupt("bad meta field", err)
	}
	ev.Stream = stream
	ev.Type = typ
	ev.SchemaVersion = m.schemaVersion
	ev.Time = time.Unix(0, m.nanos).UTC()
	ev.Metadata = m.Metadata
	ev.Raw = []byte(data)
	ti := d.reg.lookupName(typ)
	if ti == nil {
		return ev, &UnknownEventTypeError{Type: typ, Stream: stream}
	}
	ptr := reflect.New(ti.typ)
	if err := d.codec.Unmarshal(ev.Raw, ptr.Interface()); err != nil {
		return corrupt(fmt.Sprintf("cannot decode %s payload", typ), err)
	}
	ev.Data = ptr.Elem().Interface()
	return ev, nil
}
