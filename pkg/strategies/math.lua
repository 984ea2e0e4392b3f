-- math.lua is the Lua runtime of math.go and of the meter shared by
-- leaky_bucket, gcra and token_bucket_with_debt (leaky_bucket.go). It is
-- the prelude of every script built from the strategies' Lua sources (see
-- lua.go): the strategy chunks that follow it use its local functions as
-- upvalues.
--
-- Redis Lua numbers are float64. Every value the strategies compute stays
-- an integer within ±2^53, so + - * are exact; divisions go through
-- floor_div, quo and ceil_div, which return exact integer quotients.

local floor = math.floor
local mmax, mmin = math.max, math.min

-- floor_div returns ⌊a/b⌋ for integers a and b > 0 (Go's floorDiv). The
-- float quotient is corrected by its remainder, so that it is exact even
-- where a/b rounds to the next integer.
local function floor_div(a, b)
  local q = floor(a / b)
  local r = a - q * b
  if r < 0 then
    q = q - 1
  elseif r >= b then
    q = q + 1
  end
  return q
end

-- floor_mod returns a mod b in [0, b) for b > 0 (Go's floorMod).
local function floor_mod(a, b)
  return a - floor_div(a, b) * b
end

-- ceil_div returns ⌈a/b⌉ for a ≥ 0 and b > 0 (Go's ceilDiv).
local function ceil_div(a, b)
  local q = floor_div(a, b)
  if q * b < a then
    q = q + 1
  end
  return q
end

-- quo returns a/b truncated toward zero, as Go's integer division.
local function quo(a, b)
  local q = floor_div(math.abs(a), math.abs(b))
  if (a < 0) ~= (b < 0) then
    return -q
  end
  return q
end

-- drain returns level after elapsed microseconds of draining rate_num per
-- microsecond, never below zero (Go's drain).
local function drain(level, elapsed, rate_num)
  if level <= 0 then
    return 0
  end
  if elapsed <= 0 or rate_num == 0 then
    return level
  end
  if elapsed >= ceil_div(level, rate_num) then
    return 0
  end
  return level - elapsed * rate_num
end

-- state returns a State: words a, b, c and a log of entries kept flat as
-- {at1, hits1, at2, hits2, ...}.
local function state(a, b, c, log)
  return { a = a, b = b, c = c, log = log or {} }
end

-- zero_state returns the zero State, a fresh key.
local function zero_state()
  return { a = 0, b = 0, c = 0, log = {} }
end

-- decision returns a Decision with every field zero.
local function decision()
  return { allowed = false, exceeds = false, remaining = 0, reset = 0, retry = 0, ttl = 0 }
end

-- capacity_of returns c, or 0 when the limit admits nothing at all
-- (Requests 0: the level would never drain).
local function capacity_of(lim, c)
  if lim.rate_num == 0 then
    return 0
  end
  return c
end

-- meter_report returns the decision fields that describe level at
-- now + skew: remaining, reset and ttl (Go's meter.report).
local function meter_report(capacity, lim, level, skew)
  local d = decision()
  d.remaining = quo(capacity * lim.rate_den - level, lim.rate_den)
  if level > 0 then
    d.reset = skew + ceil_div(level, lim.rate_num)
    d.ttl = d.reset
  end
  return d
end

-- meter_refuse returns the decision for hits the meter, at level (scaled
-- by rate_den), cannot admit now, or nil when they fit (Go's
-- meter.refuse).
local function meter_refuse(capacity, lim, level, skew, hits)
  if hits > capacity then
    local d = meter_report(capacity, lim, level, skew)
    d.exceeds = true
    return d
  elseif hits > 0 then
    local need = hits * lim.rate_den
    local free = capacity * lim.rate_den - level
    if need > free then
      local d = meter_report(capacity, lim, level, skew)
      d.retry = skew + ceil_div(need - free, lim.rate_num)
      return d
    end
  end
  return nil
end

-- meter_step applies hits at now to prev for a meter of the given
-- capacity (Go's meter.step). State: a is the level in hits scaled by
-- rate_den, b the time it was computed at.
local function meter_step(capacity, lim, prev, now, hits)
  local den = lim.rate_den
  local t = mmax(now, prev.b)
  local level = drain(prev.a, t - prev.b, lim.rate_num)
  local skew = t - now
  local refused = meter_refuse(capacity, lim, level, skew, hits)
  if refused then
    return prev, refused
  end
  if hits > 0 then
    level = level + hits * den
  elseif hits < 0 then
    if hits <= -ceil_div(level, den) then
      level = 0
    else
      level = level + hits * den
    end
  end
  local d = meter_report(capacity, lim, level, skew)
  d.allowed = true
  if level == 0 then
    return zero_state(), d
  end
  return state(level, t, 0), d
end
