package readmodel

import (
	_ "embed"
	"strconv"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/luascript"
)

// The Go side of the read models' scripts: their sources, the codes they
// reply with and the codes of their arguments (ops, guards, missing
// policies, op kinds), defined here once and prepended to the Lua as locals
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

// writeOp is what a write of writes.lua does (its ARGV "op").
type writeOp int64

const (
	opSet    writeOp = 1 // replace the hash with field, value pairs
	opPatch  writeOp = 2 // apply (kind, field, value) triples
	opUpdate writeOp = 3 // Typed.Update's read-modify-write: expected state, then as set
	opDel    writeOp = 4 // leave a tombstone
)

// String returns the op's name, as in error messages.
func (o writeOp) String() string {
	switch o {
	case opSet:
		return "set"
	case opPatch:
		return "patch"
	case opUpdate:
		return "update"
	case opDel:
		return "del"
	}
	return "op " + strconv.FormatInt(int64(o), 10)
}

// guardMode says which stored versions let a write apply (writes.lua and
// rollup.lua); see WithNextGuard.
type guardMode int64

const (
	guardNewer guardMode = 1 // the stored version is older than the event's
	guardNext  guardMode = 2 // the stored version is exactly the event's minus one
)

// missingPolicy says what a patch or update on a missing entry does
// (writes.lua): see Model.Patch.
type missingPolicy int64

const (
	missingDefer missingPolicy = 1 // leave a stale marker for the Loader (DEFERRED)
	missingFail  missingPolicy = 2 // write nothing (REFUSED): no Loader
)

// Update's expected state (the first argument of an opUpdate) is the "_v"
// of the entry its value was computed from, or one of these.
const (
	expectFresh int64 = 0  // computed from empty: a fresh start
	expectNone  int64 = -1 // not computed: there is no state to apply to
)

// opKind is the kind of one Op: the first of a patch triple (writes.lua,
// field kinds only) or of a rollup quadruple (rollup.lua, every kind).
type opKind int64

const (
	kindSetField     opKind = 1 // HSET
	kindIncrBy       opKind = 2 // HINCRBY
	kindIncrByFloat  opKind = 3 // HINCRBYFLOAT
	kindDelField     opKind = 4 // HDEL
	kindAddMember    opKind = 5 // SADD to a set
	kindRemoveMember opKind = 6 // SREM from a set
	kindKeepLatest   opKind = 7 // ZADD GT to a latest list, then trim it
)

// codeArg returns a code (an op, guard, policy or kind) as a script
// argument.
func codeArg[C ~int64](c C) string { return strconv.FormatInt(int64(c), 10) }

// writeSettings are the settings of a write of writes.lua that the writes
// of one call mostly share (each argument costs Redis ~0.2 µs): a write
// sends them only when they differ from the previous write's in the call.
type writeSettings struct {
	guard  guardMode
	ttl    int64 // ms, 0: none
	op     writeOp
	policy missingPolicy
}

// writeCall builds the ARGV of one call of writes.lua.
type writeCall struct {
	args []string
	last writeSettings
	sent bool // a write of the call has sent settings (last)
}

// add appends one write: its version, source, op argument count n (sent
// as -(n+1) when the settings follow because they differ from the previous
// write's), the settings when they do (guard, TTL, op, missing policy),
// then the op arguments.
func (c *writeCall) add(version uint64, source string, set writeSettings, opArgs []string) {
	n := len(opArgs)
	if c.sent && set == c.last {
		c.args = append(c.args, strconv.FormatUint(version, 10), source, strconv.Itoa(n))
	} else {
		c.args = append(c.args, strconv.FormatUint(version, 10), source, strconv.Itoa(-(n + 1)),
			codeArg(set.guard), strconv.FormatInt(set.ttl, 10), codeArg(set.op), codeArg(set.policy))
		c.last, c.sent = set, true
	}
	c.args = append(c.args, opArgs...)
}

// fieldKindCodes are the op kinds of a Model patch.
func fieldKindCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "KIND_SET_FIELD", Value: int64(kindSetField)},
		{Name: "KIND_INCR_BY", Value: int64(kindIncrBy)},
		{Name: "KIND_INCR_BY_FLOAT", Value: int64(kindIncrByFloat)},
		{Name: "KIND_DEL_FIELD", Value: int64(kindDelField)},
	}
}

func guardCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "GUARD_NEWER", Value: int64(guardNewer)},
		{Name: "GUARD_NEXT", Value: int64(guardNext)},
	}
}

func writesCodes() []luascript.Code {
	codes := []luascript.Code{
		{Name: "SKIPPED", Value: int64(outSkipped)},
		{Name: "APPLIED", Value: int64(outApplied)},
		{Name: "DEFERRED", Value: int64(outDeferred)},
		{Name: "REFUSED", Value: int64(outRefused)},
		{Name: "CONFLICT", Value: int64(outConflict)},
		{Name: "MIXED", Value: int64(outMixed)},
		{Name: "OP_SET", Value: int64(opSet)},
		{Name: "OP_PATCH", Value: int64(opPatch)},
		{Name: "OP_UPDATE", Value: int64(opUpdate)},
		{Name: "OP_DEL", Value: int64(opDel)},
		{Name: "MISSING_DEFER", Value: int64(missingDefer)},
		{Name: "MISSING_FAIL", Value: int64(missingFail)},
		{Name: "EXPECT_FRESH", Value: expectFresh},
		{Name: "EXPECT_NONE", Value: expectNone},
	}
	codes = append(codes, guardCodes()...)
	return append(codes, fieldKindCodes()...)
}

func rollupCodes() []luascript.Code {
	codes := []luascript.Code{
		{Name: "SKIPPED", Value: int64(outSkipped)},
		{Name: "APPLIED", Value: int64(outApplied)},
	}
	codes = append(codes, guardCodes()...)
	return append(append(codes, fieldKindCodes()...),
		luascript.Code{Name: "KIND_ADD_MEMBER", Value: int64(kindAddMember)},
		luascript.Code{Name: "KIND_REMOVE_MEMBER", Value: int64(kindRemoveMember)},
		luascript.Code{Name: "KIND_KEEP_LATEST", Value: int64(kindKeepLatest)})
}
