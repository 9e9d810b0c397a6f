package readmodel

import (
	"testing"

	"github.com/streamfold/streamfold/internal/luascript"
)

// TestScriptContracts: each script's header (KEYS, Codes) agrees with
// scripts.go, its body names every code and no other name in capitals, and
// compares its ops, guards, policies and kinds only with codes.
func TestScriptContracts(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		c         luascript.Contract
	}{
		// One key per write, and per write a list of arguments.
		{"writes.lua", writesBodyLua, luascript.Contract{Variadic: true, Codes: writesCodes(), Coded: []string{"op", "guard", "policy", "kind"}}},
		{"rollup.lua", rollupBodyLua, luascript.Contract{Variadic: true, Codes: rollupCodes(), Coded: []string{"guard", "kind"}}},
	} {
		if err := luascript.Check(tc.name, tc.src, tc.c); err != nil {
			t.Error(err)
		}
	}
}
