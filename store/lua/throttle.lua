-- ARGV: delay_ms, reason. A server asked to wait (429 or 503 with
-- Retry-After): no instance claims a job of this queue until Redis' clock
-- passes now + delay_ms. :throttled_until holds that time (unix ms) and
-- :throttled_reason why, both expiring then; a later, longer request
-- extends them, a shorter one leaves them. Returns the time in force.
local base = KEYS[1]
local bad = check_layout(base)
if bad then return bad end
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = clock + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', base .. 'throttled_until') or '') or 0
if want <= cur then return cur end
redis.call('SET', base .. 'throttled_until', want, 'PXAT', want)
redis.call('SET', base .. 'throttled_reason', ARGV[2], 'PXAT', want)
redis.call('HINCRBY', base .. 'counts', 'throttled', 1)
return want
