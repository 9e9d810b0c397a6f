-- read.lua: fenced ack and read of one partition log through the projection's
-- consumer group.
--
-- KEYS[1]  the lease     <ns>:{<cat>:<p>}:proj:<name>:lease
-- KEYS[2]  the log       <ns>:{<cat>:<p>}:log
-- KEYS[3]  dead letters  <ns>:{<cat>:<p>}:proj:<name>:dlq
-- KEYS[4]  bookkeeping   <ns>:{<cat>:<p>}:proj:<name>:ckpt (see status.lua)
--
-- ARGV[1]  lease value held ("<token>:<owner>")
-- ARGV[2]  group (the projection's name)
-- ARGV[3]  consumer (the instance id)
-- ARGV[4]  COUNT (0: only ack)
-- ARGV[5]  id: ">" for new entries, or a cursor into this consumer's own
--          pending entries ("0" to start)
-- ARGV[6]  N, then N entry ids to XACK first
--
-- Codes: OK 1, FENCED -1
-- (defined in Go, projection/scripts.go, and prepended as Lua locals)
--
-- Returns {FENCED} when the lease is not ARGV[1] (nothing acked, nothing
-- read), else {OK, last id read or "", group's last-delivered-id when
-- nothing new was read (where to block from) or "", number of entries
-- dead-lettered, entries}. Entries are XREADGROUP's [id, [field, value...]].
--
-- Why a script: the lease check and the XACK/XREADGROUP must be atomic. A
-- holder whose lease expired must neither ack (it might ack entries the new
-- holder has not applied) nor read (entries it takes would sit in its pending
-- list while the new holder moves on, and be applied out of order later).
-- Lease, log and dead letters share the partition's hash tag.
--
-- A ">" read counts what it delivers into the bookkeeping (status.lua),
-- in the same atomic step, when the bookkeeping follows the group: the
-- entry after its pos is the first one read. Otherwise (the group moved:
-- SETID, re-created) it drops it, and status.lua counts again.
--
-- A pending entry whose log entry was trimmed comes back without fields:
-- it is dead-lettered (kind "trimmed") and acked here, atomically, so it is
-- never silently lost nor dead-lettered twice.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {FENCED} end
local log, group = KEYS[2], ARGV[2]
local n = tonumber(ARGV[6])
local i = 7
while i <= 6 + n do
  local j = math.min(i + 999, 6 + n)
  redis.call('XACK', log, group, unpack(ARGV, i, j))
  i = j + 1
end
local count = tonumber(ARGV[4])
if count == 0 then return {OK, '', '', 0, {}} end

local r = redis.call('XREADGROUP', 'GROUP', group, ARGV[3], 'COUNT', count, 'STREAMS', log, ARGV[5])
local out, last, dead = {}, '', 0
if r and r[1] then
  for _, e in ipairs(r[1][2]) do
    last = e[1]
    if e[2] then
      out[#out + 1] = e
    else
      redis.call('XADD', KEYS[3], '*', 'k', 'trimmed', 'pos', e[1], 'err', 'log entry trimmed while pending')
      redis.call('XACK', log, group, e[1])
      dead = dead + 1
    end
  end
end
if ARGV[5] == '>' and last ~= '' then
  local b = redis.call('HMGET', KEYS[4], 'pos', 'read')
  if b[1] and b[2] then
    local nxt = redis.call('XRANGE', log, '(' .. b[1], '+', 'COUNT', 1)[1]
    if nxt and nxt[1] == r[1][2][1][1] then
      redis.call('HSET', KEYS[4], 'pos', last, 'read', tonumber(b[2]) + #r[1][2])
    else
      redis.call('DEL', KEYS[4])
    end
  end
end
local delivered = ''
if last == '' and ARGV[5] == '>' then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', log)) do
    local name, ld
    for k = 1, #g, 2 do
      if g[k] == 'name' then name = g[k + 1] elseif g[k] == 'last-delivered-id' then ld = g[k + 1] end
    end
    if name == group then delivered = ld end
  end
end
return {OK, last, delivered, dead, out}
