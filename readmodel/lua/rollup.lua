-- rollup.lua: writes of Rollup entries (many source streams into one
-- entry), exactly once per source event, in order, in one call: one write
-- for Rollup.Apply, many for Batch.Exec. A key may appear several times,
-- each write seeing the previous.
--
-- An entry is a hash K {_n = events applied, fields...} and, in K's hash
-- slot (K ends with the hash tag {<id>}), the keys derived from it:
--   K .. ':src'          hash: source stream -> last version applied
--   K .. ':set:' .. s    set s (AddMember, RemoveMember)
--   K .. ':top:' .. l    sorted set l, the latest N by score (KeepLatest)
-- The derived keys are not in KEYS: they share K's slot, so the call stays
-- on one node of a cluster.
--
-- Guard: a write of (source, version v) applies only when the source's
-- recorded version is below v (guard GUARD_NEWER), or exactly v - 1, or
-- absent with v = 1 (GUARD_NEXT, write-through); then the recorded version
-- becomes v. A projection applies each source stream's events in version
-- order, so the events of a source applied to an entry are always a prefix
-- of those routed to it, and one version per source says which.
--
-- Ops, 4 arguments each (kind, name, value, extra):
--   KIND_SET_FIELD     field value -    HSET
--   KIND_INCR_BY       field n     -    HINCRBY
--   KIND_INCR_BY_FLOAT field x     -    HINCRBYFLOAT
--   KIND_DEL_FIELD     field -     -    HDEL
--   KIND_ADD_MEMBER    set member  -    SADD
--   KIND_REMOVE_MEMBER set member  -    SREM
--   KIND_KEEP_LATEST   list member "score n": ZADD GT, then keep the n
--                      highest (ties: the greater member); the result does
--                      not depend on the order of the adds
--
-- KEYS[1..] the entry key K of write i (all in one slot on a cluster)
-- ARGV     for each write i, in order:
--            source ("<category>-<id>"), version,
--            guard (GUARD_NEWER | GUARD_NEXT),
--            n (number of op arguments, a multiple of 4), then the n op
--            arguments
--
-- Codes: SKIPPED 0, APPLIED 1, GUARD_NEWER 1, GUARD_NEXT 2,
--   KIND_SET_FIELD 1, KIND_INCR_BY 2, KIND_INCR_BY_FLOAT 3, KIND_DEL_FIELD 4,
--   KIND_ADD_MEMBER 5, KIND_REMOVE_MEMBER 6, KIND_KEEP_LATEST 7
-- (defined in Go, readmodel/scripts.go, and prepended as Lua locals)
--
-- Returns an array with one code per write: APPLIED, or SKIPPED (the
-- source's event is already in the entry, or not the next one).
-- Errors (HINCRBY on a non-integer, a bad op or guard, a malformed recorded
-- version)
-- abort the call: the writes before the failing one stay applied, so what
-- applied of a key's writes is a prefix of them, and running the writes
-- again applies exactly the rest.

local out = {}
local a = 1
for i = 1, #KEYS do
  local key = KEYS[i]
  local source, sv, guard, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if guard ~= GUARD_NEWER and guard ~= GUARD_NEXT then return redis.error_reply('ERR rollup: unknown guard ' .. ARGV[a + 2]) end
  local first = a + 4
  a = first + n
  local v = tonumber(sv)
  local srcKey = key .. ':src'
  local cur = redis.call('HGET', srcKey, source)
  local stored = 0
  if cur then
    stored = tonumber(cur)
    if stored == nil then return redis.error_reply('ERR rollup ' .. key .. ' has a malformed version for ' .. source) end
  end
  local apply
  if guard == GUARD_NEXT then apply = stored == v - 1 else apply = stored < v end
  if apply then
    for j = first, first + n - 1, 4 do
      local kind, name, val = tonumber(ARGV[j]), ARGV[j + 1], ARGV[j + 2]
      if kind == KIND_SET_FIELD then redis.call('HSET', key, name, val)
      elseif kind == KIND_INCR_BY then redis.call('HINCRBY', key, name, val)
      elseif kind == KIND_INCR_BY_FLOAT then redis.call('HINCRBYFLOAT', key, name, val)
      elseif kind == KIND_DEL_FIELD then redis.call('HDEL', key, name)
      elseif kind == KIND_ADD_MEMBER then redis.call('SADD', key .. ':set:' .. name, val)
      elseif kind == KIND_REMOVE_MEMBER then redis.call('SREM', key .. ':set:' .. name, val)
      elseif kind == KIND_KEEP_LATEST then
        local score, keep = string.match(ARGV[j + 3], '^(%S+) (%d+)$')
        if not keep then return redis.error_reply('ERR rollup: bad latest argument ' .. ARGV[j + 3]) end
        local zkey = key .. ':top:' .. name
        redis.call('ZADD', zkey, 'GT', score, val)
        redis.call('ZREMRANGEBYRANK', zkey, 0, -tonumber(keep) - 1)
      else return redis.error_reply('ERR rollup: unknown op ' .. ARGV[j]) end
    end
    redis.call('HINCRBY', key, '_n', 1)
    redis.call('HSET', srcKey, source, sv)
    out[i] = APPLIED
  else
    out[i] = SKIPPED
  end
end
return out
