-- gcra.lua is the Lua runtime of GCRA.Step (gcra.go), evaluated after
-- math.lua: a meter of capacity Burst.
return function(prev, now, lim, hits)
  return meter_step(capacity_of(lim, lim.burst), lim, prev, now, hits)
end
