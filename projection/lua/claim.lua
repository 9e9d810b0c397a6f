-- claim.lua: fenced XAUTOCLAIM of a partition's pending entries, and removal
-- of idle consumers that have nothing pending.
--
-- KEYS[1]  the lease     <ns>:{<cat>:<p>}:proj:<name>:lease
-- KEYS[2]  the log       <ns>:{<cat>:<p>}:log
-- KEYS[3]  dead letters  <ns>:{<cat>:<p>}:proj:<name>:dlq
--
-- ARGV[1]  lease value held
-- ARGV[2]  group
-- ARGV[3]  consumer (the new holder)
-- ARGV[4]  op: OP_CLAIM or OP_PRUNE
-- ARGV[5]  claim: start cursor; prune: minimum idle ms
-- ARGV[6]  claim: COUNT
--
-- Codes: OK 1, FENCED -1, OP_CLAIM 1, OP_PRUNE 2
-- (defined in Go, projection/scripts.go, and prepended as Lua locals)
--
-- claim:   XAUTOCLAIM with min-idle-time 0 (the lease proves every other
--          consumer of this partition dead or fenced), JUSTID: the entries
--          move to our pending list and are then read with XREADGROUP 0 in
--          log order. Ids whose entries were trimmed (XAUTOCLAIM's third
--          element, Redis >= 7.0) are dead-lettered here: XAUTOCLAIM has
--          already removed them from the pending list.
--          Returns {OK, next cursor, claimed, dead-lettered}.
-- prune:   Deletes other consumers with no pending entries, idle that
--          long. XGROUP DELCONSUMER drops a consumer's
--          pending entries, so it is never called on one that has any; the
--          check and the delete are atomic here.
--          Returns {OK, deleted}.
-- Returns {FENCED} when fenced.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {FENCED} end
local log, group = KEYS[2], ARGV[2]
local op = tonumber(ARGV[4])
if op == OP_CLAIM then
  local r = redis.call('XAUTOCLAIM', log, group, ARGV[3], 0, ARGV[5], 'COUNT', ARGV[6], 'JUSTID')
  local dead = 0
  if r[3] then
    for _, id in ipairs(r[3]) do
      redis.call('XADD', KEYS[3], '*', 'k', 'trimmed', 'pos', id, 'err', 'log entry trimmed while pending')
      dead = dead + 1
    end
  end
  return {OK, r[1], #r[2], dead}
elseif op ~= OP_PRUNE then
  return redis.error_reply('ERR unknown claim op ' .. tostring(ARGV[4]))
end
local deleted = 0
local minIdle = tonumber(ARGV[5])
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', log, group)) do
  local name, pending, idle
  for k = 1, #c, 2 do
    if c[k] == 'name' then name = c[k + 1]
    elseif c[k] == 'pending' then pending = c[k + 1]
    elseif c[k] == 'idle' then idle = c[k + 1] end
  end
  if name ~= ARGV[3] and pending == 0 and idle >= minIdle then
    redis.call('XGROUP', 'DELCONSUMER', log, group, name)
    deleted = deleted + 1
  end
end
return {OK, deleted}
