-- leaky_bucket_with_queue.lua is the Lua runtime of
-- LeakyBucketWithQueue.Step (leaky_bucket_with_queue.go), evaluated after
-- math.lua. State: log holds the queued requests flat as {at1, hits1, ...};
-- a is how much of the head has leaked (hits scaled by rate_den), b the
-- time the queue was last drained to, c the sum of the log's hits. prev is
-- never modified: leak returns a new table.

-- leak returns prev drained up to t ≥ prev.b (Go's leakQueue).
local function leak(prev, t, num, den)
  local a, c = prev.a, prev.c
  local u = c * den - a
  local leaked = u - drain(u, t - prev.b, num)
  local log = prev.log
  local n = #log / 2
  local i = 1
  while leaked > 0 and i <= n do
    local left = log[2 * i] * den - a
    if leaked < left then
      a = a + leaked
      break
    end
    leaked = leaked - left
    a = 0
    c = c - log[2 * i]
    i = i + 1
  end
  local q = {}
  local m = 0
  for j = i, n do
    q[2 * m + 1] = log[2 * j - 1]
    q[2 * m + 2] = log[2 * j]
    m = m + 1
  end
  if m == 0 then
    a, c = 0, 0
  end
  return state(a, t, c, q)
end

-- refund removes −hits hits (hits < 0) from the tail of the queue of s,
-- whose level is level (Go's refundQueue). s is owned by the caller.
local function refund(s, hits, level, den)
  if hits <= -ceil_div(level, den) then
    s.log, s.a, s.c = {}, 0, 0
    return s
  end
  local log = s.log
  local r = -hits
  local n = #log / 2
  while n > 1 and log[2 * n] <= r do
    r = r - log[2 * n]
    s.c = s.c - log[2 * n]
    log[2 * n] = nil
    log[2 * n - 1] = nil
    n = n - 1
  end
  if r > 0 then
    log[2 * n] = log[2 * n] - r
    s.c = s.c - r
  end
  return s
end

return function(prev, now, lim, hits)
  local capacity = capacity_of(lim, lim.requests)
  local den = lim.rate_den
  local t = mmax(now, prev.b)
  local skew = t - now
  local s = leak(prev, t, lim.rate_num, den)
  local level = s.c * den - s.a
  local refused = meter_refuse(capacity, lim, level, skew, hits)
  if refused then
    return prev, refused
  end
  if hits > 0 then
    local n = #s.log
    s.log[n + 1] = t
    s.log[n + 2] = hits
    s.c = s.c + hits
  elseif hits < 0 then
    s = refund(s, hits, level, den)
  end
  local d = meter_report(capacity, lim, s.c * den - s.a, skew)
  d.allowed = true
  if #s.log == 0 then
    s.b = 0
  end
  return s, d
end
