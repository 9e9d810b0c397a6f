package readmodel

import (
	"regexp"
	"testing"
)

// TestOutcomesMatchScript: the Go names of writes.lua's and rollup.lua's
// replies are the scripts' own, so Go and Lua cannot drift.
func TestOutcomesMatchScript(t *testing.T) {
	m := regexp.MustCompile(`(?m)^local APPLIED, SKIPPED, DEFERRED, REFUSED, CONFLICT, MIXED = (\d), (\d), (\d), (\d), (\d), (\d)$`).FindStringSubmatch(writesLua)
	if m == nil {
		t.Fatal("writes.lua: reply constants not found")
	}
	for i, o := range []outcome{outApplied, outSkipped, outDeferred, outRefused, outConflict, outMixed} {
		if want := string(rune('0' + o)); m[i+1] != want {
			t.Errorf("reply %d: writes.lua says %s, Go says %s", i, m[i+1], want)
		}
	}
	m = regexp.MustCompile(`(?m)^local APPLIED, SKIPPED = (\d), (\d)$`).FindStringSubmatch(rollupLua)
	if m == nil {
		t.Fatal("rollup.lua: reply constants not found")
	}
	for i, o := range []outcome{outApplied, outSkipped} {
		if want := string(rune('0' + o)); m[i+1] != want {
			t.Errorf("reply %d: rollup.lua says %s, Go says %s", i, m[i+1], want)
		}
	}
}
