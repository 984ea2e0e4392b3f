-- sliding_window_log.lua is the Lua runtime of SlidingWindowLog.Step
-- (sliding_window_log.go), evaluated after math.lua. State: log holds the
-- entries still counting, oldest first, flat as {at1, hits1, ...}; a, b
-- and c are zero. prev is never modified: the next log is a new table.
return function(prev, now, lim, hits)
  local l, w = lim.requests, lim.period
  if w <= 0 then
    local d = decision()
    d.exceeds = hits > 0
    return prev, d
  end
  local log = prev.log
  local n = #log / 2
  local eff = now
  if n > 0 and log[2 * n - 1] > eff then
    eff = log[2 * n - 1]
  end
  -- Skip the entries that no longer count at eff; i is the first live one.
  local i = 1
  while i <= n and log[2 * i - 1] + w <= eff do
    i = i + 1
  end
  local sum = 0
  for j = i, n do
    sum = sum + log[2 * j]
  end
  -- Reset of the live log and TTL of prev's log: both end when the newest
  -- entry expires.
  local newest = 0
  if n > 0 then
    newest = log[2 * n - 1] + w - now
  end
  local fresh_live = 0
  if i <= n then
    fresh_live = newest
  end

  if hits > l then
    local d = decision()
    d.exceeds = true
    d.remaining = mmax(l - sum, 0)
    d.reset = fresh_live
    d.ttl = mmax(newest, 0)
    return prev, d
  elseif hits > 0 and sum > l - hits then
    -- Wait until the oldest entries holding at least sum+hits−l expire.
    local need = sum + hits - l
    local at = eff
    for j = i, n do
      need = need - log[2 * j]
      if need <= 0 then
        at = log[2 * j - 1] + w
        break
      end
    end
    local d = decision()
    d.remaining = mmax(l - sum, 0)
    d.reset = fresh_live
    d.ttl = mmax(newest, 0)
    d.retry = at - now
    return prev, d
  end

  local live = {}
  local m = 0
  for j = i, n do
    live[2 * m + 1] = log[2 * j - 1]
    live[2 * m + 2] = log[2 * j]
    m = m + 1
  end
  if hits > 0 then
    if m > 0 and live[2 * m - 1] == eff then
      live[2 * m] = live[2 * m] + hits
    else
      live[2 * m + 1] = eff
      live[2 * m + 2] = hits
      m = m + 1
    end
    sum = sum + hits
  elseif hits < 0 then
    -- Remove −hits from the newest entries (Go's slwRefund).
    if hits <= -sum then
      live, m, sum = {}, 0, 0
    else
      local left = -hits
      while m > 0 and live[2 * m] <= left do
        left = left - live[2 * m]
        live[2 * m] = nil
        live[2 * m - 1] = nil
        m = m - 1
      end
      if left > 0 then
        live[2 * m] = live[2 * m] - left
      end
      sum = sum + hits
    end
  end
  local f = 0
  if m > 0 then
    f = live[2 * m - 1] + w - now
  end
  local d = decision()
  d.allowed = true
  d.remaining = mmax(l - sum, 0)
  d.reset = f
  d.ttl = f
  return state(0, 0, 0, live), d
end
