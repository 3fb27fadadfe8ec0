-- ARGV: instance, then (id, interrupted '0'|'1') per job. Own active jobs go
-- back to the front of pending; the attempt count stays as it is.
local base = KEYS[1]
local bad = check_types(base, {'active', 'pending', 'counts', 'running'})
if bad then return bad end
local inst = ARGV[1]
local n, ni = 0, 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local key = base .. 'job:' .. id
  local f = hmget(key, 'owner', 'state')
  if f[1] == inst and f[2] == 'active' then
    ni = ni + to_pending(base, key, id, ARGV[i + 1] == '1')
    n = n + 1
  end
end
if ni > 0 then redis.call('HINCRBY', base .. 'counts', 'interrupted', ni) end
announce_freed(base)
return n
