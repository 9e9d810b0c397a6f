-- status.lua: a projection's progress on one partition, from the
-- projection's own bookkeeping (Redis' "lag" of a consumer group is absent
-- before 7.0, and on 7.0 wrong for good after an AOF rewrite and a crash:
-- XREADGROUP is persisted as XCLAIM, which does not advance the group's
-- entries-read).
--
-- KEYS[1]  the log                <ns>:{<cat>:<p>}:log
-- KEYS[2]  the group's bookkeeping <ns>:{<cat>:<p>}:proj:<name>:ckpt
--          (hash: pos = the group's last-delivered-id when read.lua last
--          counted, read = entries delivered to the group, counted like the
--          log's entries-added)
-- KEYS[3]  the log's trim counter  <ns>:{<cat>:<p>}:logtrim (entries
--          trimmed by retention; stands in for entries-added before 7.0)
-- ARGV[1]  group (the projection's name)
-- ARGV[2]  exact: lags up to this many entries are counted entry by entry
--
-- Codes: OK 1, NO_GROUP 0, LAG_UNKNOWN -1
-- (defined in Go, projection/scripts.go, and prepended as Lua locals)
--
-- Returns {NO_GROUP} when the log or the group does not exist, else
-- {OK, delivered, pending, lag, checkpoint}:
--   delivered   the group's last-delivered-id
--   pending     entries delivered and not acked
--   lag         log entries after delivered, not yet delivered: counted
--               when at most ARGV[2] (and the bookkeeping set from that
--               count), else entries-added (or, before 7.0, length +
--               trimmed) minus the bookkeeping's read, when the bookkeeping
--               follows the group; else counted up to 100000; LAG_UNKNOWN
--               beyond
--   checkpoint  the last entry that it and every entry before it are
--               applied or dead-lettered: delivered when nothing is
--               pending, else the entry before the oldest pending one
--               ("0-0" when none)
-- Bookkeeping writes use pcall: a read-only user still gets the status.

local log, ckpt, group = KEYS[1], KEYS[2], ARGV[1]
local exact = tonumber(ARGV[2])
if redis.call('EXISTS', log) == 0 then return {NO_GROUP} end
local ld, pending
for _, g in ipairs(redis.call('XINFO', 'GROUPS', log)) do
  local name, l, p
  for k = 1, #g, 2 do
    if g[k] == 'name' then name = g[k + 1]
    elseif g[k] == 'last-delivered-id' then l = g[k + 1]
    elseif g[k] == 'pending' then p = g[k + 1] end
  end
  if name == group then ld, pending = l, p end
end
if not ld then return {NO_GROUP} end

local added, len
local info = redis.call('XINFO', 'STREAM', log)
for k = 1, #info, 2 do
  if info[k] == 'entries-added' then added = info[k + 1]
  elseif info[k] == 'length' then len = info[k + 1] end
end
if not added then added = len + tonumber(redis.call('GET', KEYS[3]) or '0') end

local function keep(lag)
  redis.pcall('HSET', ckpt, 'pos', ld, 'read', added - lag)
  return lag
end

local lag = #redis.call('XRANGE', log, '(' .. ld, '+', 'COUNT', exact + 1)
if lag <= exact then
  keep(lag)
else
  local b = redis.call('HMGET', ckpt, 'pos', 'read')
  if b[1] == ld and b[2] then
    lag = math.min(math.max(added - tonumber(b[2]), exact + 1), len)
  else
    -- Not kept (a new group, an upgrade) or the group moved (SETID, a
    -- re-created group): count, up to a bound.
    local n, from = 0, '(' .. ld
    while n < 100000 do
      local r = redis.call('XRANGE', log, from, '+', 'COUNT', 1000)
      n = n + #r
      if #r < 1000 then break end
      from = '(' .. r[#r][1]
    end
    if n < 100000 then lag = keep(n) else lag = LAG_UNKNOWN end
  end
end

local checkpoint = ld
if tonumber(pending) > 0 then
  local oldest = redis.call('XPENDING', log, group)[2]
  local before = redis.call('XREVRANGE', log, '(' .. oldest, '-', 'COUNT', 1)[1]
  checkpoint = before and before[1] or '0-0'
end
return {OK, ld, pending, lag, checkpoint}
