package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
)

// naiveAppendScript is the smallest check-and-append a hand-written event
// store would run: compare the entity stream's last id with the expected
// one, add the event to the partition log and to the entity stream (the log
// position beside it). It keeps no idempotency, no tombstones, no damage
// checks, no group commit: the baseline S1 plain must at least match.
//
// KEYS[1] the partition log, KEYS[2] the entity stream (same hash tag);
// ARGV: expected last id ("0-0": none), entity id, new version id, envelope.
const naiveAppendScript = `
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local cur = '0-0'
if #last > 0 then cur = last[1][1] end
if cur ~= ARGV[1] then return redis.error_reply('WRONGVERSION ' .. cur) end
local pos = redis.call('XADD', KEYS[1], '*', 's', ARGV[2], 'v', ARGV[3], 'e', ARGV[4])
redis.call('XADD', KEYS[2], ARGV[3], 'e', ARGV[4], 'p', pos)
return pos`

// naiveAppender appends single events with the naive script, with the
// entity/partition layout and the payload of appender: worker w owns
// entities w, w+64, ...
type naiveAppender struct {
	c        rueidis.Client
	script   *rueidis.Lua
	ids      []string
	logs     []string // per entity: its partition log
	streams  []string
	versions []uint64
	cursor   []int
	payload  []byte
}

func newNaiveAppender(c rueidis.Client, payload []byte) *naiveAppender {
	const partitions = 16
	a := &naiveAppender{c: c, script: rueidis.NewLuaScript(naiveAppendScript), payload: payload,
		ids: make([]string, s1Entities), logs: make([]string, s1Entities), streams: make([]string, s1Entities),
		versions: make([]uint64, s1Entities), cursor: make([]int, s1Workers)}
	for i := range a.ids {
		a.ids[i] = fmt.Sprintf("acc-%d", i)
		tag := "{account:" + strconv.Itoa(i%partitions) + "}"
		a.logs[i] = "s1naive:" + tag + ":log"
		a.streams[i] = "s1naive:" + tag + ":s:" + a.ids[i]
	}
	return a
}

func (a *naiveAppender) op(ctx context.Context) func(w, i int) error {
	per := s1Entities / s1Workers
	return func(w, _ int) error {
		e := w + s1Workers*(a.cursor[w]%per)
		a.cursor[w]++
		v := a.versions[e]
		// An envelope as ours carries it: the event id, then the payload.
		id := uuid.Must(uuid.NewV7())
		env := append(id[:], a.payload...)
		err := a.script.Exec(ctx, a.c, []string{a.logs[e], a.streams[e]},
			[]string{strconv.FormatUint(v, 10) + "-0", a.ids[e], strconv.FormatUint(v+1, 10) + "-0", rueidis.BinaryString(env)}).Error()
		a.versions[e]++
		return err
	}
}
