-- deadletter.lua: fenced changes to a partition's dead letters.
--
-- KEYS[1]  the lease     <ns>:{<cat>:<p>}:proj:<name>:lease
-- KEYS[2]  the log       <ns>:{<cat>:<p>}:log
-- KEYS[3]  dead letters  <ns>:{<cat>:<p>}:proj:<name>:dlq      (stream)
-- KEYS[4]  parked        <ns>:{<cat>:<p>}:proj:<name>:parked   (hash: entity id -> letters)
-- KEYS[5]  control       <ns>:{<cat>:<p>}:proj:<name>:ctl      (stream of retry/skip requests)
--
-- ARGV[1]  lease value held
-- ARGV[2]  group
-- ARGV[3]  op: OP_PARK, OP_RESOLVE or OP_CTLDONE
-- ARGV[4]  park: log entry id; resolve: letter id; ctldone: control entry id
-- ARGV[5]  park, resolve: entity id
-- ARGV[6]  park: version id "<v>-0"
-- ARGV[7]  park: kind ("failed" | "parked" | "corrupt" | "foreign" | "unknown-type")
-- ARGV[8]  park: error text
-- ARGV[9]  park: attempts
-- ARGV[10] park: envelope
--
-- Codes: OK 1, FENCED -1, OP_PARK 1, OP_RESOLVE 2, OP_CTLDONE 3
-- (defined in Go, projection/scripts.go, and prepended as Lua locals)
--
-- park:     Adds the letter, counts it against the entity (the entity is
--           parked while its count is > 0; a "foreign" letter, a corrupt
--           log entry that is not the entity's event, is not counted) and
--           acks the log entry: one
--           atomic step, so a crash can neither lose the event nor leave it
--           both pending and dead-lettered.
--           Returns {OK, letter id}.
-- resolve:  Deletes the letter (applied by a retry, or skipped); the
--           entity is unparked when its count reaches 0.
--           Returns {OK, letters left for the entity}.
-- ctldone:  Deletes a handled request. Returns {OK}.
-- Returns {FENCED} when fenced.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {FENCED} end
local op = tonumber(ARGV[3])
if op == OP_PARK then
  local id = redis.call('XADD', KEYS[3], '*', 'k', ARGV[7], 's', ARGV[5], 'v', ARGV[6], 'pos', ARGV[4],
    'err', ARGV[8], 'n', ARGV[9], 'e', ARGV[10])
  if ARGV[5] ~= '' and ARGV[7] ~= 'foreign' then redis.call('HINCRBY', KEYS[4], ARGV[5], 1) end
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[4])
  return {OK, id}
elseif op == OP_RESOLVE then
  local left = 0
  local counted = true
  local l = redis.call('XRANGE', KEYS[3], ARGV[4], ARGV[4])
  if #l > 0 then
    for j = 1, #l[1][2], 2 do
      if l[1][2][j] == 'k' and l[1][2][j + 1] == 'foreign' then counted = false end
    end
  end
  if redis.call('XDEL', KEYS[3], ARGV[4]) == 1 and ARGV[5] ~= '' and counted then
    left = redis.call('HINCRBY', KEYS[4], ARGV[5], -1)
    if left <= 0 then redis.call('HDEL', KEYS[4], ARGV[5]); left = 0 end
  elseif ARGV[5] ~= '' then
    left = tonumber(redis.call('HGET', KEYS[4], ARGV[5]) or '0')
  end
  return {OK, left}
elseif op == OP_CTLDONE then
  redis.call('XDEL', KEYS[5], ARGV[4])
  return {OK}
end
return redis.error_reply('ERR unknown dead-letter op ' .. tostring(ARGV[3]))
