package eventstore

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/streamfold/streamfold/internal/fnv1a"
	"github.com/streamfold/streamfold/internal/names"
)

// This file owns the key layout. Nothing else builds key strings.
//
//	<ns>:{<category>:<p>}:log        partition log p of a category (stream)
//	<ns>:{<category>:<p>}:s:<id>     entity stream (stream)
//	<ns>:{<category>:<p>}:snap:<id>  snapshot of an entity (string; written by package snapshot)
//	<ns>:{<category>:<p>}:snapmin:<id>  snapshot floor: snapshots at or below this version are refused
//	                                 (string; written when an entity is forgotten, package shred)
//	<ns>:{<category>:<p>}:gone:<id>  stream tombstone of a deleted entity (string: the version of its
//	                                 deletion marker; kept so a new life continues after it)
//	<ns>:cat:<category>              category metadata (hash: partitions)
//	<ns>:categories                  set of known categories
//
// Everything one script touches lives in the hash tag {<category>:<p>}, so
// one call never spans two cluster slots.

// Limits on names; longer names are rejected with ErrInvalidStreamID.
const (
	MaxCategoryLen  = 64
	MaxEntityIDLen  = 256
	MaxNamespaceLen = 64
	MaxPartitions   = 1024
)

// StreamID names one entity stream: the category (aggregate type, such as
// "account") and the entity id within it.
type StreamID struct {
	Category string
	ID       string
}

// Stream returns the StreamID of entity id in category.
func Stream(category, id string) StreamID { return StreamID{Category: category, ID: id} }

// String returns "category-id", the form ParseStreamID reads.
func (s StreamID) String() string { return s.Category + "-" + s.ID }

// ParseStreamID parses "category-id" (split at the first '-'; categories
// cannot contain '-') and validates both parts.
func ParseStreamID(s string) (StreamID, error) {
	cat, id, ok := strings.Cut(s, "-")
	if !ok {
		return StreamID{}, &InvalidStreamIDError{Value: s, Reason: `want "category-id"`}
	}
	sid := StreamID{Category: cat, ID: id}
	if err := sid.Validate(); err != nil {
		return StreamID{}, err
	}
	return sid, nil
}

// Validate reports whether the category and id are safe to use in keys.
func (s StreamID) Validate() error {
	if err := ValidateCategory(s.Category); err != nil {
		return err
	}
	return ValidateEntityID(s.ID)
}

// ValidateCategory checks a category name: 1–64 characters of [A-Za-z0-9_.].
// Categories appear inside the hash tag, so anything else (':', '-', braces,
// spaces) is refused.
func ValidateCategory(c string) error {
	var reason string
	switch f, b := names.Check(c, MaxCategoryLen, names.Tagged); f {
	case names.OK:
		return nil
	case names.Empty:
		reason = "empty"
	case names.TooLong:
		reason = fmt.Sprintf("longer than %d bytes", MaxCategoryLen)
	default:
		reason = fmt.Sprintf("character %q not in [A-Za-z0-9_.]", b)
	}
	return &InvalidStreamIDError{Field: "category", Value: c, Reason: reason}
}

// ValidateEntityID checks an entity id: 1–256 bytes of valid UTF-8 with no
// '{' or '}' (which could move the key's hash tag) and no character that
// cannot be seen, so that two ids that print alike are the same id. Refused:
// control characters, whitespace of any script (unicode.IsSpace: no-break and
// ideographic spaces, line separators), format characters (Cf: zero-width
// spaces and joiners, bidi marks, embeddings and isolates, the BOM, soft
// hyphen, tag characters), the other default-ignorable code points (variation
// selectors, the combining grapheme joiner, Hangul fillers) and
// noncharacters. The reason names the rune and its byte offset. Visible
// letters, marks, digits, symbols and punctuation of any script are valid.
func ValidateEntityID(id string) error {
	if id == "" {
		return &InvalidStreamIDError{Field: "id", Value: id, Reason: "empty"}
	}
	if len(id) > MaxEntityIDLen {
		return &InvalidStreamIDError{Field: "id", Value: id, Reason: fmt.Sprintf("longer than %d bytes", MaxEntityIDLen)}
	}
	if asciiVisible(id) {
		return nil // the common case, without the Unicode tables
	}
	return validateRunes(id)
}

