package snapshot

import (
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/luascript"
)

// The Go side of the snapshot scripts (lua/load.lua, lua/save.lua,
// lua/invalidate.lua): their codes, KEYS, ARGV and replies. The codes are
// defined here only and prepended to each script as Lua locals;
// TestScriptContracts checks every script's header against this file.

// scriptKeys are the keys the snapshot scripts touch, in one hash tag.
type scriptKeys struct {
	snapshot, stream, tombstone, floor string
}

// all is KEYS of save.lua and invalidate.lua.
func (k scriptKeys) all() []string { return []string{k.snapshot, k.stream, k.tombstone, k.floor} }

// load is KEYS of load.lua.
func (k scriptKeys) load() []string { return []string{k.snapshot, k.stream, k.tombstone} }

// loadStatus is the first element of load.lua's reply.
type loadStatus int64

const (
	loadNone        loadStatus = 0 // no snapshot; entries from the first event
	loadUsable      loadStatus = 1 // snapshot usable; entries after it
	loadOtherSchema loadStatus = 2 // snapshot of another schema version
	loadUnreadable  loadStatus = 3 // snapshot header unreadable
	loadEarlierLife loadStatus = 4 // snapshot of an earlier life, or of a deleted stream
)

func loadCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "NONE", Value: int64(loadNone)},
		{Name: "USABLE", Value: int64(loadUsable)},
		{Name: "OTHER_SCHEMA", Value: int64(loadOtherSchema)},
		{Name: "UNREADABLE", Value: int64(loadUnreadable)},
		{Name: "EARLIER_LIFE", Value: int64(loadEarlierLife)},
	}
}

// loadArgs is ARGV of load.lua: the schema version wanted, the page size
// (0: no entries, the caller reads them in the same MULTI).
func loadArgs(schemaVersion, page int) []string {
	return []string{strconv.Itoa(schemaVersion), strconv.Itoa(page)}
}

// loadReply is load.lua's reply {status, snapshot, entries, exists, version}.
type loadReply struct {
	status   loadStatus
	snapshot rueidis.RedisMessage // its bytes when status is loadUsable
	entries  []rueidis.RedisMessage
	exists   bool
	version  uint64 // the snapshot's when status is loadUsable, else 0
}

func parseLoadReply(resp []rueidis.RedisMessage) (loadReply, error) {
	if len(resp) != 5 {
		return loadReply{}, fmt.Errorf("load script returned %d elements", len(resp))
	}
	st, err := resp[0].AsInt64()
	if err != nil {
		return loadReply{}, fmt.Errorf("load script: status: %w", err)
	}
	exists, err := resp[3].AsInt64()
	if err != nil {
		return loadReply{}, fmt.Errorf("load script: exists: %w", err)
	}
	v, err := resp[4].AsInt64()
	if err != nil || v < 0 {
		return loadReply{}, fmt.Errorf("load script: version %d: %v", v, err)
	}
	r := loadReply{status: loadStatus(st), snapshot: resp[1], exists: exists != 0, version: uint64(v)}
	if r.exists {
		if r.entries, err = resp[2].ToArray(); err != nil {
			return loadReply{}, fmt.Errorf("load script: entries: %w", err)
		}
	}
	return r, nil
}

// saveStatus is save.lua's reply.
type saveStatus int64

const (
	saveSkipped saveStatus = 0 // a snapshot as new of the same schema is stored
	saveWritten saveStatus = 1
	saveStale   saveStatus = 2 // not of the stream's current life
)

func saveCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "SKIPPED", Value: int64(saveSkipped)},
		{Name: "WRITTEN", Value: int64(saveWritten)},
		{Name: "STALE", Value: int64(saveStale)},
	}
}

// saveArgs is ARGV of save.lua: the encoded snapshot.
func saveArgs(encoded []byte) []string { return []string{rueidis.BinaryString(encoded)} }

// The sources sent: the codes of this file, then the script.
func loadSource() string       { return luascript.Prelude(loadCodes()...) + loadLua }
func saveSource() string       { return luascript.Prelude(saveCodes()...) + saveLua }
func invalidateSource() string { return invalidateLua }
