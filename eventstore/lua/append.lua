-- append.lua: check expected versions and append events to entity streams
-- and to their partition log, for a group of independent transactions.
--
-- KEYS[1..]   per transaction, its partition's keys (one hash tag):
--               the partition log        <ns>:{<cat>:<p>}:log
--               per stream, two keys:
--               the entity stream        <ns>:{<cat>:<p>}:s:<id>
--               its stream tombstone     <ns>:{<cat>:<p>}:gone:<id>
-- The transactions of one call share a partition on a cluster (one slot
-- per script); on a standalone server one call carries transactions of
-- every partition.
--
-- ARGV[1]     number of transactions T (0: a lone call, below)
-- then, per transaction:
--   L                                     key index of its partition log,
--                                         negative (-L) for a lone
--                                         transaction (below)
--   a lone transaction: key index (the stream; the tombstone follows it),
--                entity id, expected id (or the code EXPECT_ANY or
--                EXPECT_EXISTS), entry id ("" with a code), envelope
--   any other:
--   S                                     number of streams in it
--   per stream:  key index (into KEYS: the stream; the tombstone follows it),
--                entity id, expected, expected id, N,
--                then N times: entry id, envelope (its first 16 bytes are the event id)
-- expected: EXPECT_ANY, EXPECT_EXISTS (stream exists), >= 0 exact version
-- (0 = no stream); another negative code is refused (FAILED).
-- expected id: "<expected>-0" for an exact version > 0, else "".
-- entry id: "<version>-0" of the event when expected is exact, else "" (the
-- script then formats it). Formatting numbers in Lua costs ~0.8 µs an event,
-- and comparing the stream's last id with the expected id as strings avoids
-- parsing it: the common case (an exact expected version) does neither.
--
-- Lone transactions: one stream, one event, an exact expected version > 0
-- or any version (EXPECT_ANY, EXPECT_EXISTS): a single Append, the
-- commonest kind. Each argument costs Redis ~0.2 µs, so they are sent
-- without the parts the general layout needs (S, N, the expected version
-- beside its id); when the stream's last entry is the expected one (or,
-- at any version, is not this event's: a retry), they are written at once
-- (lone below), and otherwise (another version, no stream, a retry, a
-- refused write) handed to the general path with their part rewritten
-- into the general layout. A call of one lone transaction alone (T = 0:
-- KEYS the log, the stream and its tombstone; ARGV 0 and its part without
-- the key index) is written before any other function is defined (~1.3 µs
-- a call) and replies with its result alone (the log position at an
-- expected id; else {APPENDED, {version, pos}} in an array of one), when
-- lone wrote it.
--
-- Deleted streams (delete.lua): a stream that does not exist but has a
-- tombstone was deleted at the tombstone's version D. It is not live: only
-- "no stream" and "any" may append to it, and its new life continues at
-- D+1 (as KurrentDB's soft delete), so that nothing derived from the old
-- life (read-model tombstones, late snapshots) can hide or overwrite it.
--
-- Entries written (see wire.go):
--   log:     XADD log *        s <entity id> v <version>-0 e <envelope>
--   entity:  XADD key <ver>-0  e <envelope> p <log entry id>
--
-- Codes: APPENDED 0, REPLAYED 1, CONFLICT 2, FAILED 3, DAMAGED 4,
--   EXPECT_ANY -1, EXPECT_EXISTS -2
-- (defined in Go, eventstore/scripts.go, and prepended as Lua locals)
--
-- Returns one element per transaction, in order:
--   pos                               a lone transaction appended by lone at
--                                     its exact expected version (so its
--                                     version is expected+1):
--                                     the event's log position, a string (a
--                                     nested reply costs Redis ~1 µs an event)
--   {APPENDED, {version, pos1..posN}, ...}   appended (one table per stream)
--   {REPLAYED, {version, pos1..posN}, ...}   replay: the same event ids are
--                                     already stored after the expected
--                                     version; the original versions and
--                                     positions
--   {CONFLICT, stream index (1-based), actual version}   wrong expected
--                                     version (actual 0: the stream is not
--                                     live)
--   {DAMAGED, stream index, version, last}  the stream is damaged: its version
--                                     is beyond its last stored event (the
--                                     tail was removed by hand, XDEL), so
--                                     an append would leave a hole no load
--                                     can fold; refused
--   {FAILED, written (0|1), message}  Redis refused a command of this
--                                     transaction (out of memory, read-only,
--                                     a key of another type): nothing of it
--                                     was written (0), or part of it was (1:
--                                     never expected after the checks)
--
-- A transaction is all or nothing and fails alone: every stream is checked
-- before any write, and each transaction's outcome is its own. The check of
-- the hot path reads the stream's last entry; when an operator removed the
-- tail (XDEL) the stream's true version is higher and the entity write is
-- refused by Redis: the script then removes the log entry it has just added
-- (nobody can have read it) and reports the stream as damaged. Transactions
-- of several streams check the exact versions up front instead, since an
-- earlier stream's writes could not be taken back.
--
-- The hot path (hot below): a transaction of one stream with a last entry,
-- at an exact expected version that this entry matches or at any version,
-- is written straight away. Everything else goes through the general
-- machinery, whose functions are only created when a call needs them
-- (creating them costs ~1.2 µs a call, the general checks ~2 µs more than
-- the hot path).

