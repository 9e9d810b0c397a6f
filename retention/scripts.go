package retention

import (
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/eventstore"
	"github.com/streamfold/streamfold/internal/luascript"
)

// The Go side of retention's scripts (lua/compact.lua, lua/trimlog.lua):
// their codes, KEYS, ARGV and replies. The codes are defined here only and
// prepended to the scripts as Lua locals; TestScriptContracts checks every
// script's header against this file.

// compactStatus is the first element of compact.lua's reply.
type compactStatus int64

const (
	compactDone           compactStatus = 1  // compacted (on a dry run: would be)
	compactNoStream       compactStatus = 0  // deleted since the scan
	compactNotIdle        compactStatus = -1 // not idle long enough
	compactTooLarge       compactStatus = -2 // too many entries
	compactAlreadyCompact compactStatus = -3
)

func compactCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "COMPACTED", Value: int64(compactDone)},
		{Name: "NO_STREAM", Value: int64(compactNoStream)},
		{Name: "NOT_IDLE", Value: int64(compactNotIdle)},
		{Name: "TOO_LARGE", Value: int64(compactTooLarge)},
		{Name: "ALREADY_COMPACT", Value: int64(compactAlreadyCompact)},
	}
}

// compactArgs is ARGV of compact.lua: the minimum idle time in seconds, the
// maximum number of entries, and whether it is a dry run.
func compactArgs(p Policy, dryRun bool) []string {
	dry := "0"
	if dryRun {
		dry = "1"
	}
	return []string{strconv.FormatInt(int64(p.CompactIdle.Seconds()), 10), strconv.Itoa(p.CompactMaxEntries), dry}
}

// compactReply is compact.lua's reply {status, bytes before, bytes after,
// entries}.
type compactReply struct {
	status                 compactStatus
	before, after, entries int64
}

func parseCompactReply(res []int64) (compactReply, error) {
	if len(res) != 4 {
		return compactReply{}, fmt.Errorf("bad reply %v", res)
	}
	return compactReply{status: compactStatus(res[0]), before: res[1], after: res[2], entries: res[3]}, nil
}

// trimLogKeys is KEYS of trimlog.lua: the partition log and its trim
// counter.
func trimLogKeys(ks eventstore.Keyspace, category string, partition int) []string {
	return []string{ks.Log(category, partition), ks.LogTrimmed(category, partition)}
}

// trimLogArgs is ARGV of trimlog.lua: the MINID threshold and the most
// entries one call may evict. It replies with the number trimmed.
func trimLogArgs(threshold eventstore.Position, limit int64) []string {
	return []string{threshold.String(), strconv.FormatInt(limit, 10)}
}

// The sources sent: the codes of this file, then the script.
func compactSource() string { return luascript.Prelude(compactCodes()...) + compactLua }
func trimLogSource() string { return trimLogLua }

// newScripts returns the compact and trim scripts.
func newScripts() (compact, trim *rueidis.Lua) {
	return rueidis.NewLuaScript(compactSource()), rueidis.NewLuaScript(trimLogSource())
}
