package readmodel

import (
	"testing"

	"github.com/streamfold/streamfold/internal/luascript"
)

// TestScriptContracts: each script's header (KEYS, Codes) agrees with
// scripts.go, and its body names every code.
func TestScriptContracts(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		c         luascript.Contract
	}{
		// One key per write, and per write a list of arguments.
		{"writes.lua", writesBodyLua, luascript.Contract{Variadic: true, Codes: writesCodes()}},
		{"rollup.lua", rollupBodyLua, luascript.Contract{Variadic: true, Codes: rollupCodes()}},
	} {
		if err := luascript.Check(tc.name, tc.src, tc.c); err != nil {
			t.Error(err)
		}
	}
}
