-- fixed_window.lua is the Lua runtime of FixedWindow.Step
-- (fixed_window.go), evaluated after math.lua. State: a is the start of
-- the window the count belongs to, b the count.
return function(prev, now, lim, hits)
  local l, w = lim.requests, lim.period
  if w <= 0 then
    local d = decision()
    d.exceeds = hits > 0
    return prev, d
  end
  local eff = now
  if prev.b > 0 and prev.a > eff then
    eff = prev.a -- clock went backwards: stay in the window already seen
  end
  local start = eff - floor_mod(eff, w)
  local cur = 0
  if prev.a == start then
    cur = prev.b
  end
  local until_end = start + w - now

  local function decide(count)
    local d = decision()
    d.remaining = mmax(l - count, 0)
    d.reset = until_end
    if count > 0 then
      d.ttl = until_end
    end
    return d
  end
  local function prev_ttl()
    if prev.b > 0 and prev.a + w > now then
      return prev.a + w - now
    end
    return 0
  end

  if hits > l then
    local d = decide(cur)
    d.exceeds = true
    d.ttl = prev_ttl()
    return prev, d
  elseif hits > 0 and cur > l - hits then
    local d = decide(cur)
    d.retry = until_end
    d.ttl = prev_ttl()
    return prev, d
  else -- consume, check, or refund never below an empty counter
    cur = mmax(0, cur + hits)
  end
  local d = decide(cur)
  d.allowed = true
  return state(start, cur, 0), d
end
