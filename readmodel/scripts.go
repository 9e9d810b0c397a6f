package readmodel

import (
	_ "embed"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/luascript"
)

// The Go side of the read models' scripts: their sources and the codes
// they reply with, defined here once and prepended to the Lua as locals
// (luascript.Prelude). TestScriptContracts checks each script's header
// against them.

var (
	//go:embed lua/writes.lua
	writesBodyLua string
	//go:embed lua/rollup.lua
	rollupBodyLua string

	writesLua = luascript.Prelude(writesCodes()...) + writesBodyLua
	rollupLua = luascript.Prelude(rollupCodes()...) + rollupBodyLua

	// One write goes through rueidis.Lua; a Batch's calls are pipelined
	// by luascript.ExecMulti (see Batch.Exec).
	writesScript = rueidis.NewLuaScript(writesLua)
	writesCall   = luascript.NewScript(writesLua)
	rollupScript = rueidis.NewLuaScript(rollupLua)
	rollupCall   = luascript.NewScript(rollupLua)
)

// outcome is a script's reply for one write (writes.lua; rollup.lua
// replies outApplied or outSkipped).
type outcome int64

const (
	outSkipped  outcome = 0 // not newer than the stored version (or not the next one)
	outApplied  outcome = 1
	outDeferred outcome = 2 // missing entry, Loader configured: a stale marker was left
	outRefused  outcome = 3 // missing entry, no Loader: nothing written
	outConflict outcome = 4 // update only: the key left the state the value was computed from
	outMixed    outcome = 5 // the key is fed by another stream: nothing written
)

func writesCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "SKIPPED", Value: int64(outSkipped)},
		{Name: "APPLIED", Value: int64(outApplied)},
		{Name: "DEFERRED", Value: int64(outDeferred)},
		{Name: "REFUSED", Value: int64(outRefused)},
		{Name: "CONFLICT", Value: int64(outConflict)},
		{Name: "MIXED", Value: int64(outMixed)},
	}
}

func rollupCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "SKIPPED", Value: int64(outSkipped)},
		{Name: "APPLIED", Value: int64(outApplied)},
	}
}
