-- save.lua: write a snapshot unless a newer one of the same schema is stored
-- or it does not belong to the stream's current life.
--
-- KEYS[1]  the snapshot          <ns>:{<cat>:<p>}:snap:<id>
-- KEYS[2]  the entity stream     <ns>:{<cat>:<p>}:s:<id>      (same hash tag)
-- KEYS[3]  its stream tombstone  <ns>:{<cat>:<p>}:gone:<id>   (see eventstore's delete.lua)
-- KEYS[4]  its snapshot floor    <ns>:{<cat>:<p>}:snapmin:<id> (see invalidate.lua)
-- ARGV[1]  the new snapshot (wire.go: fixed-width header, then the state)
--
-- Codes: SKIPPED 0, WRITTEN 1, STALE 2
-- (defined in Go, snapshot/scripts.go, and prepended as Lua locals)
--
-- Returns WRITTEN, SKIPPED (the stored snapshot has the same schema
-- version and a version at least as high), or STALE: the stream does not
-- exist (deleted since the snapshot was taken), or the snapshot's version
-- is before the start of its current life (taken before a Delete and a
-- re-creation), at or below the snapshot floor (taken before the entity was
-- forgotten: it may hold personal data in the clear) or after its version.
--
-- Snapshots are written in the background, so one may arrive after the
-- stream was deleted, or deleted and started again: without this check it
-- would be loaded as the state of the new life.
--
-- Several writers may snapshot one aggregate (processes, queued jobs): this
-- keeps the newest. The header's version is a big-endian uint64 at a fixed
-- offset, compared byte by byte (Lua's string comparison follows the
-- server's collation locale, not byte order). A stored snapshot of another
-- schema version, or an unreadable one, is replaced.

local function header_ok(s)
  return #s >= 26 and string.byte(s, 1) == 148 and string.byte(s, 2) == 207 and string.byte(s, 11) == 206
end

-- true when the version in a's header is >= the one in b's
local function not_older(a, b)
  for i = 3, 10 do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return true
end

local function vof(id)
  return tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
end

local new = ARGV[1]
if not header_ok(new) then return redis.error_reply('ERR snapshot: bad header') end
local v = 0
for i = 3, 10 do v = v * 256 + string.byte(new, i) end
if redis.call('EXISTS', KEYS[2]) == 0 then return STALE end
local start = (tonumber(redis.call('GET', KEYS[3]) or '0') or 0) + 1
if v < start then return STALE end
if v <= (tonumber(redis.call('GET', KEYS[4]) or '0') or 0) then return STALE end
local r = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #r == 0 or vof(r[1][1]) < v then
  -- trimmed to empty, or the tail removed by hand: the exact version
  local cur = 0
  local info = redis.call('XINFO', 'STREAM', KEYS[2])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then cur = vof(info[i + 1]) end
  end
  if v > cur then return STALE end
end
local cur = redis.call('GET', KEYS[1])
if cur and header_ok(cur) and string.sub(cur, 12, 15) == string.sub(new, 12, 15) and not_older(cur, new) then
  return SKIPPED
end
redis.call('SET', KEYS[1], new)
return WRITTEN