-- lone writes a lone transaction when the stream has a last entry that
-- its expected (an expected id, or the code EXPECT_ANY or EXPECT_EXISTS)
-- accepts: the expected id's entry, or any entry but this event's own (a
-- retry). It returns the event's log position (at an expected id) or
-- {APPENDED, {version, pos}}; else nil, with nothing written (another
-- version, no stream, a retry, a refused write: the general path finds
-- out which).
local function lone(log, key, eid, expected, vid, env)
  local r = redis.pcall('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if type(r) ~= 'table' or not r[1] then return nil end
  local last, v = r[1][1], nil
  if string.byte(expected) == 45 then -- '-': a code, any version
    local fv = r[1][2]
    if fv[1] == 'e' and string.sub(fv[2], 1, 16) == string.sub(env, 1, 16) then return nil end
    v = string.sub(last, -2) == '-0' and tonumber(string.sub(last, 1, -3))
    if not v then return nil end
    v = v + 1
    vid = v .. '-0'
  elseif last ~= expected then
    return nil
  end
  local pos = redis.pcall('XADD', log, '*', 's', eid, 'v', vid, 'e', env)
  if type(pos) ~= 'string' then return nil end
  if type(redis.pcall('XADD', key, vid, 'e', env, 'p', pos)) == 'string' then
    if v then return {APPENDED, {v, pos}} end
    return pos
  end
  -- Refused (the tail removed by hand, out of memory): nobody can have
  -- read the log entry.
  redis.call('XDEL', log, pos)
  return nil
end

if ARGV[1] == '0' then
  local res = lone(KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
  if type(res) == 'table' then return {res} end
  if res then return res end
end

-- version.lua goes here when the script is built: current(key, tomb),
-- exact(key) and vof(id), used below.

local function failed(r) return type(r) == 'table' and r.err ~= nil end

-- write appends the n events of one stream after version v (their log
-- entries to log; their entry ids and envelopes from A[e] on). It returns
-- {version, pos...}, or nil and the error of the first write that failed
-- and whether that write was the stream's first entity write (then the
-- log entry it came with has been removed again and nothing is written).
local function write(A, log, key, eid, exp, v, n, e)
  local r = {v + n}
  for i = 1, n do
    local vid = A[e]
    if vid == '' or v ~= exp then vid = (v + i) .. '-0' end
    local pos = redis.pcall('XADD', log, '*', 's', eid, 'v', vid, 'e', A[e + 1])
    if failed(pos) then return nil, pos.err, i == 1 end
    local w = redis.pcall('XADD', key, vid, 'e', A[e + 1], 'p', pos)
    if failed(w) then
      if i == 1 then redis.call('XDEL', log, pos) end
      return nil, w.err, i == 1
    end
    r[i + 1] = pos
    e = e + 2
  end
  return r
end

-- machinery builds the general path: it returns transaction(A, log, ns, a),
-- which checks and writes one transaction of ns streams whose first
-- stream's part of the arguments A starts at a (its log entries to log)
-- and returns its result, raising {err, partial} when Redis refused one of
-- its writes.
local function machinery()
  -- If events from..from+n-1 of the stream carry the ids of the envelopes
  -- A[first+1], A[first+3], ..., return {from+n-1, pos...}; else nil.
  local function stored(A, key, from, n, first)
    local r = redis.call('XRANGE', key, from .. '-0', (from + n - 1) .. '-0')
    if #r ~= n then return nil end
    local res = {from + n - 1}
    for i = 1, n do
      local fv = r[i][2]
      local env, pos = nil, ''
      for j = 1, #fv, 2 do
        if fv[j] == 'e' then env = fv[j + 1] elseif fv[j] == 'p' then pos = fv[j + 1] end
      end
      if env == nil or string.sub(env, 1, 16) ~= string.sub(A[first + 2 * i - 1], 1, 16) then return nil end
      res[i + 1] = pos
    end
    return res
  end

  -- transaction checks and writes one transaction whose first stream's part
  -- of A starts at a (log entries to log), and returns its result.
  local function transaction(A, log, ns, a)
    local start = a
    local bases = {}      -- version before the append, per stream
    local replays = {}    -- replayed results, per stream
    local nreplay = 0
    local conflict = nil
    for s = 1, ns do
      local ki = tonumber(A[a])
      local key, tomb = KEYS[ki], KEYS[ki + 1]
      local exp = tonumber(A[a + 2])
      local expid = A[a + 3]
      local n = tonumber(A[a + 4])
      local first = a + 5
      if exp < 0 and exp ~= EXPECT_ANY and exp ~= EXPECT_EXISTS then
        error({err = 'ERR unknown expected version ' .. exp, partial = false})
      end
      local cur, lastid, live, gone
      if exp > 0 then
        local r = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
        if #r > 0 and r[1][1] == expid then
          cur, live = exp, true
        else
          cur, lastid, live, gone = current(key, tomb)
        end
      elseif exp == 0 and redis.call('EXISTS', key) == 0 then
        cur, live = tonumber(redis.call('GET', tomb) or '0') or 0, false
      else
        cur, lastid, live, gone = current(key, tomb)
      end
      -- lastv: the version of the last stored event (0: none stored).
      local lastv = cur
      if live and lastid == nil and not (exp > 0 and cur == exp) then lastv = 0 end
      if gone then return {DAMAGED, s, cur, lastv} end
      if ns > 1 and live then
        local x, g = exact(key)
        if g or x > cur then return {DAMAGED, s, x, lastv} end
      end
      local replay = nil
      if exp > 0 then
        if not live then
          conflict = conflict or {CONFLICT, s, 0}
        elseif cur ~= exp then
          -- Rare: the exact version, which is higher than the last entry's
          -- when the tail was removed by hand.
          local x, g = exact(key)
          if g or x > cur and lastid ~= nil then return {DAMAGED, s, x, lastv} end
          cur = x
          if cur ~= exp then
            if cur >= exp + n then replay = stored(A, key, exp + 1, n, first) end
            if not replay then conflict = conflict or {CONFLICT, s, cur} end
          end
        end
      elseif exp == 0 then
        if live then
          cur = exact(key)
          -- a retry of the append that began this life?
          local from = (tonumber(redis.call('GET', tomb) or '0') or 0) + 1
          if cur >= from + n - 1 then replay = stored(A, key, from, n, first) end
          if not replay then conflict = conflict or {CONFLICT, s, cur} end
        end
      elseif not live then
        if exp == EXPECT_EXISTS then conflict = conflict or {CONFLICT, s, 0} end
      elseif cur >= n and lastid == string.sub(A[first + 2 * n - 1], 1, 16) then
        -- the stream ends with this batch's last event: a retry
        replay = stored(A, key, cur - n + 1, n, first)
      end
      bases[s] = cur
      if replay then replays[s] = replay; nreplay = nreplay + 1 end
      a = first + 2 * n
    end
    if conflict == nil and nreplay > 0 and nreplay < ns then
      -- part of the transaction is already stored: not a retry of this transaction
      for s = 1, ns do
        if replays[s] then return {CONFLICT, s, bases[s]} end
      end
    end
    if conflict then return conflict end
    if nreplay == ns then
      local res = {REPLAYED}
      for s = 1, ns do res[s + 1] = replays[s] end
      return res
    end
    local res = {APPENDED}
    a = start
    for s = 1, ns do
      local key = KEYS[tonumber(A[a])]
      local eid = A[a + 1]
      local exp = tonumber(A[a + 2])
      local n = tonumber(A[a + 4])
      local r, err, clean = write(A, log, key, eid, exp, bases[s], n, a + 5)
      if r == nil and clean and ns == 1 and string.find(err, 'equal or smaller', 1, true) then
        -- The tail was removed by hand: the true version is higher.
        local x = exact(key)
        if x > bases[s] then return {DAMAGED, 1, x, bases[s]} end
      end
      if r == nil then
        error({err = err, partial = not (clean and s == 1)})
      end
      res[s + 1] = r
      a = a + 5 + 2 * n
    end
    return res
  end

  return transaction
end

-- hot is the hot path for the transaction of one stream whose part of the
-- arguments A starts at a (its log entries to log), when the stream has a
-- last entry: at an exact expected version (> 0) that this entry matches,
-- or at any version (EXPECT_ANY, EXPECT_EXISTS: after this entry), it
-- writes and returns the result. Otherwise (no entry, another version, a possible
-- retry) it returns nil with nothing read but that entry and nothing
-- written, for the general path.
local function hot(A, log, a)
  local exp, expid = tonumber(A[a + 2]), A[a + 3]
  if expid == '' and exp ~= EXPECT_ANY and exp ~= EXPECT_EXISTS then return nil end
  local key = KEYS[tonumber(A[a])]
  local r = redis.pcall('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if failed(r) or #r == 0 then return nil end
  local n = tonumber(A[a + 4])
  local base = exp
  if expid ~= '' then
    if r[1][1] ~= expid then return nil end
  else
    -- A retry of the append that wrote the last entry is the general
    -- path's to recognise.
    local fv = r[1][2]
    if fv[1] == 'e' and string.sub(fv[2], 1, 16) == string.sub(A[a + 4 + 2 * n], 1, 16) then return nil end
    base = vof(r[1][1])
  end
  local w, err, clean = write(A, log, key, A[a + 1], exp, base, n, a + 5)
  if w then
    return {APPENDED, w}
  end
  if clean and string.find(err, 'equal or smaller', 1, true) then
    -- The tail was removed by hand: the true version is higher.
    local x = exact(key)
    if x > base then return {DAMAGED, 1, x, base} end
  end
  if clean then return {FAILED, 0, err} end
  return {FAILED, 1, err}
end

-- general returns a lone transaction's expected and expected id in the
-- general layout, from its expected (an expected id or a code).
local function general(expected)
  if string.byte(expected) == 45 then return expected, '' end
  return string.sub(expected, 1, -3), expected
end

-- A: the arguments in the general layout, but for lone transactions;
-- a lone call that lone did not write is rewritten into it.
local A, T = ARGV, tonumber(ARGV[1])
if T == 0 then
  local exp, expid = general(ARGV[3])
  A, T = {1, 1, 1, 2, ARGV[2], exp, expid, 1, ARGV[4], ARGV[5]}, 1
end
local out = {}
local a = 2
local transaction = nil
for t = 1, T do
  local l = tonumber(A[a])
  local ok, res = true, nil
  if l < 0 then
    local ki = tonumber(A[a + 1])
    -- lone raises nothing: its commands go through redis.pcall, and its
    -- XDEL removes an entry the script has just added.
    res = lone(KEYS[-l], KEYS[ki], A[a + 2], A[a + 3], A[a + 4], A[a + 5])
    if res == nil then
      -- its stream's part in the general layout: key index, entity id,
      -- expected, expected id, N = 1, entry id, envelope
      local exp, expid = general(A[a + 3])
      local part = {ki, A[a + 2], exp, expid, 1, A[a + 4], A[a + 5]}
      transaction = transaction or machinery()
      ok, res = pcall(transaction, part, KEYS[-l], 1, 1)
    end
    a = a + 6
  else
    local ns = tonumber(A[a + 1])
    local next = a + 2
    for _ = 1, ns do next = next + 5 + 2 * tonumber(A[next + 4]) end
    if ns == 1 then ok, res = pcall(hot, A, KEYS[l], a + 2) end
    if ok and res == nil then
      transaction = transaction or machinery()
      ok, res = pcall(transaction, A, KEYS[l], ns, a + 2)
    end
    a = next
  end
  if ok then
    out[t] = res
  else
    local msg = type(res) == 'table' and res.err or tostring(res)
    local partial = 0
    if type(res) == 'table' and res.partial then partial = 1 end
    out[t] = {FAILED, partial, msg}
  end
end
return out
