-- invalidate.lua: delete an entity's snapshot and refuse, for good, every
-- snapshot at or below the stream's current version (the snapshot floor).
-- Used when an entity is forgotten (package shred): a snapshot taken before
-- holds its state as folded then, personal data in the clear, and the
-- background writer may deliver one after the Forget.
--
-- KEYS[1]  the snapshot          <ns>:{<cat>:<p>}:snap:<id>
-- KEYS[2]  the entity stream     <ns>:{<cat>:<p>}:s:<id>      (same hash tag)
-- KEYS[3]  its stream tombstone  <ns>:{<cat>:<p>}:gone:<id>
-- KEYS[4]  its snapshot floor    <ns>:{<cat>:<p>}:snapmin:<id>
--
-- Returns the floor.

local v = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[2])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local id = info[i + 1]
      v = tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
    end
  end
end
local floor = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
if v > floor then
  floor = v
  redis.call('SET', KEYS[4], floor)
end
redis.call('DEL', KEYS[1])
return floor
