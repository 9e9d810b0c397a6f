-- info.lua: what the store knows of one stream's life, read-only.
--
-- KEYS[1]  the entity stream
-- KEYS[2]  its stream tombstone
--
-- Returns {version, first, deletedAt, last, damaged}
--   version    the stream's version (last-generated-id): 0 when it does not
--              exist
--   first      the version of its first stored event; 0 when none is stored
--   deletedAt  the version of its last deletion marker; 0 if never deleted
--   last       the version of its last stored event (below version when the
--              tail was removed by hand); 0 when none is stored
--   damaged    1 when its last events were removed by hand (XDEL): below
--              its version no event is left (Redis 7: max-deleted-entry-id
--              is its last id), or its last stored event is below it

local key, tomb = KEYS[1], KEYS[2]
local d = tonumber(redis.call('GET', tomb) or '0') or 0
if redis.call('EXISTS', key) == 0 then return {0, 0, d, 0, 0} end
local first, last = 0, 0
local r = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
if #r > 0 then first = vof(r[1][1]) end
r = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
if #r > 0 then last = vof(r[1][1]) end
local v, gone = exact(key)
local damaged = 0
if gone or (last > 0 and last < v) then damaged = 1 end
return {v, first, d, last, damaged}
