-- dispatch.lua is the body of the Redis store's script (or of the function
-- of its library, whose parameters are named KEYS and ARGV). It runs after the
-- strategies' prelude and the STEPS table (see script.go), and applies
-- the ops of one Store.Apply call atomically, exactly as the memory store
-- does.
--
-- KEYS[i] is the key of op i. ARGV[1] is now in microseconds since the
-- Unix epoch, or -1 to read the server's TIME. ARGV[2] is the expiry
-- slack in milliseconds. Then 3 + LIMIT_ARGS values per op: the strategy
-- id (an index of STEPS), the prepared Limit in the layout of the strategy
-- registry (LIMIT_ARGS values read by limit_from_args, both from the
-- prelude: see strategies.LuaLimitReader), hits, independent (1 or 0).
--
-- A state is stored as four MessagePack objects (cmsgpack, in C, so that
-- logs of thousands of entries decode and encode fast): the integers a, b
-- and c, then the log as one flat array (at1, hits1, at2, hits2, ...). It is
-- written with PX = ⌈TTL / 1000⌉ + slack of the last decision on its key,
-- or deleted when that TTL is 0.
--
-- The reply is 6 integers per op: allowed (1/0), exceeds (1/0), remaining,
-- reset, retry_after, ttl.

local F = 3 + LIMIT_ARGS
local n = #KEYS
if #ARGV ~= 2 + F * n then
  return redis.error_reply('ERR redisstore: ' .. n .. ' keys need ' .. (2 + F * n) .. ' arguments, got ' .. #ARGV)
end
local slack = tonumber(ARGV[2])

local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function decode(raw)
  if not raw then
    return zero_state()
  end
  local a, b, c, log = cmsgpack.unpack(raw)
  return state(a, b, c, log)
end

local function encode(st)
  return cmsgpack.pack(st.a, st.b, st.c, st.log)
end

local ops = {}
local orig = {}
for i = 1, n do
  local b = 2 + (i - 1) * F
  local step = STEPS[tonumber(ARGV[b + 1])]
  if step == nil then
    return redis.error_reply('ERR redisstore: unknown strategy id ' .. ARGV[b + 1])
  end
  ops[i] = {
    key = KEYS[i],
    step = step,
    lim = limit_from_args(ARGV, b + 2),
    hits = tonumber(ARGV[b + 2 + LIMIT_ARGS]),
    independent = ARGV[b + 3 + LIMIT_ARGS] == '1',
  }
  if orig[KEYS[i]] == nil then
    orig[KEYS[i]] = decode(redis.call('GET', KEYS[i]))
  end
end

-- Pass 1: every op in order on the staged states.
local cur, ttl, dirty = {}, {}, {}
local out = {}
local veto = false
for i = 1, n do
  local op = ops[i]
  local k = op.key
  local nx, d = op.step(cur[k] or orig[k], now, op.lim, op.hits)
  cur[k], ttl[k] = nx, d.ttl
  if op.hits ~= 0 and d.allowed then
    dirty[k] = true
  end
  out[i] = d
  if op.hits > 0 and not d.allowed and not op.independent then
    veto = true
  end
end

-- Pass 2 (all or nothing): nothing with hits > 0 consumes. Refused ops
-- keep their refusal; admitted ones report a check; refunds and checks
-- apply as usual.
if veto then
  cur, ttl, dirty = {}, {}, {}
  for i = 1, n do
    local op = ops[i]
    local k = op.key
    if op.hits > 0 then
      if out[i].allowed then
        local _, d = op.step(cur[k] or orig[k], now, op.lim, 0)
        out[i] = d
      end
    else
      local nx, d = op.step(cur[k] or orig[k], now, op.lim, op.hits)
      cur[k], ttl[k] = nx, d.ttl
      if op.hits ~= 0 and d.allowed then
        dirty[k] = true
      end
      out[i] = d
    end
  end
end

-- Write back the states that changed; checks and refusals change nothing.
for k in pairs(dirty) do
  local t = ttl[k]
  if t > 0 then
    redis.call('SET', k, encode(cur[k]), 'PX', ceil_div(t, 1000) + slack)
  else
    redis.call('DEL', k)
  end
end

local res = {}
for i = 1, n do
  local d = out[i]
  local j = (i - 1) * 6
  res[j + 1] = d.allowed and 1 or 0
  res[j + 2] = d.exceeds and 1 or 0
  res[j + 3] = d.remaining
  res[j + 4] = d.reset
  res[j + 5] = d.retry
  res[j + 6] = d.ttl
end
return res
