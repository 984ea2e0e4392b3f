-- token_bucket_with_debt.lua is the Lua runtime of
-- TokenBucketWithDebt.Step (token_bucket_with_debt.go), evaluated after
-- math.lua: a meter of capacity Burst + MaxDebt.
return function(prev, now, lim, hits)
  return meter_step(capacity_of(lim, lim.burst + lim.max_debt), lim, prev, now, hits)
end
