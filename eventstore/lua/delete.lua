-- delete.lua: delete an entity: its stream and its snapshot, leaving a
-- deletion marker in the partition log so projections can react, and a
-- stream tombstone holding the marker's version so that a new life of the
-- entity continues after it (see append.lua).
--
-- KEYS[1]  the partition log
-- KEYS[2]  the entity stream
-- KEYS[3]  the entity's snapshot
-- KEYS[4]  the entity's stream tombstone
-- ARGV[1]  entity id
-- ARGV[2]  expected version (EXPECT_ANY, EXPECT_EXISTS, > 0 exact)
-- ARGV[3]  the marker's envelope (type "$deleted")
--
-- Codes: DELETED 0, CONFLICT 2, NO_STREAM 3, EXPECT_ANY -1, EXPECT_EXISTS -2
-- (defined in Go, eventstore/scripts.go, and prepended as Lua locals)
--
-- Returns {status, version, position}
--   DELETED:   version is that of the marker (the stream's version + 1) and
--              position its log entry
--   CONFLICT:  wrong expected version (version = actual)
--   NO_STREAM: no such stream (never written, or deleted)

local log, key, snap, tomb = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local exp = tonumber(ARGV[2])
if redis.call('EXISTS', key) == 0 then return {NO_STREAM, 0, ''} end
-- Deletes are rare: the exact version, also when the tail was removed by hand.
local cur = exact(key)
if exp ~= EXPECT_ANY and exp ~= EXPECT_EXISTS and cur ~= exp then return {CONFLICT, cur, ''} end
local v = cur + 1
local pos = redis.call('XADD', log, '*', 's', ARGV[1], 'v', v .. '-0', 'e', ARGV[3])
redis.call('DEL', key, snap)
redis.call('SET', tomb, v)
return {DELETED, v, pos}
