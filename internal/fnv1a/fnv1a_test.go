package fnv1a

import (
	"hash/fnv"
	"testing"
)

// The hash must equal the standard library's FNV-1a: partitions of stored
// entities depend on it.
func TestMatchesStandardLibrary(t *testing.T) {
	for _, s := range []string{"", "a", "order-1", "ünïcødé", string([]byte{0, 255, 7})} {
		h := fnv.New32a()
		_, _ = h.Write([]byte(s))
		if got, want := String(s), h.Sum32(); got != want {
			t.Errorf("String(%q) = %d, want %d", s, got, want)
		}
		h.Reset()
		_, _ = h.Write([]byte("cat\x00" + s))
		if got, want := Add(AddByte(Add(Offset, "cat"), 0), s), h.Sum32(); got != want {
			t.Errorf("Add(cat,0,%q) = %d, want %d", s, got, want)
		}
	}
}
