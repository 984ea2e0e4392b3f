-- math.lua is the Lua runtime of math.go. With meter.lua after it, it is
-- the prelude of every script built from the strategies' Lua sources (see
-- LuaPrelude in lua.go): the strategy chunks that follow use its local
-- functions as upvalues.
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
