package eventstore

import (
	"bytes"

	"errors"
	"github.com/google/uuid"
	"hash/fnv"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := []StreamID{{"account", "1"}, {"a.b_C9", "x:y/z@ü-–"}, {strings.Repeat("c", 64), strings.Repeat("i", 256)}}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	bad := []StreamID{{"", "1"}, {"a b", "1"}, {"a:b", "1"}, {"a{", "1"}, {"a-b", "1"}, {"acc", ""}, {"acc", "a}"},
		{"acc", "a\tb"}, {"acc", "a\x7f"}, {"acc", "\u2028"}, {"acc", "a b"}, {"acc", string([]byte{0xc3})}, {"acc", strings.Repeat("i", 257)}}
	for _, s := range bad {
		err := s.Validate()
		var ie *InvalidStreamIDError
		if !errors.Is(err, ErrInvalidStreamID) || !errors.As(err, &ie) || ie.Reason == "" {
			t.Errorf("%q: want ErrInvalidStreamID, got %v", s, err)
		}
	}
}

func TestParseStreamID(t *testing.T) {
	s, err := ParseStreamID("account-7f3a-b")
	if err != nil || s != (StreamID{"account", "7f3a-b"}) || s.String() != "account-7f3a-b" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, in := range []string{"", "account", "-x", "account-", "a:b-x"} {
		if _, err := ParseStreamID(in); !errors.Is(err, ErrInvalidStreamID) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestKeyLayout(t *testing.T) {
	k := NewKeyspace("ns")
	id := StreamID{"account", "a:1"}
	if got := k.Stream(id, 3); got != "ns:{account:3}:s:a:1" {
		t.Fatal(got)
	}
	if got := k.Log("account", 3); got != "ns:{account:3}:log" {
		t.Fatal(got)
	}
	back, p, err := k.ParseStreamKey(k.Stream(id, 3))
	if err != nil || back != id || p != 3 {
		t.Fatalf("%v %d %v", back, p, err)
	}
	for _, key := range []string{"other:{account:3}:s:x", "ns:{account:3}:log", "ns:{account:03}:s:x", "ns:{account}:s:x", "ns:{account:-1}:s:x"} {
		if _, _, err := k.ParseStreamKey(key); !errors.Is(err, ErrInvalidStreamID) {
			t.Errorf("%q: %v", key, err)
		}
	}
}

func TestPartitionOfIsStable(t *testing.T) {
	// Part of the storage format: FNV-1a 32 modulo the partition count.
	for _, id := range []string{"", "a", "account-1", "ü", strings.Repeat("x", 300)} {
		h := fnv.New32a()
		h.Write([]byte(id))
		for _, n := range []int{1, 7, 16, 1024} {
			if got, want := PartitionOf(id, n), int(h.Sum32()%uint32(n)); got != want {
				t.Errorf("PartitionOf(%q, %d) = %d, want %d", id, n, got, want)
			}
		}
	}
	if got := PartitionOf("account-1", 16); got != 6 {
		t.Errorf("PartitionOf changed: %d", got)
	}
}

func TestPosition(t *testing.T) {
	p, err := ParsePosition("1700000000000-7")
	if err != nil || p != (Position{1700000000000, 7}) || p.String() != "1700000000000-7" {
		t.Fatalf("%v %v", p, err)
	}
	if p.Compare(Position{1700000000000, 8}) != -1 || p.Compare(p) != 0 || p.Compare(Position{1, 99}) != 1 {
		t.Fatal("compare")
	}
	for _, in := range []string{"", "1", "1-", "-1", "a-1", "1-b", "18446744073709551616-0"} {
		if _, err := ParsePosition(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	id := uuid.MustParse("0190d6f0-8b3a-7cde-8f00-000000000001")
	cases := []envelope{
		{id: id, typ: "t", schemaVersion: 1, nanos: 1, data: []byte{}},
		{id: id, typ: "type.name", schemaVersion: 3, nanos: -5, data: []byte("x"), Metadata: Metadata{CorrelationID: "c"}},
		{id: id, typ: "t", nanos: 1 << 62, data: make([]byte, 70000), Metadata: Metadata{CausationID: "x"}},
		{id: id, typ: "t", schemaVersion: 2, nanos: 7, data: []byte{0xc1}, Metadata: Metadata{CorrelationID: "c", CausationID: "d", Headers: map[string]string{"a": "b", "": ""}}},
	}
	for _, e := range cases {
		b, err := encodeEnvelope(&e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEnvelope(b)
		if err != nil {
			t.Fatal(err)
		}
		if !envelopeEqual(got, e) {
			t.Fatalf("%+v -> %+v", e, got)
		}
	}
}

func envelopeEqual(a, b envelope) bool {
	if a.id != b.id || a.typ != b.typ || a.nanos != b.nanos || a.schemaVersion != b.schemaVersion || !bytes.Equal(a.data, b.data) ||
		a.CorrelationID != b.CorrelationID || a.CausationID != b.CausationID || len(a.Headers) != len(b.Headers) {
		return false
	}
	for k, v := range a.Headers {
		if w, ok := b.Headers[k]; !ok || w != v {
			return false
		}
	}
	return true
}
