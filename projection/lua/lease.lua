-- lease.lua: acquire, renew or release a projection's lease on one partition.
--
-- KEYS[1]  the lease     <ns>:{<cat>:<p>}:proj:<name>:lease   (string "<token>:<owner>")
-- KEYS[2]  the fence     <ns>:{<cat>:<p>}:proj:<name>:fence   (counter, never expires)
--
-- ARGV[1]  op: OP_ACQUIRE, OP_RENEW or OP_RELEASE
-- ARGV[2]  owner (instance id)
-- ARGV[3]  TTL in milliseconds
-- ARGV[4]  the lease value held (renew, release)
--
-- acquire: if the lease is free, or held by the same owner (a restarted
--          incarnation of this instance: the old one is dead or, if not,
--          fenced by the new token), take it with token = INCR fence.
--          Returns {OK, value} or {NOT_HELD, current value}.
-- renew:   extend the lease if it is still ARGV[4]; returns OK or NOT_HELD.
-- release: delete the lease if it is still ARGV[4]; returns OK or NOT_HELD.
--
-- Codes: OK 1, NOT_HELD 0, OP_ACQUIRE 1, OP_RENEW 2, OP_RELEASE 3
-- (defined in Go, projection/scripts.go, and prepended as Lua locals)
--
-- Tokens only grow (the fence counter has no TTL), so every script that
-- checks "GET lease == value" refuses a holder whose lease expired and was
-- taken by someone else, even if the old holder never noticed.

local op = tonumber(ARGV[1])
if op == OP_ACQUIRE then
  local cur = redis.call('GET', KEYS[1])
  if cur then
    local owner = string.sub(cur, (string.find(cur, ':', 1, true) or 0) + 1)
    if owner ~= ARGV[2] then return {NOT_HELD, cur} end
  end
  local tok = redis.call('INCR', KEYS[2])
  local val = tok .. ':' .. ARGV[2]
  redis.call('SET', KEYS[1], val, 'PX', ARGV[3])
  return {OK, val}
elseif op == OP_RENEW then
  if redis.call('GET', KEYS[1]) == ARGV[4] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return OK
  end
  return NOT_HELD
elseif op == OP_RELEASE then
  if redis.call('GET', KEYS[1]) == ARGV[4] then
    redis.call('DEL', KEYS[1])
    return OK
  end
  return NOT_HELD
end
return redis.error_reply('ERR unknown lease op ' .. tostring(ARGV[1]))
