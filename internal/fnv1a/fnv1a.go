// Package fnv1a is the 32-bit FNV-1a hash over strings, without allocating.
// The store's partition of an entity (eventstore.PartitionOf) is part of the
// storage format, so this hash never changes.
package fnv1a

const (
	// Offset is the FNV-1a offset basis: the hash of nothing.
	Offset uint32 = 2166136261
	prime  uint32 = 16777619
)

// Add returns h extended by the bytes of s.
func Add(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * prime
	}
	return h
}

// AddByte returns h extended by the byte b.
func AddByte(h uint32, b byte) uint32 { return (h ^ uint32(b)) * prime }

// String returns the hash of s.
func String(s string) uint32 { return Add(Offset, s) }
