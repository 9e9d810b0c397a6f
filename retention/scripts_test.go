package retention

import (
	"testing"

	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/luascript"
)

// TestScriptContracts: every script's header (KEYS, ARGV, Codes) agrees with
// its Go counterpart in scripts.go, every code is used by its body, and no
// status is returned as a bare number.
func TestScriptContracts(t *testing.T) {
	ks := eventstore.NewKeyspace("ns")
	for _, tc := range []struct {
		name, src string
		c         luascript.Contract
	}{
		{"compact.lua", compactLua, luascript.Contract{Keys: 1, Args: len(compactArgs(Policy{}, false)), Codes: compactCodes(), Statuses: true}},
		{"trimlog.lua", trimLogLua, luascript.Contract{Keys: len(trimLogKeys(ks, "c", 0)), Args: len(trimLogArgs(eventstore.Position{}, 1))}},
	} {
		if err := luascript.Check(tc.name, tc.src, tc.c); err != nil {
			t.Error(err)
		}
	}
}
