-- members.lua: heartbeat of a projection's runner instances.
--
-- KEYS[1]  members  <ns>:proj:<name>:members   (sorted set: instance -> expiry, ms)
-- ARGV[1]  instance id
-- ARGV[2]  TTL in ms (LEAVE: remove the instance)
--
-- Codes: LEAVE 0
-- (defined in Go, projection/scripts.go, and prepended as Lua locals)
--
-- Uses the server's clock so that instances with skewed clocks agree.
-- Returns the number of live instances.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) == LEAVE then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
