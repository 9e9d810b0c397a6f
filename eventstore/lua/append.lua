-- append.lua: check expected versions and append events to entity streams
-- and to their partition log, for a group of independent transactions.
--
-- KEYS[1]     the partition log          <ns>:{<cat>:<p>}:log
-- KEYS[2..]   entity streams             <ns>:{<cat>:<p>}:s:<id>   (same hash tag)
--
-- ARGV[1]     number of transactions T
-- then, per transaction:
--   S                                     number of streams in it
--   per stream:  key index (into KEYS), entity id, expected, expected id, N,
--                then N times: entry id, envelope (its first 16 bytes are the event id)
-- expected: -1 any, -2 stream exists, >= 0 exact version (0 = no stream).
-- expected id: "<expected>-0" for an exact version > 0, else "".
-- entry id: "<version>-0" of the event when expected is exact, else "" (the
-- script then formats it). Formatting numbers in Lua costs ~0.8 µs an event,
-- and comparing the stream's last id with the expected id as strings avoids
-- parsing it: the common case (an exact expected version) does neither.
--
-- Entries written (see wire.go):
--   log:     XADD log *        s <entity id> v <version>-0 e <envelope>
--   entity:  XADD key <ver>-0  e <envelope> p <log entry id>
--
-- Returns one element per transaction, in order:
--   {0, {version, pos1..posN}, ...}   appended (one table per stream)
--   {1, {version, pos1..posN}, ...}   replay: the same event ids are already
--                                     stored after the expected version; the
--                                     original versions and positions
--   {2, stream index (1-based), actual version}   wrong expected version
--
-- A transaction is all or nothing: every stream is checked before any write.
-- Transactions are applied in order, so a later one sees an earlier one's
-- events. Redis refuses the whole call up front when it is out of memory or
-- read-only; after the checks, no write can fail.

local log = KEYS[1]

-- current(key) is defined in version.lua, prepended when the script is built.

-- If events from..from+n-1 of the stream carry the ids of the envelopes
-- ARGV[first+1], ARGV[first+3], ..., return {from+n-1, pos...}; else nil.
local function stored(key, from, n, first)
  local r = redis.call('XRANGE', key, from .. '-0', (from + n - 1) .. '-0')
  if #r ~= n then return nil end
  local res = {from + n - 1}
  for i = 1, n do
    local fv = r[i][2]
    local env, pos = nil, ''
    for j = 1, #fv, 2 do
      if fv[j] == 'e' then env = fv[j + 1] elseif fv[j] == 'p' then pos = fv[j + 1] end
    end
    if env == nil or string.sub(env, 1, 16) ~= string.sub(ARGV[first + 2 * i - 1], 1, 16) then return nil end
    res[i + 1] = pos
  end
  return res
end

local out = {}
local a = 2
for t = 1, tonumber(ARGV[1]) do
  local ns = tonumber(ARGV[a]); a = a + 1
  local start = a
  local bases = {}      -- version before the append, per stream
  local replays = {}    -- replayed results, per stream
  local nreplay = 0
  local conflict = nil
  for s = 1, ns do
    local key = KEYS[tonumber(ARGV[a])]
    local exp = tonumber(ARGV[a + 2])
    local expid = ARGV[a + 3]
    local n = tonumber(ARGV[a + 4])
    local first = a + 5
    local cur, lastid
    if exp > 0 then
      local r = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
      if #r > 0 and r[1][1] == expid then
        cur = exp
      else
        cur, lastid = current(key)
      end
    elseif exp == 0 and redis.call('EXISTS', key) == 0 then
      cur = 0
    else
      cur, lastid = current(key)
    end
    local replay = nil
    if exp >= 0 then
      if cur ~= exp then
        if cur >= exp + n then replay = stored(key, exp + 1, n, first) end
        if not replay then conflict = conflict or {2, s, cur} end
      end
    elseif exp == -2 and cur == 0 then
      conflict = conflict or {2, s, 0}
    elseif cur >= n and lastid == string.sub(ARGV[first + 2 * n - 1], 1, 16) then
      -- the stream ends with this batch's last event: a retry
      replay = stored(key, cur - n + 1, n, first)
    end
    bases[s] = cur
    if replay then replays[s] = replay; nreplay = nreplay + 1 end
    a = first + 2 * n
  end
  if conflict == nil and nreplay > 0 and nreplay < ns then
    -- part of the transaction is already stored: not a retry of this transaction
    for s = 1, ns do
      if replays[s] then conflict = {2, s, bases[s]}; break end
    end
  end
  if conflict then
    out[t] = conflict
  elseif nreplay == ns then
    local res = {1}
    for s = 1, ns do res[s + 1] = replays[s] end
    out[t] = res
  else
    local res = {0}
    a = start
    for s = 1, ns do
      local key = KEYS[tonumber(ARGV[a])]
      local eid = ARGV[a + 1]
      local n = tonumber(ARGV[a + 4])
      local v = bases[s]
      local r = {v + n}
      local e = a + 5
      for i = 1, n do
        local vid = ARGV[e]
        if vid == '' then vid = (v + i) .. '-0' end
        local pos = redis.call('XADD', log, '*', 's', eid, 'v', vid, 'e', ARGV[e + 1])
        redis.call('XADD', key, vid, 'e', ARGV[e + 1], 'p', pos)
        r[i + 1] = pos
        e = e + 2
      end
      res[s + 1] = r
      a = e
    end
    out[t] = res
  end
end
return out
