-- writes.lua: version-guarded writes of read-model keys (hashes), in order,
-- in one call: one write for Model.Set/Patch/Delete and Typed.Update, many
-- for Batch.Exec. A key may appear several times (an entity's successive
-- events), each write seeing the previous.
--
-- A key is in one of four states: missing; an entry {_v = w, fields...}; a
-- tombstone {_v = w, _del = 1} left by a delete; a stale marker
-- {_v = w, _stale = 1} left by a deferred patch (the entry is missing and
-- the events up to w are not in it).
--
-- Each write is skipped when its event version v is not newer than the
-- stored one (guard GUARD_NEWER), or, for write-through, not exactly the
-- next (GUARD_NEXT: an inline write must never jump ahead of events the
-- asynchronous runner has not applied yet). An OP_SET under GUARD_NEWER
-- also replaces a stale marker at v itself (a loader's fold at v contains
-- the deferred event v). Ops:
--   OP_SET    field, value, ...   replaces the hash
--   OP_PATCH  (kind, field, value) triples; kind KIND_SET_FIELD = HSET,
--             KIND_INCR_BY = HINCRBY, KIND_INCR_BY_FLOAT = HINCRBYFLOAT,
--             KIND_DEL_FIELD = HDEL (value ignored)
--   OP_UPDATE expected state, then field, value, ...: Typed.Update's
--             read-modify-write. The expected state is the "_v" of the
--             entry the value was computed from, EXPECT_FRESH for computed
--             from empty (a fresh start, below) or EXPECT_NONE for not
--             computed (no state to apply to); when the key is no longer in
--             that state, nothing is written and the reply is CONFLICT (read
--             again). Otherwise as OP_SET / as OP_PATCH.
--   OP_DEL    no arguments; the key becomes a tombstone {_v = v, _del = 1}
--             so a redelivered older event cannot bring it back
-- A patch (or update) starts from an empty entry only when that is the
-- truth (a fresh start): the key is missing and v is 1, or it is a
-- tombstone at exactly v - 1 (the first event of a new life). On any other
-- missing state (expired, evicted, deleted by hand, a stale marker, an
-- older tombstone) it is not applied, by the write's missing policy:
--   MISSING_DEFER  the key becomes a stale marker {_v = v, _stale = 1}
--          (with the TTL): Get loads it with the model's Loader, an older
--          loader fill is skipped, later patches are deferred too; reply
--          DEFERRED
--   MISSING_FAIL   nothing is written, reply REFUSED; the key's later
--          writes in this call are not applied either (REFUSED), so what
--          applies of a key's writes is a prefix of them
-- With a TTL the key is PEXPIREd after the write; without one nothing is
-- done (OP_SET, OP_DEL and a fresh start rewrite the key, so no TTL is
-- left).
--
-- Source: the entity stream whose event the write applies ("" when the
-- caller does not say, e.g. a loader's fill). The key remembers it in
-- "_s" (kept across set, del, deferral and fresh starts); a write from
-- another stream is refused before the guard (reply MIXED, nothing
-- written, and the key's later writes in this call get MIXED too): the guard compares
-- versions of one stream, so an entry fed by several streams would skip
-- events silently (a Rollup is the model for that).
--
-- KEYS[1..] the read-model key of write i (all in one hash slot on a cluster)
--
-- ARGV      for each write i, in order:
--             version, source ("" or "<category>-<id>"),
--             n (number of op arguments), sent as -(n+1) when the write's
--             settings follow; else the write has the previous write's
--             (the first write has them: each argument costs ~0.2 µs),
--             the settings: guard (GUARD_NEWER | GUARD_NEXT), TTL ms ("0":
--             none), op (OP_SET | OP_PATCH | OP_UPDATE | OP_DEL), missing
--             policy (MISSING_DEFER | MISSING_FAIL),
--             then the n op arguments (see above)
--
-- Codes: SKIPPED 0, APPLIED 1, DEFERRED 2, REFUSED 3, CONFLICT 4, MIXED 5,
--   OP_SET 1, OP_PATCH 2, OP_UPDATE 3, OP_DEL 4,
--   MISSING_DEFER 1, MISSING_FAIL 2, EXPECT_FRESH 0, EXPECT_NONE -1,
--   GUARD_NEWER 1, GUARD_NEXT 2,
--   KIND_SET_FIELD 1, KIND_INCR_BY 2, KIND_INCR_BY_FLOAT 3, KIND_DEL_FIELD 4
-- (defined in Go, readmodel/scripts.go, and prepended as Lua locals)
--
-- Returns an array with one code per write: APPLIED, SKIPPED (not newer),
-- DEFERRED, REFUSED (missing entry, policy fail), CONFLICT (update only),
-- MIXED (the key is fed by another stream).
-- Errors (a malformed stored "_v", HINCRBY on a non-integer, a bad op,
-- guard, policy or kind) abort
-- the call: the writes before the failing one stay applied (Redis does not
-- roll scripts back). That is safe because every write is version-guarded:
-- running the batch again, or its writes one by one, skips what was applied.

local out = {}
local blocked = {} -- key -> the reply of its refused write

-- A write that rewrites its whole key writes "_s" in the same HSET (one
-- call less): withsrc(...) returns its arguments with '_s', cursrc before
-- them when the current write has a source, and notes it in srcdone.
local cursrc, srcdone
local function withsrc(...)
  if cursrc then srcdone = true; return '_s', cursrc, ... end
  return ...
end

local guard, ttl, op, policy
local a = 1
for i = 1, #KEYS do
  local key = KEYS[i]
  local sv, source, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local first = a + 3
  if n < 0 then
    n = -n - 1
    guard, ttl, op, policy = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
    if guard ~= GUARD_NEWER and guard ~= GUARD_NEXT then return redis.error_reply('ERR unknown guard ' .. ARGV[a + 3]) end
    if policy ~= MISSING_DEFER and policy ~= MISSING_FAIL then return redis.error_reply('ERR unknown missing policy ' .. ARGV[a + 6]) end
    first = a + 7
  elseif i == 1 then
    return redis.error_reply('ERR the first write has no settings')
  end
  a = first + n
  local v = tonumber(sv)
  local h = (not blocked[key]) and redis.call('HMGET', key, '_v', '_del', '_stale', '_s')
  if blocked[key] then
    out[i] = blocked[key]
  elseif source ~= '' and h[4] and h[4] ~= source then
    blocked[key] = MIXED
    out[i] = MIXED
  else
    local cur, deleted, stale, src = h[1], h[2], h[3], h[4]
    if source ~= '' then src = source end
    local rewritten = false -- the key was deleted by this write: "_s" must be written again
    cursrc, srcdone = src, false
    local stored = 0
    if cur then
      stored = tonumber(cur)
      if stored == nil then return redis.error_reply('ERR read model ' .. key .. ' has a malformed _v') end
    end
    local apply
    if guard == GUARD_NEXT then apply = stored == v - 1
    elseif stale and op == OP_SET then apply = stored <= v
    else apply = stored < v end
    local live = cur and not deleted and not stale
    local fresh = (not cur and v == 1) or (deleted and stored == v - 1)
    local res = APPLIED
    if not apply then
      res = SKIPPED
    elseif op == OP_UPDATE then
      local expect = ARGV[first]
      if live then
        if expect ~= cur then res = CONFLICT end
      elseif fresh then
        if tonumber(expect) ~= EXPECT_FRESH then res = CONFLICT end
      elseif tonumber(expect) ~= EXPECT_NONE then
        res = CONFLICT
      end
      if res == APPLIED and (live or fresh) then
        if cur then redis.call('DEL', key); rewritten = true end
        redis.call('HSET', key, '_v', sv, withsrc(unpack(ARGV, first + 1, first + n - 1)))
      elseif res == APPLIED then
        res = policy == MISSING_DEFER and DEFERRED or REFUSED
      end
    elseif op == OP_SET then
      -- A key without "_v" does not exist (every write sets it): no DEL.
      if cur then redis.call('DEL', key); rewritten = true end
      redis.call('HSET', key, '_v', sv, withsrc(unpack(ARGV, first, first + n - 1)))
    elseif op == OP_PATCH then
      if live or fresh then
        -- A fresh start on a tombstone: the new life starts empty.
        if not live and cur then redis.call('DEL', key); rewritten = true end
        for j = first, first + n - 1, 3 do
          local kind, f = tonumber(ARGV[j]), ARGV[j + 1]
          if kind == KIND_SET_FIELD then redis.call('HSET', key, f, ARGV[j + 2])
          elseif kind == KIND_INCR_BY then redis.call('HINCRBY', key, f, ARGV[j + 2])
          elseif kind == KIND_INCR_BY_FLOAT then redis.call('HINCRBYFLOAT', key, f, ARGV[j + 2])
          elseif kind == KIND_DEL_FIELD then redis.call('HDEL', key, f)
          else return redis.error_reply('ERR unknown patch kind ' .. ARGV[j]) end
        end
        redis.call('HSET', key, '_v', sv)
      else
        res = policy == MISSING_DEFER and DEFERRED or REFUSED
      end
    elseif op == OP_DEL then
      redis.call('DEL', key)
      rewritten = true
      redis.call('HSET', key, '_v', sv, withsrc('_del', '1'))
    else
      return redis.error_reply('ERR unknown op ' .. tostring(op))
    end
    if res == DEFERRED then
      if cur then redis.call('DEL', key) end
      rewritten = true
      redis.call('HSET', key, '_v', sv, withsrc('_stale', '1'))
    elseif res == REFUSED then
      blocked[key] = REFUSED
    end
    if (res == APPLIED or res == DEFERRED) and src and not srcdone and (rewritten or src ~= h[4]) then
      redis.call('HSET', key, '_s', src)
    end
    if res == APPLIED or res == DEFERRED then
      if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    end
    out[i] = res
  end
end
return out
