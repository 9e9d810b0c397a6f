-- load.lua: an entity's snapshot and the first page of its events after it,
-- in one round trip.
--
-- KEYS[1]  the snapshot        <ns>:{<cat>:<p>}:snap:<id>
-- KEYS[2]  the entity stream   <ns>:{<cat>:<p>}:s:<id>     (same hash tag)
-- KEYS[3]  its stream tombstone <ns>:{<cat>:<p>}:gone:<id>  (see eventstore's delete.lua)
-- ARGV[1]  the schema version the reader wants
-- ARGV[2]  page size: at most this many entries are returned; 0: none
--          (the caller reads them itself, in the same MULTI)
--
-- Codes: NONE 0, USABLE 1, OTHER_SCHEMA 2, UNREADABLE 3, EARLIER_LIFE 4
-- (defined in Go, snapshot/scripts.go, and prepended as Lua locals)
--
-- Returns {status, snapshot, entries, exists, version}:
--   NONE          no snapshot;                   entries from the first event
--   USABLE        snapshot usable (header        entries from <version+1>-0
--                 parsed, schema as wanted)
--   OTHER_SCHEMA  snapshot of another schema;    entries from the first event
--   UNREADABLE    snapshot header unreadable;    entries from the first event
--   EARLIER_LIFE  snapshot of an earlier life    entries from the first event
--                 of the stream (before its
--                 last Delete), or of a deleted
--                 stream
--   snapshot  the snapshot's bytes when status is USABLE, else ''
--   entries   as XRANGE returns them
--   exists    1 when the entity stream exists, else 0
--   version   the snapshot's version when status is USABLE, else 0
--
-- The snapshot header is fixed-width msgpack (see wire.go), so the script
-- reads the version and schema version from fixed offsets and never unpacks
-- the state: its cost does not grow with the state's size. Read-only.

local snap = redis.call('GET', KEYS[1])
local status, from, version = NONE, '-', 0
if snap then
  status = UNREADABLE
  -- 148 = fixarray(4), 207 = uint64, 206 = uint32
  if #snap >= 26 and string.byte(snap, 1) == 148 and string.byte(snap, 2) == 207 and string.byte(snap, 11) == 206 then
    local v = 0
    for i = 3, 10 do v = v * 256 + string.byte(snap, i) end
    local sv = 0
    for i = 12, 15 do sv = sv * 256 + string.byte(snap, i) end
    if sv ~= tonumber(ARGV[1]) then
      status = OTHER_SCHEMA
    elseif v < (tonumber(redis.call('GET', KEYS[3]) or '0') or 0) + 1 or redis.call('EXISTS', KEYS[2]) == 0 then
      status = EARLIER_LIFE
    elseif v >= 1 then
      status, version = USABLE, v
      from = string.format('%.0f', v + 1) .. '-0'
    end
  end
  if status ~= USABLE then snap = '' end
else
  snap = ''
end
local entries = {}
local page = tonumber(ARGV[2])
if page > 0 then entries = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', page) end
local exists = 1
if #entries == 0 then exists = redis.call('EXISTS', KEYS[2]) end
return {status, snap, entries, exists, version}
