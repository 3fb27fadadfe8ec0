-- ARGV: instance, then the ids this instance holds (in memory, running, or
-- with an outcome not yet acknowledged). Every other active job it owns goes
-- back to the front of pending, marked interrupted: its holder died or lost
-- it, possibly while its handler ran (the STARTED record is not waited for,
-- so its absence does not prove the handler never started). Returns the
-- requeued ids.
local base = KEYS[1]
local bad = check_types(base, {'active', 'pending', 'counts', 'running'})
if bad then return bad end
local inst = ARGV[1]
local held = {}
for i = 2, #ARGV do held[ARGV[i]] = true end
local out = {}
local ni = 0
for _, id in ipairs(redis.call('ZRANGE', base .. 'active', 0, -1)) do
  if not held[id] then
    local key = base .. 'job:' .. id
    local f = hmget(key, 'owner', 'state')
    if not f[2] then
      redis.call('ZREM', base .. 'active', id)
      leave_running(base, id)
    elseif f[1] == inst and f[2] == 'active' then
      ni = ni + to_pending(base, key, id, true)
      out[#out + 1] = id
    end
  end
end
if ni > 0 then redis.call('HINCRBY', base .. 'counts', 'interrupted', ni) end
announce_freed(base)
return out
