-- version.lua: prepended to the scripts that check a stream's version
-- (append.lua, delete.lua).

-- version and last event id of a stream. A stream trimmed to empty keeps its
-- last-generated-id, which is its version.
local function current(key)
  local r = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #r > 0 then
    local id = r[1][1]
    local fv = r[1][2]
    local eid = nil
    if fv[1] == 'e' then eid = string.sub(fv[2], 1, 16) end
    return tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1)), eid
  end
  if redis.call('EXISTS', key) == 0 then return 0, nil end
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local id = info[i + 1]
      return tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1)), nil
    end
  end
  return 0, nil
end

