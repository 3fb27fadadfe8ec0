-- ARGV: instance, then (id, error, failures) per job. Notes on the record why
-- the file of a job whose outcome is recorded could not be moved or deleted
-- (the disposition is tried again). Only a job this instance still owns,
-- active in its disposing phase, is written: a record that was deleted, or
-- taken over, stays as it is. Returns a flag per job (lib.lua): '1' written, '0' left alone.
local bad = check_layout(KEYS[1])
if bad then return bad end
local base = KEYS[1]
local inst = ARGV[1]
local out = {}
for i = 2, #ARGV, 3 do
  local key = base .. 'job:' .. ARGV[i]
  local f = hmget(key, 'owner', 'state', 'phase')
  if f[1] == inst and f[2] == 'active' and f[3] == 'disposing' then
    redis.call('HSET', key, 'dispose_error', ARGV[i + 1], 'dispose_failures', ARGV[i + 2])
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
end
return flags(out)
