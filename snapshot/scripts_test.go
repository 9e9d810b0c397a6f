package snapshot

import (
	"testing"

	"github.com/streamfold/streamfold/internal/luascript"
)

// TestScriptContracts: every script's header (KEYS, ARGV, Codes) agrees with
// its Go counterpart in scripts.go, every code is used by its body, and no
// status is returned as a bare number.
func TestScriptContracts(t *testing.T) {
	var k scriptKeys
	for _, tc := range []struct {
		name, src string
		c         luascript.Contract
	}{
		{"load.lua", loadLua, luascript.Contract{Keys: len(k.load()), Args: len(loadArgs(1, 1)), Codes: loadCodes(), Statuses: true}},
		{"save.lua", saveLua, luascript.Contract{Keys: len(k.all()), Args: len(saveArgs(nil)), Codes: saveCodes(), Statuses: true}},
		{"invalidate.lua", invalidateLua, luascript.Contract{Keys: len(k.all())}},
	} {
		if err := luascript.Check(tc.name, tc.src, tc.c); err != nil {
			t.Error(err)
		}
	}
}
