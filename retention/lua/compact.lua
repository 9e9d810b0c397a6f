-- compact.lua: rewrite a cold entity stream compactly, keeping every event,
-- its entry id (the version) and the stream's last id.
--
-- KEYS[1]  the entity stream
-- ARGV[1]  minimum idle time in seconds (the stream is skipped if younger)
-- ARGV[2]  maximum number of entries (larger streams are skipped: their
--          waste is at most one node's preallocation, and rewriting them
--          would block Redis for long)
-- ARGV[3]  "1" for a dry run (measure, change nothing)
--
-- Codes: COMPACTED 1, NO_STREAM 0, NOT_IDLE -1, TOO_LARGE -2, ALREADY_COMPACT -3
-- (defined in Go, retention/scripts.go, and prepended as Lua locals)
--
-- Returns {status, bytes before, bytes after (estimated on a dry run), entries}
--   status COMPACTED (or would be), NO_STREAM, NOT_IDLE (not idle long
--   enough), TOO_LARGE (too many entries) or ALREADY_COMPACT.
--
-- Why: a stream's first node preallocates 4 KB, so a 3-event stream takes
-- ~4.4 KB. Re-adding the entries without their log positions (the "p"
-- field: the partition log has long been trimmed past them), then DUMP and
-- RESTORE, sizes every allocation to its content (~0.8 KB for 3 events of
-- 100 bytes). The stream's last id, entries-added and max-deleted id are
-- restored with XSETID so versions and later appends are unaffected, and the
-- idle time is kept so the stream stays cold. All in one script: no append
-- can interleave.
--
-- Redis before 7.0 keeps neither entries-added nor a max-deleted id (XINFO
-- STREAM has no such fields, XSETID no such options): there the last id is
-- all there is to restore, and plain XSETID restores it.

local key = KEYS[1]
local minIdle = tonumber(ARGV[1])
local maxEntries = tonumber(ARGV[2])
local dry = ARGV[3] == '1'

if redis.call('EXISTS', key) == 0 then return {NO_STREAM, 0, 0, 0} end
local idle = redis.call('OBJECT', 'IDLETIME', key)
local before = redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
if idle < minIdle then return {NOT_IDLE, before, before, 0} end
local info = redis.call('XINFO', 'STREAM', key)
local len, last, added, maxdel = 0, nil, nil, nil
for i = 1, #info, 2 do
  local k = info[i]
  if k == 'length' then len = info[i + 1]
  elseif k == 'last-generated-id' then last = info[i + 1]
  elseif k == 'entries-added' then added = info[i + 1]
  elseif k == 'max-deleted-entry-id' then maxdel = info[i + 1]
  end
end
if len > maxEntries then return {TOO_LARGE, before, before, len} end

local entries = redis.call('XRANGE', key, '-', '+')
-- Content size: what a compact stream cannot go below. Anything well above
-- it is preallocation slack or positions to drop.
local content = 0
local positions = false
for i = 1, #entries do
  local fv = entries[i][2]
  for j = 1, #fv, 2 do
    if fv[j] == 'e' then content = content + #fv[j + 1] + 8
    elseif fv[j] == 'p' then positions = true end
  end
end
local estimate = content + 320
if not positions and before <= estimate + 512 then return {ALREADY_COMPACT, before, before, len} end
if dry then return {COMPACTED, before, estimate, len} end

redis.call('DEL', key)
for i = 1, #entries do
  local fv = entries[i][2]
  local env = nil
  for j = 1, #fv, 2 do
    if fv[j] == 'e' then env = fv[j + 1] end
  end
  if env then
    redis.call('XADD', key, entries[i][1], 'e', env)
  else
    -- not ours: keep the entry as it was
    local args = {'XADD', key, entries[i][1]}
    for j = 1, #fv do args[#args + 1] = fv[j] end
    redis.call(unpack(args))
  end
end
if #entries == 0 then
  -- an empty stream keeps its last id: recreate it empty
  redis.call('XADD', key, last, 'e', '')
  redis.call('XTRIM', key, 'MAXLEN', 0)
end
if added then
  redis.call('XSETID', key, last, 'ENTRIESADDED', added, 'MAXDELETEDID', maxdel)
else
  redis.call('XSETID', key, last)
end
local dump = redis.call('DUMP', key)
redis.call('RESTORE', key, 0, dump, 'REPLACE', 'IDLETIME', idle)
return {COMPACTED, before, redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'), len}
