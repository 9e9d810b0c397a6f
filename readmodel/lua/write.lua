-- write.lua: a version-guarded write of one read-model key (a hash).
--
-- KEYS[1]   the read-model key            <ns>:rm:<name>:v<schema>:<id>
--
-- ARGV[1]   event version v (decimal, >= 1)
-- ARGV[2]   guard: "newer" (apply when stored < v) or "next" (apply only
--           when stored == v-1: write-through, which must never jump ahead
--           of events the asynchronous runner has not applied yet)
-- ARGV[3]   TTL in milliseconds ("0": none)
-- ARGV[4]   op: "set" | "patch" | "del"
-- then, for "set":   field, value, field, value, ...   (replaces the hash)
--       for "patch": (kind, field, value) triples; kind s = HSET, i = HINCRBY,
--                    f = HINCRBYFLOAT, d = HDEL (value ignored)
--       for "del":   nothing; the key becomes a tombstone {_v = v, _del = 1}
--                    so a redelivered older event cannot bring it back.
--
-- The applied version lives in the hash field "_v"; "_del" marks a tombstone.
-- Returns 1 when applied, 0 when skipped (the stored version is not older, or
-- for "next", not exactly v-1). A malformed stored "_v" is an error rather
-- than a silent overwrite.

local key = KEYS[1]
local v = tonumber(ARGV[1])
local h = redis.call('HMGET', key, '_v', '_del')
local cur, deleted = h[1], h[2]
local stored = 0
if cur then
  stored = tonumber(cur)
  if stored == nil then return redis.error_reply('ERR read model ' .. key .. ' has a malformed _v') end
end
if ARGV[2] == 'next' then
  if stored ~= v - 1 then return 0 end
elseif stored >= v then
  return 0
end

local op = ARGV[4]
if op == 'set' then
  redis.call('DEL', key)
  if #ARGV > 4 then redis.call('HSET', key, unpack(ARGV, 5)) end
  redis.call('HSET', key, '_v', ARGV[1])
elseif op == 'patch' then
  if deleted then
    -- a patch on a missing or deleted entry starts from an empty one
    redis.call('DEL', key)
  end
  for i = 5, #ARGV, 3 do
    local kind, f = ARGV[i], ARGV[i + 1]
    if kind == 's' then redis.call('HSET', key, f, ARGV[i + 2])
    elseif kind == 'i' then redis.call('HINCRBY', key, f, ARGV[i + 2])
    elseif kind == 'f' then redis.call('HINCRBYFLOAT', key, f, ARGV[i + 2])
    elseif kind == 'd' then redis.call('HDEL', key, f)
    else return redis.error_reply('ERR unknown patch kind ' .. kind) end
  end
  redis.call('HSET', key, '_v', ARGV[1])
elseif op == 'del' then
  redis.call('DEL', key)
  redis.call('HSET', key, '_v', ARGV[1], '_del', '1')
else
  return redis.error_reply('ERR unknown op ' .. op)
end
-- Without a TTL nothing is done: "set" and "del" rewrite the key (no TTL
-- left), and a model whose TTL is turned off keeps old entries' TTLs until
-- their next "set".
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return 1
