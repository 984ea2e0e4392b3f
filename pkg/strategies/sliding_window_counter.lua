-- sliding_window_counter.lua is the Lua runtime of
-- SlidingWindowCounter.Step (sliding_window_counter.go), evaluated after
-- math.lua. State: a is the start of the current window, b its count and
-- c the count of the window before it.

-- admits reports whether old·(w−elapsed) + (cur+hits)·w ≤ l·w (Go's
-- swcAdmits).
local function admits(old, cur, hits, l, w, elapsed)
  local room = l - hits - cur
  if room < 0 then
    return false
  end
  return old * (w - elapsed) <= room * w
end

-- retry_at returns the earliest instant at which a request of hits is
-- admitted when nothing else arrives (Go's swcRetryAt).
local function retry_at(old, cur, hits, l, w, start, elapsed)
  local x = l - hits
  if cur <= x and old > 0 then
    local e = w - quo((x - cur) * w, old)
    if e < w then
      return start + mmax(e, elapsed)
    end
  end
  if cur == 0 then
    return start + w
  end
  return start + w + (w - quo(x * w, cur))
end

return function(prev, now, lim, hits)
  local l, w = lim.requests, lim.period
  if w <= 0 then
    local d = decision()
    d.exceeds = hits > 0
    return prev, d
  end
  local eff = now
  if (prev.b > 0 or prev.c > 0) and prev.a > eff then
    eff = prev.a
  end
  local start = eff - floor_mod(eff, w)
  local cur, old = 0, 0
  if start == prev.a then
    cur, old = prev.b, prev.c
  elseif start == prev.a + w then
    old = prev.b
  end
  local elapsed = eff - start

  local function fresh(c)
    if c > 0 then
      return start + 2 * w - now
    elseif old > 0 then
      return start + w - now
    end
    return 0
  end
  local function remaining(c)
    return mmax(l - c - ceil_div(old * (w - elapsed), w), 0)
  end

  if hits > l then
    local d = decision()
    d.exceeds = true
    d.remaining = remaining(cur)
    d.reset = fresh(cur)
    d.ttl = d.reset
    return prev, d
  elseif hits > 0 and not admits(old, cur, hits, l, w, elapsed) then
    local at = retry_at(old, cur, hits, l, w, start, elapsed)
    local d = decision()
    d.remaining = remaining(cur)
    d.reset = fresh(cur)
    d.ttl = d.reset
    d.retry = at - now
    return prev, d
  else -- consume, check, or refund never below an empty counter
    cur = mmax(0, cur + hits)
  end
  local f = fresh(cur)
  local next = state(start, cur, old)
  if f == 0 then
    next = zero_state()
  end
  local d = decision()
  d.allowed = true
  d.remaining = remaining(cur)
  d.reset = f
  d.ttl = f
  return next, d
end
