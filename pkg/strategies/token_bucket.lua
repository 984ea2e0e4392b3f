-- token_bucket.lua is the Lua runtime of TokenBucket.Step
-- (token_bucket.go), evaluated after math.lua. State: a is the time the
-- deficit was computed at, b the deficit in tokens scaled by rate_den.
return function(prev, now, lim, hits)
  local c, den, num = lim.burst, lim.rate_den, lim.rate_num
  if den <= 0 then
    local d = decision()
    d.exceeds = hits > 0
    return prev, d
  end
  local t = mmax(now, prev.a)
  local used = drain(prev.b, t - prev.a, num)
  local full = c * den

  local function report(u)
    local d = decision()
    d.remaining = quo(full - u, den)
    if u > 0 then
      d.reset = t + ceil_div(u, num) - now
      d.ttl = d.reset
    end
    return d
  end

  if hits > c then
    local d = report(used)
    d.exceeds = true
    return prev, d
  elseif hits > 0 and used > (c - hits) * den then
    local d = report(used)
    d.retry = t + ceil_div(used - (c - hits) * den, num) - now
    return prev, d
  elseif hits < 0 then
    if hits < -c then
      used = 0
    else
      used = mmax(used + hits * den, 0)
    end
  else
    used = used + hits * den
  end
  local d = report(used)
  d.allowed = true
  if used == 0 then
    return zero_state(), d
  end
  return state(t, used, 0), d
end
