-- ARGV: now_ms, max. Moves up to `max` due scheduled jobs (retries) to the
-- front of pending. Returns {moved, next due time in unix ms or -1}.
local base = KEYS[1]
local bad = check_types(base, {'scheduled', 'pending'})
if bad then return bad end
local sched = base .. 'scheduled'
local ids = redis.call('ZRANGEBYSCORE', sched, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local key = base .. 'job:' .. id
  redis.call('ZREM', sched, id)
  if hmget(key, 'state')[1] == 'scheduled' then
    redis.call('HSET', key, 'state', 'pending')
    redis.call('HDEL', key, 'due')
    redis.call('RPUSH', base .. 'pending', id)
  end
end
local nxt = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
return {#ids, nxt[2] or '-1'}
