-- meter.lua is the Lua runtime of meter.go: the bucket shared by
-- leaky_bucket, gcra and token_bucket_with_debt. It follows math.lua in
-- the prelude (see LuaPrelude in lua.go) and uses its locals.

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
