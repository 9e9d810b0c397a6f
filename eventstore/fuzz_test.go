package eventstore

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"testing"

	"github.com/redis/rueidis"
)

func FuzzParseStreamID(f *testing.F) {
	for _, s := range []string{"account-1", "a-", "-", "a:b-c", "x-{y}", "acc-\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseStreamID(s)
		if err != nil {
			return
		}
		// A valid id round-trips and yields keys whose only hash tag is ours.
		if id.String() != s {
			t.Fatalf("%q -> %q", s, id.String())
		}
		k := NewKeyspace("ns")
		key := k.Stream(id, 1)
		back, p, err := k.ParseStreamKey(key)
		if err != nil || back != id || p != 1 {
			t.Fatalf("key %q: %v %d %v", key, back, p, err)
		}
	})
}

func FuzzParseStreamKey(f *testing.F) {
	for _, s := range []string{"ns:{a:1}:s:x", "ns:{a:1}:log", "ns:{a:}:s:", "ns:{:1}:s:x", "ns:{a:99999999999999999999}:s:x"} {
		f.Add(s)
	}
	k := NewKeyspace("ns")
	f.Fuzz(func(t *testing.T, key string) {
		id, p, err := k.ParseStreamKey(key)
		if err != nil {
			return
		}
		if got := k.Stream(id, p); got != key {
			t.Fatalf("%q parsed to %v/%d, which builds %q", key, id, p, got)
		}
	})
}

func FuzzParseLogKey(f *testing.F) {
	for _, s := range []string{"ns:{a:1}:log", "ns:{a:1}:logtrim", "ns:{a:1}:s:x", "ns:{:1}:log", "ns:{a:1}:log}:log"} {
		f.Add(s)
	}
	k := NewKeyspace("ns")
	f.Fuzz(func(t *testing.T, key string) {
		cat, p, err := k.ParseLogKey(key)
		if err != nil {
			return
		}
		if got := k.Log(cat, p); got != key {
			t.Fatalf("%q parsed to %s/%d, which builds %q", key, cat, p, got)
		}
	})
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0-0", "1-1", "18446744073709551615-18446744073709551615", "-", "1-", "007-1", "9999999999999999999-1", "1-+2", "1--2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if fp, ok := parsePositionFast(s); ok {
			if sp, err := parsePositionSlow(s); err != nil || sp != fp {
				t.Fatalf("%q: fast path %v, strconv %v %v", s, fp, sp, err)
			}
		}
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		q, err := ParsePosition(p.String())
		if err != nil || q != p {
			t.Fatalf("%q -> %v -> %v %v", s, p, q, err)
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	id := uuid.MustParse("0190d6f0-8b3a-7cde-8f00-000000000001")
	for _, e := range []envelope{{id: id, typ: "t", schemaVersion: 1, nanos: 1, data: []byte("abc")},
		{id: id, typ: "t", nanos: 2, Metadata: Metadata{CorrelationID: "c", CausationID: "d", Headers: map[string]string{"k": "v"}}}} {
		b, _ := encodeEnvelope(&e)
		f.Add(b)
	}
	f.Add(append(make([]byte, 16), 0x97, 0xa1, 't', 1, 1, 0xc4, 0x00, 0xa0, 0xa0, 0xdf, 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		b2, err := encodeEnvelope(&e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := decodeEnvelope(b2)
		if err != nil || !envelopeEqual(e, e2) {
			t.Fatalf("re-encode changed the envelope: %+v -> %+v (%v)", e, e2, err)
		}
	})
}

type fuzzEvent struct {
	A int
	B string
}

// FuzzDecodeEntry feeds arbitrary field values, as another program could
// write them into a partition log or entity stream, to the entry decoder: it
// must return an event or a typed error, never panic.
func FuzzDecodeEntry(f *testing.F) {
	reg := NewRegistry()
	MustRegister[fuzzEvent](reg, "fe")
	d := entryDecoder{reg: reg, codec: Msgpack{}}
	data, _ := Msgpack{}.Marshal(fuzzEvent{A: 1, B: "x"})
	good, _ := encodeEnvelope(&envelope{id: uuid.New(), typ: "fe", schemaVersion: 1, nanos: 5, data: data})
	f.Add("1-0", "e1", "3-0", good, "2-0")
	f.Add("1-0", "", "x", []byte{0xc1}, "")
	f.Fuzz(func(t *testing.T, entryID, stream, ver string, env []byte, pos string) {
		e := rueidis.XRangeSlice{ID: entryID, FieldValues: []rueidis.XRangeFieldValue{
			{Field: "s", Value: stream}, {Field: "v", Value: ver}, {Field: "e", Value: string(env)},
		}}
		ev, err := d.decodeEntry(context.Background(), "log", e, StreamID{Category: "cat"})
		if err == nil && (ev.Version == 0 || ev.Data == nil) {
			t.Fatalf("accepted log entry without version or data: %+v", ev)
		}
		checkTyped(t, err)
		e = rueidis.XRangeSlice{ID: entryID, FieldValues: []rueidis.XRangeFieldValue{{Field: "e", Value: string(env)}, {Field: "p", Value: pos}}}
		ev, err = d.decodeEntry(context.Background(), "s", e, StreamID{Category: "cat", ID: "x"})
		if err == nil && ev.Version == 0 {
			t.Fatalf("accepted stream entry without version: %+v", ev)
		}
		checkTyped(t, err)
	})
}

func checkTyped(t *testing.T, err error) {
	if err != nil && !errors.Is(err, ErrCorruptEntry) && !errors.Is(err, ErrUnknownEventType) {
		t.Fatalf("untyped error %v", err)
	}
}