// validateRunes is ValidateEntityID's check of each character.
func validateRunes(id string) error {
	if !utf8.ValidString(id) {
		return &InvalidStreamIDError{Field: "id", Value: id, Reason: "not valid UTF-8"}
	}
	for i, r := range id {
		var what string
		switch {
		case r == '{' || r == '}':
			what = "brace"
		case unicode.IsControl(r):
			what = "control character"
		case unicode.IsSpace(r) || unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp):
			what = "whitespace"
		case unicode.Is(unicode.Cf, r):
			what = "invisible format character"
		case unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector):
			what = "invisible (default-ignorable) character"
		case unicode.Is(unicode.Noncharacter_Code_Point, r):
			what = "noncharacter"
		default:
			continue
		}
		return &InvalidStreamIDError{Field: "id", Value: id, Reason: fmt.Sprintf("%s %U %q at byte %d not allowed", what, r, r, i)}
	}
	return nil
}

// asciiVisible reports whether id is all printable ASCII other than the
// space and braces: valid without looking further.
func asciiVisible(id string) bool {
	for i := 0; i < len(id); i++ {
		if b := id[i]; b <= ' ' || b >= 0x7f || b == '{' || b == '}' {
			return false
		}
	}
	return true
}

// ValidateNamespace checks a key prefix: 1–64 characters of [A-Za-z0-9_.-].
func ValidateNamespace(ns string) error {
	var reason string
	switch f, b := names.Check(ns, MaxNamespaceLen, names.Plain); f {
	case names.OK:
		return nil
	case names.BadByte:
		reason = fmt.Sprintf("character %q not in [A-Za-z0-9_.-]", b)
	default:
		reason = fmt.Sprintf("want 1 to %d bytes", MaxNamespaceLen)
	}
	return &InvalidStreamIDError{Field: "namespace", Value: ns, Reason: reason}
}

// PartitionOf returns the partition (0 ≤ p < partitions) that entity id
// belongs to: FNV-1a (32 bit) of the id, modulo partitions. It is part of the
// storage format and never changes.
func PartitionOf(id string, partitions int) int {
	return int(fnv1a.String(id) % uint32(partitions))
}

// Keyspace is the layout of one namespace's Redis keys, part of the storage
// format: Streamfold's packages (snapshot, projection, retention, the CLI)
// build and classify keys with it, and so can a program or an operator that
// reads or repairs them by hand (see Store.Decode).
type Keyspace struct{ ns string }

// NewKeyspace returns the key builder for namespace ns (validated by the caller).
func NewKeyspace(ns string) Keyspace { return Keyspace{ns: ns} }

// Namespace returns the key prefix (without the trailing ':').
func (k Keyspace) Namespace() string { return k.ns }

// Tag returns the hash tag of a category partition, braces included.
func (k Keyspace) Tag(category string, partition int) string {
	return "{" + category + ":" + strconv.Itoa(partition) + "}"
}

// Log returns the key of partition log p of category.
func (k Keyspace) Log(category string, partition int) string {
	return k.ns + ":" + k.Tag(category, partition) + ":log"
}

// LogTrimmed returns the key of the counter of entries trimmed from
// partition log p of category by retention (package retention): with the
// log's length, it counts the entries ever added where Redis does not
// (before 7.0), so projection lag stays exact there.
func (k Keyspace) LogTrimmed(category string, partition int) string {
	return k.ns + ":" + k.Tag(category, partition) + ":logtrim"
}

// Stream returns the key of an entity stream in partition p.
func (k Keyspace) Stream(s StreamID, partition int) string {
	return k.ns + ":" + k.Tag(s.Category, partition) + ":s:" + s.ID
}

// Snapshot returns the key of an entity's snapshot, beside its stream.
func (k Keyspace) Snapshot(s StreamID, partition int) string {
	return k.ns + ":" + k.Tag(s.Category, partition) + ":snap:" + s.ID
}

