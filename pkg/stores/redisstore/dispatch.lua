-- dispatch.lua is the body of the Redis store's script (or of the function
-- of its library, whose parameters are named KEYS and ARGV). It runs after
-- the strategies' prelude and the STEPS table (see script.go). One call
-- decides one or more requests (Store.Apply calls), one after the other in
-- call order, each with the all-or-nothing rule exactly as the memory
-- store applies it. The whole call is atomic, so each request is too.
-- This is the only Lua implementation of the rule: the single-node
-- batches and each cluster slot group run it.
--
-- KEYS are the keys of every op of every request, in order. ARGV[1] is
-- the expiry slack in milliseconds. Then, per request: now in
-- microseconds since the Unix epoch (or -1 to read the server's TIME, once
-- per call), the number of ops n, then 4 + LIMIT_ARGS values per op: the
-- strategy id (an index of STEPS), the prepared Limit in the layout of the
-- strategy registry (LIMIT_ARGS values read by limit_from_args, both from
-- the prelude: see strategies.LuaLimitReader), hits, independent (1 or 0),
-- and the window start of a counter op (ignored for the others).
--
-- A state is stored as four MessagePack objects (cmsgpack, in C, so that
-- logs of thousands of entries decode and encode fast): the integers a, b
-- and c, then the log as one flat array (at1, hits1, at2, hits2, ...). It
-- is written with PX = ceil(TTL / 1000) + slack of the last decision on
-- its key, or deleted when that TTL is 0.
--
-- The ops of strategy COUNTER_ID (fixed_window) are counter ops: their
-- key is the counter of one window (see counter.go), which holds the
-- count as a plain integer that the store also changes with INCRBY
-- outside any script. Their state is (window start, count); it is written
-- with PX = ceil(TTL / 1000) + max(slack, 1000) (counterSlackMs in
-- counter.go), or deleted when the TTL is 0.
--
-- The reply is 6 integers per op, requests and ops in order: allowed
-- (1/0), exceeds (1/0), remaining, reset, retry_after, ttl.

local F = 4 + LIMIT_ARGS
local nargv = #ARGV
local slack = tonumber(ARGV[1])
local counter_slack = slack
if counter_slack < 1000 then
  counter_slack = 1000
end
local server_now = nil

-- is_counter reports whether the op whose arguments follow ARGV[b] (its
-- strategy id) is a counter op.
local function is_counter(b)
  return tonumber(ARGV[b + 1]) == COUNTER_ID
end

-- read returns the state of key k for the op whose arguments follow
-- ARGV[b].
local function read(k, b)
  local raw = redis.call('GET', k)
  if is_counter(b) then
    local n = 0
    if raw then
      n = tonumber(raw)
      if n == nil then
        error('redisstore: key ' .. k .. ' holds no fixed_window counter')
      end
    end
    return state(tonumber(ARGV[b + 4 + LIMIT_ARGS]), n, 0)
  end
  if not raw then
    return zero_state()
  end
  local a, b2, c, log = cmsgpack.unpack(raw)
  return state(a, b2, c, log)
end

