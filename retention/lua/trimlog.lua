-- trimlog.lua: trim a partition log and count what was trimmed.
--
-- KEYS[1]  the partition log     <ns>:{<cat>:<p>}:log
-- KEYS[2]  its trim counter      <ns>:{<cat>:<p>}:logtrim
-- ARGV[1]  MINID threshold (entries below it are trimmed)
-- ARGV[2]  LIMIT (entries one call may evict)
--
-- Approximate trimming (~) removes whole nodes only: cheap, and never more
-- than asked. The counter, with the log's length, stands in for the
-- entries-added count Redis keeps only from 7.0 on, so projection lag is
-- exact on 6.2 too (projection/lua/status.lua). Returns the number trimmed.

local n = redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[1], 'LIMIT', ARGV[2])
if n > 0 then redis.call('INCRBY', KEYS[2], n) end
return n
