package eventstore

import (
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
	"github.com/streamfold/streamfold/internal/luascript"
	"github.com/streamfold/streamfold/internal/versionid"
)

// The Go side of the store's scripts (lua/append.lua, lua/delete.lua,
// lua/info.lua): their codes, the KEYS and ARGV they take, and their
// replies. The codes are defined here only and prepended to each script as
// Lua locals (luascript.Prelude); TestScriptContracts checks every script's
// header (KEYS, ARGV, Codes) against this file.

// expectedCodes are the expected versions with a special meaning, as the
// scripts name them; every other value is an exact version (>= 0). Adding a
// kind: its constant in event.go, a line here, its handling in append.lua
// (which refuses a negative code it does not know) and delete.lua.
// TestExpectedKindsListed fails while a negative ExpectedVersion constant of
// event.go is missing here, TestScriptContracts while a header misses it.
func expectedCodes() []luascript.Code {
	return []luascript.Code{
		{Name: "EXPECT_ANY", Value: int64(Any)},
		{Name: "EXPECT_EXISTS", Value: int64(StreamExists)},
	}
}

// valid reports whether e is an exact version or a kind the scripts know.
func (e ExpectedVersion) valid() bool {
	if e >= 0 {
		return true
	}
	for _, c := range expectedCodes() {
		if int64(e) == c.Value {
			return true
		}
	}
	return false
}

// appendStatus is the first element of each transaction's reply of
// append.lua.
type appendStatus int64

const (
	appendAppended appendStatus = 0 // {APPENDED, {version, pos...}, ...}
	appendReplayed appendStatus = 1 // {REPLAYED, {version, pos...}, ...}: a retry, nothing written
	appendConflict appendStatus = 2 // {CONFLICT, stream index, actual version}
	appendFailed   appendStatus = 3 // {FAILED, partial (0|1), message}
	appendDamaged  appendStatus = 4 // {DAMAGED, stream index, version, last}
)

// appendStreamArgs is the number of ARGV entries of one stream's part of an
// append transaction before its events: key index, entity id, expected,
// expected id, N. Each event then takes two: entry id and envelope.
const appendStreamArgs = 5

func appendCodes() []luascript.Code {
	return append([]luascript.Code{
		{Name: "APPENDED", Value: int64(appendAppended)},
		{Name: "REPLAYED", Value: int64(appendReplayed)},
		{Name: "CONFLICT", Value: int64(appendConflict)},
		{Name: "FAILED", Value: int64(appendFailed)},
		{Name: "DAMAGED", Value: int64(appendDamaged)},
	}, expectedCodes()...)
}

// appendStreamPart returns the ARGV part of one stream of a transaction up
// to its events: key index, entity id, expected version, expected id ("<v>-0"
// for an exact version > 0, else ""), number of events.
func appendStreamPart(keyIndex int, sa StreamAppend) []string {
	expID := ""
	if sa.Expected > 0 {
		expID = versionid.Format(uint64(sa.Expected))
	}
	return []string{strconv.Itoa(keyIndex), sa.Stream.ID, strconv.FormatInt(int64(sa.Expected), 10), expID, strconv.Itoa(len(sa.Events))}
}

// deleteStatus is the first element of delete.lua's reply.
type deleteStatus int64

const (
	deleteDeleted  deleteStatus = 0 // deleted: version of the marker, its position
	deleteConflict deleteStatus = 2 // wrong expected version: version is the actual one
	deleteNoStream deleteStatus = 3 // no such stream (never written, or deleted)
)

func deleteCodes() []luascript.Code {
	return append([]luascript.Code{
		{Name: "DELETED", Value: int64(deleteDeleted)},
		{Name: "CONFLICT", Value: int64(deleteConflict)},
		{Name: "NO_STREAM", Value: int64(deleteNoStream)},
	}, expectedCodes()...)
}

// deleteRequest is one call of delete.lua.
type deleteRequest struct {
	log, stream, snapshot, tombstone string // keys, one hash tag
	id                               string // the entity id
	expected                         ExpectedVersion
	marker                           []byte // the marker's envelope
}

func (r deleteRequest) keys() []string {
	return []string{r.log, r.stream, r.snapshot, r.tombstone}
}

func (r deleteRequest) args() []string {
	return []string{r.id, strconv.FormatInt(int64(r.expected), 10), rueidis.BinaryString(r.marker)}
}

// deleteReply is delete.lua's reply {status, version, position}.
type deleteReply struct {
	status   deleteStatus
	version  uint64
	position string // "" unless deleted
}

func parseDeleteReply(res []rueidis.RedisMessage) (deleteReply, error) {
	if len(res) != 3 {
		return deleteReply{}, fmt.Errorf("bad script reply: %d elements", len(res))
	}
	st, err := res[0].AsInt64()
	if err != nil {
		return deleteReply{}, fmt.Errorf("bad script reply: %w", err)
	}
	ver, err := res[1].AsInt64()
	if err != nil {
		return deleteReply{}, fmt.Errorf("bad script reply: %w", err)
	}
	pos, err := res[2].ToString()
	if err != nil {
		return deleteReply{}, fmt.Errorf("bad script reply: %w", err)
	}
	return deleteReply{status: deleteStatus(st), version: uint64(ver), position: pos}, nil
}

// infoKeys are the KEYS of info.lua: the entity stream and its tombstone.
func infoKeys(stream, tombstone string) []string { return []string{stream, tombstone} }

// infoReply is info.lua's reply {version, first, deletedAt, last, damaged}.
type infoReply struct {
	version, first, deletedAt, last uint64
	damaged                         bool
}

func parseInfoReply(arr []int64) (infoReply, error) {
	if len(arr) != 5 {
		return infoReply{}, fmt.Errorf("info script returned %d values", len(arr))
	}
	return infoReply{version: uint64(arr[0]), first: uint64(arr[1]), deletedAt: uint64(arr[2]), last: uint64(arr[3]), damaged: arr[4] == 1}, nil
}
