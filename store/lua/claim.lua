-- ARGV: now_ms, instance, max. Takes up to `max` jobs from the front of
-- :pending and makes them active under `instance` (claim_pending() in
-- lib.lua). Returns them packed (packed_jobs() in lib.lua), or an error
-- starting "PAUSED" while `dropqctl pause` is in force.
local base = KEYS[1]
local bad = check_types(base, {'pending', 'active', 'failed', 'files', 'counts'})
if bad then return bad end
if redis.call('EXISTS', base .. 'paused') == 1 then
  -- `dropqctl pause`: every instance stops starting jobs, none is claimed.
  return redis.error_reply('PAUSED ' .. base .. 'paused is set (dropqctl resume)')
end
local out = {}
claim_pending(base, ARGV[1], ARGV[2], tonumber(ARGV[3]), out)
return packed_jobs(out)
