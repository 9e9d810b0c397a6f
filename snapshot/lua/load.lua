-- load.lua: an entity's snapshot and the first page of its events after it,
-- in one round trip.
--
-- KEYS[1]  the snapshot        <ns>:{<cat>:<p>}:snap:<id>
-- KEYS[2]  the entity stream   <ns>:{<cat>:<p>}:s:<id>     (same hash tag)
-- KEYS[3]  its stream tombstone <ns>:{<cat>:<p>}:gone:<id>  (see eventstore's delete.lua)
-- ARGV[1]  the schema version the reader wants
-- ARGV[2]  page size: at most this many entries are returned
--
-- Returns {status, snapshot, entries, exists}:
--   status 0  no snapshot;                      entries from the first event
--   status 1  snapshot usable (header parsed,   entries from <version+1>-0
--             schema version as wanted)
--   status 2  snapshot of another schema;       entries from the first event
--   status 3  snapshot header unreadable;       entries from the first event
--   status 4  snapshot of an earlier life of    entries from the first event
--             the stream (before its last
--             Delete), or of a deleted stream
--   snapshot  the snapshot's bytes when status is 1, else ''
--   entries   as XRANGE returns them
--   exists    1 when the entity stream exists, else 0
--
-- The snapshot header is fixed-width msgpack (see wire.go), so the script
-- reads the version and schema version from fixed offsets and never unpacks
-- the state: its cost does not grow with the state's size. Read-only.

local snap = redis.call('GET', KEYS[1])
local status, from = 0, '-'
if snap then
  status = 3
  -- 148 = fixarray(4), 207 = uint64, 206 = uint32
  if #snap >= 26 and string.byte(snap, 1) == 148 and string.byte(snap, 2) == 207 and string.byte(snap, 11) == 206 then
    local v = 0
    for i = 3, 10 do v = v * 256 + string.byte(snap, i) end
    local sv = 0
    for i = 12, 15 do sv = sv * 256 + string.byte(snap, i) end
    if sv ~= tonumber(ARGV[1]) then
      status = 2
    elseif v < (tonumber(redis.call('GET', KEYS[3]) or '0') or 0) + 1 or redis.call('EXISTS', KEYS[2]) == 0 then
      status = 4
    elseif v >= 1 then
      status = 1
      from = string.format('%.0f', v + 1) .. '-0'
    end
  end
  if status ~= 1 then snap = '' end
else
  snap = ''
end
local entries = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', tonumber(ARGV[2]))
local exists = 1
if #entries == 0 then exists = redis.call('EXISTS', KEYS[2]) end
return {status, snap, entries, exists}
