-- leaky_bucket.lua is the Lua runtime of LeakyBucket.Step
-- (leaky_bucket.go), evaluated after math.lua: a meter of capacity
-- Requests.
return function(prev, now, lim, hits)
  return meter_step(capacity_of(lim, lim.requests), lim, prev, now, hits)
end
