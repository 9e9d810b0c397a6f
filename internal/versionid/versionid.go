// Package versionid formats and parses the entry ids of entity streams,
// "<version>-0": the version is the id's milliseconds part and its sequence
// is always 0, so Redis itself refuses a non-increasing version, XRANGE from
// "<v+1>-0" reads after a snapshot and XTRIM MINID "<v+1>-0" truncates
// exactly behind one. eventstore's wire.go owns the entry format; this is
// the id arithmetic it shares with retention (and projection).
package versionid

import (
	"strconv"
	"strings"
)

// Format returns the entry id of version v.
func Format(v uint64) string { return strconv.FormatUint(v, 10) + "-0" }

// Parse returns the version of an entity stream entry id "<v>-0" (v > 0);
// false when id is not one.
func Parse(id string) (uint64, bool) {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok || seq != "0" {
		return 0, false
	}
	v, err := strconv.ParseUint(ms, 10, 64)
	return v, err == nil && v > 0
}
