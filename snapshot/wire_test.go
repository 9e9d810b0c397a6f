package snapshot

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestWireRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 70000} {
		sn := Snapshot{Version: 1<<40 + 7, SchemaVersion: 3, Time: time.Unix(0, 1767225600123456789).UTC(), State: bytes.Repeat([]byte{'s'}, n)}
		b, err := encode(sn)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decode(b)
		if err != nil || back.Version != sn.Version || back.SchemaVersion != 3 || !back.Time.Equal(sn.Time) || !bytes.Equal(back.State, sn.State) {
			t.Fatalf("%d: %+v %v", n, back, err)
		}
		// Plain msgpack for any other reader.
		var arr []any
		if err := msgpack.Unmarshal(b, &arr); err != nil || len(arr) != 4 {
			t.Fatalf("%d: msgpack reads %v %v", n, arr, err)
		}
		for cut := range min(len(b), 40) {
			if _, err := decode(b[:cut]); !errors.Is(err, errCorrupt) {
				t.Fatalf("%d bytes cut to %d: %v", n, cut, err)
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := encode(Snapshot{Version: 9, SchemaVersion: 1, State: []byte("abc")})
	f.Add(b)
	f.Add([]byte(strings.Repeat("\x94", 30)))
	f.Fuzz(func(t *testing.T, b []byte) {
		sn, err := decode(b)
		if err != nil {
			return
		}
		again, err := encode(sn)
		if err != nil || !bytes.Equal(again[:10], b[:10]) {
			t.Fatalf("decoded %+v does not re-encode: %v", sn, err)
		}
	})
}