// SnapshotFloor returns the key of an entity's snapshot floor, beside its
// stream: snapshots at or below the version it holds are refused (package
// snapshot), so that one taken before the entity was forgotten (package
// shred) and written late cannot bring its personal data back.
func (k Keyspace) SnapshotFloor(s StreamID, partition int) string {
	return k.ns + ":" + k.Tag(s.Category, partition) + ":snapmin:" + s.ID
}

// Tombstone returns the key of an entity's stream tombstone, beside its
// stream: written by Delete, it holds the version of the deletion marker.
func (k Keyspace) Tombstone(s StreamID, partition int) string {
	return k.ns + ":" + k.Tag(s.Category, partition) + ":gone:" + s.ID
}

// StreamPattern returns the SCAN pattern that matches the entity streams of
// category in every partition, "<ns>:{<category>:*}:s:*" (the braces of the
// hash tag are not special in a glob pattern). category is one checked by
// ValidateCategory, so it holds no glob characters; on a cluster the
// pattern spans every slot, so scan each primary.
func (k Keyspace) StreamPattern(category string) string {
	return k.ns + ":{" + category + ":*}:s:*"
}

// PartitionKey returns the key of a per-partition object named name (for
// example a projection's lease), in the partition's hash tag.
func (k Keyspace) PartitionKey(category string, partition int, name string) string {
	return k.ns + ":" + k.Tag(category, partition) + ":" + name
}

// Category returns the key of a category's metadata hash.
func (k Keyspace) Category(category string) string { return k.ns + ":cat:" + category }

// Categories returns the key of the set of known categories.
func (k Keyspace) Categories() string { return k.ns + ":categories" }

// Key returns "<ns>:<name>" for namespace-wide objects of other packages
// (read models, dead letters) that need no shared hash tag.
func (k Keyspace) Key(name string) string { return k.ns + ":" + name }

// ParseStreamKey is the inverse of Stream: it returns the StreamID and
// partition encoded in an entity stream key of this namespace.
func (k Keyspace) ParseStreamKey(key string) (StreamID, int, error) {
	cat, p, id, err := k.parseTagged(key, "s:", "an entity stream")
	if err != nil {
		return StreamID{}, 0, err
	}
	sid := StreamID{Category: cat, ID: id}
	if err := sid.Validate(); err != nil {
		return StreamID{}, 0, err
	}
	return sid, p, nil
}

// ParseLogKey is the inverse of Log: it returns the category and partition
// of a partition log key of this namespace.
func (k Keyspace) ParseLogKey(key string) (category string, partition int, err error) {
	cat, p, rest, err := k.parseTagged(key, "log", "a partition log")
	if err == nil && rest != "" {
		err = &InvalidStreamIDError{Field: "key", Value: key, Reason: "not a partition log key"}
	}
	if err != nil {
		return "", 0, err
	}
	if err := ValidateCategory(cat); err != nil {
		return "", 0, err
	}
	return cat, p, nil
}

// parseTagged splits "<ns>:{<category>:<partition>}:<kind><rest>", a key of
// the given kind in a partition's hash tag.
func (k Keyspace) parseTagged(key, kind, what string) (category string, partition int, rest string, err error) {
	bad := func(reason string) (string, int, string, error) {
		return "", 0, "", &InvalidStreamIDError{Field: "key", Value: key, Reason: reason}
	}
	after, ok := strings.CutPrefix(key, k.ns+":{")
	if !ok {
		return bad("not in namespace " + k.ns)
	}
	tag, rest, ok := strings.Cut(after, "}:"+kind)
	if !ok {
		return bad("not " + what + " key")
	}
	cat, ps, ok := strings.Cut(tag, ":")
	if !ok {
		return bad("hash tag without partition")
	}
	p, perr := strconv.Atoi(ps)
	if perr != nil || p < 0 || p >= MaxPartitions || strconv.Itoa(p) != ps {
		return bad("bad partition")
	}
	return cat, p, rest, nil
}
