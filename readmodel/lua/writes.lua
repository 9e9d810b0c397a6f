-- writes.lua: version-guarded writes of read-model keys (hashes), in order,
-- in one call: one write for Model.Set/Patch/Delete, many for Batch.Exec. A
-- key may appear several times (an entity's successive events), each write
-- seeing the previous.
--
-- Each write is skipped when its event version is not newer than the
-- stored one (guard "newer"), or, for write-through, not exactly the next
-- (guard "next": an inline write must never jump ahead of events the
-- asynchronous runner has not applied yet). The applied version lives in the
-- hash field "_v"; "_del" marks a tombstone. Ops:
--   set    field, value, ...   replaces the hash
--   patch  (kind, field, value) triples; kind s = HSET, i = HINCRBY,
--          f = HINCRBYFLOAT, d = HDEL (value ignored); a patch on a
--          missing or deleted entry starts from an empty one
--   del    no arguments; the key becomes a tombstone {_v = v, _del = 1} so a
--          redelivered older event cannot bring it back
-- With a TTL the key is PEXPIREd after the write; without one nothing is
-- done ("set" and "del" rewrite the key, so no TTL is left).
--
-- KEYS[i]   the read-model key of write i (all in one hash slot on a cluster)
--
-- ARGV      for each write i, in order:
--             version, guard ("newer" | "next"), TTL ms ("0": none),
--             op ("set" | "patch" | "del"), n (number of op arguments),
--             then the n op arguments (see above)
--
-- Returns an array with one integer per write: 1 applied, 0 skipped.
-- Errors (a malformed stored "_v", HINCRBY on a non-integer, a bad op) abort
-- the call: the writes before the failing one stay applied (Redis does not
-- roll scripts back). That is safe because every write is version-guarded:
-- running the batch again, or its writes one by one, skips what was applied.

local out = {}
local a = 1
for i = 1, #KEYS do
  local key = KEYS[i]
  local sv, guard, ttl, op, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
  local first = a + 5
  a = first + n
  local v = tonumber(sv)
  local h = redis.call('HMGET', key, '_v', '_del')
  local cur, deleted = h[1], h[2]
  local stored = 0
  if cur then
    stored = tonumber(cur)
    if stored == nil then return redis.error_reply('ERR read model ' .. key .. ' has a malformed _v') end
  end
  local apply
  if guard == 'next' then apply = stored == v - 1 else apply = stored < v end
  if not apply then
    out[i] = 0
  else
    if op == 'set' then
      -- A key without "_v" does not exist (every write sets it): no DEL.
      if cur then redis.call('DEL', key) end
      if n > 0 then
        redis.call('HSET', key, '_v', sv, unpack(ARGV, first, first + n - 1))
      else
        redis.call('HSET', key, '_v', sv)
      end
    elseif op == 'patch' then
      if deleted then redis.call('DEL', key) end
      for j = first, first + n - 1, 3 do
        local kind, f = ARGV[j], ARGV[j + 1]
        if kind == 's' then redis.call('HSET', key, f, ARGV[j + 2])
        elseif kind == 'i' then redis.call('HINCRBY', key, f, ARGV[j + 2])
        elseif kind == 'f' then redis.call('HINCRBYFLOAT', key, f, ARGV[j + 2])
        elseif kind == 'd' then redis.call('HDEL', key, f)
        else return redis.error_reply('ERR unknown patch kind ' .. kind) end
      end
      redis.call('HSET', key, '_v', sv)
    elseif op == 'del' then
      redis.call('DEL', key)
      redis.call('HSET', key, '_v', sv, '_del', '1')
    else
      return redis.error_reply('ERR unknown op ' .. op)
    end
    local t = tonumber(ttl)
    if t > 0 then redis.call('PEXPIRE', key, t) end
    out[i] = 1
  end
end
return out
