-- ARGV: id, now_ms. The file is back in place: the job goes to pending with
-- its attempts reset and its last result kept as last_result.
local bad = check_layout(KEYS[1])
if bad then return bad end
local base = KEYS[1]
local id, now = ARGV[1], ARGV[2]
local key = base .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'retrying' then
  return redis.error_reply('WRONGSTATE job is not being retried')
end
local last = redis.call('HGET', key, 'result')
if last then redis.call('HSET', key, 'last_result', last) end
redis.call('HDEL', key, 'owner', 'claimed', 'started', 'finished', 'phase', 'result', 'exit',
           'signal', 'error', 'stderr', 'sha256', 'ms', 'disposed_to', 'due', 'target',
           'outcome', 'pident', 'dispose_error', 'dispose_failures', 'http_status', 'response',
           'retry_error')
for _, f in ipairs(redis.call('HKEYS', key)) do
  if string.find(f, '^attempt%.') or string.find(f, '^stderr%.') or string.find(f, '^response%.') then
    redis.call('HDEL', key, f)
  end
end
redis.call('HSET', key, 'state', 'pending', 'attempt', 0, 'failures', 0, 'tempfails', 0,
           'enq', now)
redis.call('HINCRBY', key, 'retried', 1)
redis.call('ZREM', base .. 'failed', id)
redis.call('LPUSH', base .. 'pending', id)
redis.call('HINCRBY', base .. 'counts', 'retried', 1)
return 1