-- Check the layout of every request before anything is written, so that
-- a malformed call changes nothing.
do
  local q, nk = 2, 0
  while q <= nargv do
    local n = tonumber(ARGV[q + 1])
    if tonumber(ARGV[q]) == nil or n == nil or n < 1 or q + 1 + F * n > nargv then
      return redis.error_reply('ERR redisstore: malformed request at argument ' .. q)
    end
    for i = 1, n do
      local id = ARGV[q + 2 + (i - 1) * F]
      if STEPS[tonumber(id)] == nil then
        return redis.error_reply('ERR redisstore: unknown strategy id ' .. id)
      end
    end
    nk = nk + n
    q = q + 2 + F * n
  end
  if nk ~= #KEYS then
    return redis.error_reply('ERR redisstore: ' .. #KEYS .. ' keys for ' .. nk .. ' ops')
  end
end

local res = {}
local nres = 0

-- write stores st on k for ttl microseconds (plus the slack), or deletes
-- k when ttl is 0; counter tells a counter op's key.
local function write(k, st, ttl, counter)
  if ttl <= 0 then
    redis.call('DEL', k)
  elseif counter then
    redis.call('SET', k, st.b, 'PX', ceil_div(ttl, 1000) + counter_slack)
  else
    redis.call('SET', k, cmsgpack.pack(st.a, st.b, st.c, st.log), 'PX', ceil_div(ttl, 1000) + slack)
  end
end

-- reply appends decision d to the reply.
local function reply(d)
  res[nres + 1] = d.allowed and 1 or 0
  res[nres + 2] = d.exceeds and 1 or 0
  res[nres + 3] = d.remaining
  res[nres + 4] = d.reset
  res[nres + 5] = d.retry
  res[nres + 6] = d.ttl
  nres = nres + 6
end

-- limit returns the limit of the op whose arguments follow ARGV[b + 1]
-- (its strategy id).
local function limit(b)
  return limit_from_args(ARGV, b + 2)
end

-- one decides a request of one op, the op whose arguments follow ARGV[b]
-- on key k: all or nothing is trivial (a refused op consumes nothing by
-- itself), so it is stepped once, without staging.
local function one(k, b, now)
  local h = tonumber(ARGV[b + 2 + LIMIT_ARGS])
  local nx, d = STEPS[tonumber(ARGV[b + 1])](read(k, b), now, limit(b), h)
  if h ~= 0 and d.allowed then
    write(k, nx, d.ttl, is_counter(b))
  end
  reply(d)
end

-- many decides a request of n ops, the first on KEYS[kbase + 1] with
-- arguments after ARGV[b]: each op is stepped in order on staged states,
-- and the states are written only if every op with hits > 0 that is not
-- independent is allowed.
local function many(kbase, b, n, now)
  local keys, steps, lims, hits, indep = {}, {}, {}, {}, {}
  local orig, counter = {}, {}
  for i = 1, n do
    local o = b + (i - 1) * F
    local k = KEYS[kbase + i]
    keys[i], steps[i], lims[i] = k, STEPS[tonumber(ARGV[o + 1])], limit(o)
    hits[i] = tonumber(ARGV[o + 2 + LIMIT_ARGS])
    indep[i] = ARGV[o + 3 + LIMIT_ARGS] == '1'
    if orig[k] == nil then
      orig[k] = read(k, o)
      counter[k] = is_counter(o)
    end
  end

  -- Pass 1: every op in order on the staged states.
  local cur, ttl, dirty = {}, {}, {}
  local out = {}
  local veto = false
  for i = 1, n do
    local k, h = keys[i], hits[i]
    local nx, d = steps[i](cur[k] or orig[k], now, lims[i], h)
    cur[k], ttl[k] = nx, d.ttl
    if h ~= 0 and d.allowed then
      dirty[k] = true
    end
    out[i] = d
    if h > 0 and not d.allowed and not indep[i] then
      veto = true
    end
  end

  -- Pass 2 (all or nothing): nothing with hits > 0 consumes. Refused ops
  -- keep their refusal; admitted ones report a check; refunds and checks
  -- apply as usual.
  if veto then
    cur, ttl, dirty = {}, {}, {}
    for i = 1, n do
      local k, h = keys[i], hits[i]
      if h > 0 then
        if out[i].allowed then
          local _, d = steps[i](cur[k] or orig[k], now, lims[i], 0)
          out[i] = d
        end
      else
        local nx, d = steps[i](cur[k] or orig[k], now, lims[i], h)
        cur[k], ttl[k] = nx, d.ttl
        if h ~= 0 and d.allowed then
          dirty[k] = true
        end
        out[i] = d
      end
    end
  end

  -- Write back the states that changed; checks and refusals change
  -- nothing. The next request of the call reads them back.
  for k in pairs(dirty) do
    write(k, cur[k], ttl[k], counter[k])
  end
  for i = 1, n do
    reply(out[i])
  end
end

local kbase = 0 -- KEYS index before the request's first key
local p = 2     -- ARGV index of the request's header
while p <= nargv do
  local now = tonumber(ARGV[p])
  local n = tonumber(ARGV[p + 1])
  if now < 0 then
    if server_now == nil then
      local t = redis.call('TIME')
      server_now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    now = server_now
  end
  if n == 1 then
    one(KEYS[kbase + 1], p + 1, now)
  else
    many(kbase, p + 1, n, now)
  end
  kbase = kbase + n
  p = p + 2 + F * n
end
return res
