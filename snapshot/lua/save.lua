-- save.lua: write a snapshot unless a newer one of the same schema is stored.
--
-- KEYS[1]  the snapshot        <ns>:{<cat>:<p>}:snap:<id>
-- ARGV[1]  the new snapshot (wire.go: fixed-width header, then the state)
--
-- Returns 1 written, 0 skipped (the stored snapshot has the same schema
-- version and a version at least as high).
--
-- Several writers may snapshot one aggregate (processes, queued jobs): this
-- keeps the newest. The header's version is a big-endian uint64 at a fixed
-- offset, compared byte by byte (Lua's string comparison follows the
-- server's collation locale, not byte order). A stored snapshot of another
-- schema version, or an unreadable one, is replaced.

local function header_ok(s)
  return #s >= 26 and string.byte(s, 1) == 148 and string.byte(s, 2) == 207 and string.byte(s, 11) == 206
end

-- true when the version in a's header is >= the one in b's
local function not_older(a, b)
  for i = 3, 10 do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return true
end

local new = ARGV[1]
local cur = redis.call('GET', KEYS[1])
if cur and header_ok(cur) and string.sub(cur, 12, 15) == string.sub(new, 12, 15) and not_older(cur, new) then
  return 0
end
redis.call('SET', KEYS[1], new)
return 1
