-- ARGV: enqueued, done, failed (this instance's counts since its last call).
-- Adds them to the per-minute counters the console charts: :rate:<minute>,
-- a hash (fields enqueued, done, failed) named by Redis' clock in whole
-- minutes since the epoch, so that every instance adds to the same minute,
-- kept RATE_TTL seconds (the console shows the last 15 minutes). dropqd
-- calls this at most once per queue per tick, and only with something to add.
local RATE_TTL = 1200
local base = KEYS[1]
local t = redis.call('TIME')
local key = base .. 'rate:' .. math.floor(tonumber(t[1]) / 60)
local fields = {'enqueued', 'done', 'failed'}
for i, field in ipairs(fields) do
  local n = tonumber(ARGV[i]) or 0
  if n > 0 then redis.call('HINCRBY', key, field, n) end
end
redis.call('EXPIRE', key, RATE_TTL)
return 1
