-- version.lua: prepended to the scripts that check a stream's version
-- (append.lua, delete.lua, info.lua).

-- The version in an entry id "<version>-0".
local function vof(id)
  return tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
end

-- exact(key): the version of an existing stream from its last-generated-id,
-- and whether its last event was removed by hand (XDEL sets Redis 7's
-- max-deleted-entry-id; trimming does not): the stream is then damaged.
-- The version holds also when entries were trimmed (to empty, even) or
-- removed: Redis never hands out an id at or below it again. XINFO costs
-- ~8 µs, so the hot path reads the last entry instead and calls this only
-- when that cannot be trusted.
local function exact(key)
  local info = redis.call('XINFO', 'STREAM', key)
  local last, maxdel = nil, nil
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1]
    elseif info[i] == 'max-deleted-entry-id' then maxdel = info[i + 1] end
  end
  if last == nil then return 0, false end
  return vof(last), maxdel == last and last ~= '0-0'
end

-- current(key, tomb): the version of a stream, the event id of its last
-- entry (when it has one), whether it is live, and whether it is known to
-- be damaged (its last event removed by hand). A stream that does not
-- exist is not live; its version is then that of its deletion marker (the
-- stream tombstone tomb holds it) or 0: a new life continues after it. For
-- a live stream the version is that of its last entry; when the tail was
-- removed by hand the true version is higher, and the first write at the
-- version after it fails (append.lua then asks exact()).
local function current(key, tomb)
  local r = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #r > 0 then
    local fv = r[1][2]
    local eid = nil
    if fv[1] == 'e' then eid = string.sub(fv[2], 1, 16) end
    return vof(r[1][1]), eid, true, false
  end
  if redis.call('EXISTS', key) == 0 then
    return tonumber(redis.call('GET', tomb) or '0') or 0, nil, false, false
  end
  local v, gone = exact(key)
  return v, nil, true, gone
end

