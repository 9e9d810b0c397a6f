package readmodel

import (
	"regexp"
	"testing"
)

// TestOutcomesMatchScript: the Go names of writes.lua's replies are the
// script's own, so the two cannot drift.
func TestOutcomesMatchScript(t *testing.T) {
	m := regexp.MustCompile(`(?m)^local APPLIED, SKIPPED, DEFERRED, REFUSED, CONFLICT = (\d), (\d), (\d), (\d), (\d)$`).FindStringSubmatch(writesLua)
	if m == nil {
		t.Fatal("writes.lua: reply constants not found")
	}
	for i, o := range []outcome{outApplied, outSkipped, outDeferred, outRefused, outConflict} {
		if want := string(rune('0' + o)); m[i+1] != want {
			t.Errorf("reply %d: writes.lua says %s, Go says %s", i, m[i+1], want)
		}
	}
}
