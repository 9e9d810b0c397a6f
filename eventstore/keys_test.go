package eventstore

import (
	"bytes"

	"errors"
	"fmt"
	"github.com/google/uuid"
	"hash/fnv"
	"path"
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
	if cat, p, err := k.ParseLogKey(k.Log("account", 3)); err != nil || cat != "account" || p != 3 {
		t.Fatalf("%s %d %v", cat, p, err)
	}
	for _, key := range []string{"other:{account:3}:log", k.LogTrimmed("account", 3), k.Stream(id, 3), "ns:{account:03}:log",
		"ns:{account}:log", "ns:{account:-1}:log", "ns:{a b:1}:log", "ns:{account:3}:log:x"} {
		if _, _, err := k.ParseLogKey(key); !errors.Is(err, ErrInvalidStreamID) {
			t.Errorf("%q: %v", key, err)
		}
	}
}

func TestStreamPattern(t *testing.T) {
	k := NewKeyspace("ns")
	pat := k.StreamPattern("account")
	if pat != "ns:{account:*}:s:*" {
		t.Fatal(pat)
	}
	// path.Match's '*' is Redis' '*' on keys without '/'.
	match := []string{k.Stream(Stream("account", "1"), 0), k.Stream(Stream("account", "a:b}c"), 1023)}
	miss := []string{k.Log("account", 0), k.Tombstone(Stream("account", "1"), 0), k.Snapshot(Stream("account", "1"), 0),
		k.Stream(Stream("account2", "1"), 0), k.Stream(Stream("acc", "1"), 0), NewKeyspace("ns2").Stream(Stream("account", "1"), 0)}
	for _, key := range match {
		if ok, _ := path.Match(pat, key); !ok {
			t.Errorf("%s does not match %s", pat, key)
		}
	}
	for _, key := range miss {
		if ok, _ := path.Match(pat, key); ok {
			t.Errorf("%s matches %s", pat, key)
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

// Ids that look alike but are different keys: whitespace other than ' ',
// zero-width and bidi format characters, other default-ignorable code points.
// Each is refused with a reason naming the rune and its byte offset.
func TestValidateEntityIDRefusesInvisibleCharacters(t *testing.T) {
	bad := []struct {
		name string
		id   string
		rune string // the %U form the reason must name
		at   int    // byte offset of the rune
	}{
		{"no-break space", "acc\u00a01", "U+00A0", 3},
		{"narrow no-break space", "a\u202f1", "U+202F", 1},
		{"ideographic space", "\u3000x", "U+3000", 0},
		{"ogham space", "x\u1680", "U+1680", 1},
		{"en quad", "x\u2000y", "U+2000", 1},
		{"hair space", "x\u200ay", "U+200A", 1},
		{"next line", "x\u0085y", "U+0085", 1},
		{"vertical tab", "x\vy", "U+000B", 1},
		{"zero-width space", "ab\u200bc", "U+200B", 2},
		{"zero-width non-joiner", "a\u200cb", "U+200C", 1},
		{"zero-width joiner", "a\u200db", "U+200D", 1},
		{"word joiner", "a\u2060b", "U+2060", 1},
		{"byte order mark", "\ufeffacc", "U+FEFF", 0},
		{"soft hyphen", "ab\u00adc", "U+00AD", 2},
		{"left-to-right mark", "ü\u200ex", "U+200E", 2},
		{"right-to-left mark", "x\u200f", "U+200F", 1},
		{"right-to-left override", "evil\u202etxt.exe", "U+202E", 4},
		{"left-to-right embedding", "\u202ax", "U+202A", 0},
		{"right-to-left isolate", "x\u2067y", "U+2067", 1},
		{"pop directional isolate", "x\u2069", "U+2069", 1},
		{"arabic letter mark", "x\u061c", "U+061C", 1},
		{"mongolian vowel separator", "x\u180ey", "U+180E", 1},
		{"tag character", "x\U000e0041", "U+E0041", 1},
		{"combining grapheme joiner", "a\u034fb", "U+034F", 1},
		{"hangul filler", "\u3164", "U+3164", 0},
		{"halfwidth hangul filler", "x\uffa0", "U+FFA0", 1},
		{"variation selector 16", "x\ufe0f", "U+FE0F", 1},
		{"variation selector 17", "x\U000e0100", "U+E0100", 1},
		{"noncharacter", "x\uffff", "U+FFFF", 1},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateEntityID(c.id)
			var ie *InvalidStreamIDError
			if !errors.Is(err, ErrInvalidStreamID) || !errors.As(err, &ie) {
				t.Fatalf("ValidateEntityID(%q) = %v, want ErrInvalidStreamID", c.id, err)
			}
			if ie.Field != "id" || ie.Value != c.id {
				t.Errorf("error names field %q value %q, want id %q", ie.Field, ie.Value, c.id)
			}
			if at := fmt.Sprintf("at byte %d", c.at); !strings.Contains(ie.Reason, c.rune) || !strings.Contains(ie.Reason, at) {
				t.Errorf("reason %q does not name %s %s", ie.Reason, c.rune, at)
			}
		})
	}
	// Visible non-ASCII text stays valid: letters, marks, symbols, punctuation.
	for _, id := range []string{"ü", "e\u0301", "日本語", "Ωmega", "x:y/z@", "a–b", "🙂", "❤", "\u05e9\u05dc\u05d5\u05dd", "مرحبا", "a_b.c~d"} {
		if err := ValidateEntityID(id); err != nil {
			t.Errorf("ValidateEntityID(%q) = %v, want nil", id, err)
		}
	}
}

// The ASCII fast path of ValidateEntityID accepts exactly the ASCII ids the
// character-by-character check accepts.
func TestValidateEntityIDFastPathAgrees(t *testing.T) {
	for b := range 0x80 {
		id := "a" + string(rune(b)) + "z"
		if fast, slow := asciiVisible(id), validateRunes(id) == nil; fast != slow {
			t.Errorf("%q: fast path %t, full check %t", id, fast, slow)
		}
	}
}
