-- ARGV: now_ms, instance, max, rate_max, rate_per_ms, max_active. Takes up
-- to `max` jobs from the front of :pending and makes them active under
-- `instance` (claim_pending() in lib.lua). Returns them packed
-- (packed_jobs() in lib.lua), or an error reply that claims nothing:
--   PAUSED ...            `dropqctl pause` is in force
--   THROTTLED <wait_ms> <until_ms>  a server asked every instance to wait
--                         (Retry-After) until until_ms, wait_ms from now
--   LIMITED rate <wait_ms>  rate_max starts in the last rate_per_ms: the next
--                           slot opens in wait_ms
--   LIMITED active        max_active jobs run now
-- With rate_max or max_active (0: none), a claim is a start, counted
-- against Redis' own clock (TIME): the times of the last starts are in
-- :starts (a sliding log, trimmed as it goes: exact over any window, where
-- a token bucket can admit two bursts in one window), the jobs running in
-- :running (left when their outcome is recorded or they go back to pending;
-- an entry whose job is no longer active is dropped here).
local base = KEYS[1]
local bad = check_types(base, {'pending', 'active', 'failed', 'files', 'counts', 'starts',
                               'running'})
if bad then return bad end
if redis.call('EXISTS', base .. 'paused') == 1 then
  -- `dropqctl pause`: every instance stops starting jobs, none is claimed.
  return redis.error_reply('PAUSED ' .. base .. 'paused is set (dropqctl resume)')
end
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = tonumber(redis.call('GET', base .. 'throttled_until') or '')
if until_ms and until_ms > clock then
  redis.call('HINCRBY', base .. 'counts', 'throttled_claims', 1)
  return redis.error_reply('THROTTLED ' .. (until_ms - clock) .. ' ' .. until_ms)
end
local max = tonumber(ARGV[3])
local rate_max = tonumber(ARGV[4] or '0') or 0
local rate_per = tonumber(ARGV[5] or '0') or 0
local max_active = tonumber(ARGV[6] or '0') or 0
-- Nothing to start: no limit to check (an instance waiting at max_active
-- looks often, and must not walk :running for nothing). An unlimited
-- claim finds the same by its first RPOP.
if (rate_max > 0 or max_active > 0) and redis.call('LLEN', base .. 'pending') == 0 then
  return ''
end
local starts, running = base .. 'starts', base .. 'running'
if max_active > 0 then
  local n = 0
  for _, id in ipairs(redis.call('ZRANGE', running, 0, -1)) do
    if redis.call('ZSCORE', base .. 'active', id) then n = n + 1 else redis.call('ZREM', running, id) end
  end
  if n >= max_active then
    redis.call('HINCRBY', base .. 'counts', 'active_limited', 1)
    return redis.error_reply('LIMITED active')
  end
  max = math.min(max, max_active - n)
end
if rate_max > 0 then
  redis.call('ZREMRANGEBYSCORE', starts, '-inf', clock - rate_per)
  local n = redis.call('ZCARD', starts)
  if n >= rate_max then
    local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
    redis.call('HINCRBY', base .. 'counts', 'rate_limited', 1)
    return redis.error_reply('LIMITED rate ' .. math.max(1, tonumber(oldest[2]) + rate_per - clock + 1))
  end
  max = math.min(max, rate_max - n)
end
local out = {}
claim_pending(base, ARGV[1], ARGV[2], max, out)
if rate_max > 0 or max_active > 0 then
  for i = 1, #out, 8 do
    -- A job whose outcome was recorded has only its file to move: no start.
    if out[i + 6] == '' then
      -- A start of its own in the log, however often the job ran before.
      if rate_max > 0 then
        redis.call('ZADD', starts, clock, out[i] .. ':' .. redis.call('HINCRBY', base .. 'counts', 'starts', 1))
        -- Never shortened: an instance with a shorter `per` must not drop
        -- starts another one still counts.
        if redis.call('PTTL', starts) < rate_per + 1000 then
          redis.call('PEXPIRE', starts, rate_per + 1000)
        end
      end
      if max_active > 0 then redis.call('ZADD', running, clock, out[i]) end
    end
  end
end
return packed_jobs(out)
