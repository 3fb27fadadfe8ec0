-- ARGV: instance, now_ms, then (id, attempt) per job.
local bad = check_layout(KEYS[1])
if bad then return bad end
local base = KEYS[1]
local inst, now = ARGV[1], ARGV[2]
for i = 3, #ARGV, 2 do
  local key = base .. 'job:' .. ARGV[i]
  local f = hmget(key, 'owner', 'state')
  if f[1] == inst and f[2] == 'active' then
    redis.call('HSET', key, 'attempt', ARGV[i + 1], 'started', now)
  end
end
return 0
