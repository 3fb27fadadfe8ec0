-- ARGV: instance, then (id, nfields, field, value, ...) per job.
-- Records an outcome before the file moves: phase=disposing plus the fields.
-- Returns a flag per job (lib.lua): '1' recorded, '0' not this instance's.
local bad = check_types(KEYS[1], {'running'})
if bad then return bad end
local base = KEYS[1]
-- Writes job records alone, each read through hmget() first.
local inst = ARGV[1]
local out = {}
local i = 2
while i <= #ARGV do
  local id, nf = ARGV[i], tonumber(ARGV[i + 1])
  local key = base .. 'job:' .. id
  local f = hmget(key, 'owner', 'state')
  if f[1] == inst and f[2] == 'active' then
    local kv = {'phase', 'disposing'}
    for k = 0, 2 * nf - 1 do kv[#kv + 1] = ARGV[i + 2 + k] end
    redis.call('HSET', key, unpack(kv))
    -- Its run is over: no longer one of max_active (claim.lua).
    leave_running(base, id)
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
  i = i + 2 + 2 * nf
end
announce_freed(base)
return flags(out)
