-- ARGV: id, files value ('' = remove). Undoes RETRY_PREPARE when the file
-- could not be put back.
local bad = check_layout(KEYS[1])
if bad then return bad end
local base = KEYS[1]
local id, fv = ARGV[1], ARGV[2]
local key = base .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'retrying' then return 0 end
redis.call('HSET', key, 'state', 'failed')
local name = redis.call('HGET', key, 'name')
if redis.call('HGET', base .. 'files', name) == id then
  if fv == '' then redis.call('HDEL', base .. 'files', name)
  else redis.call('HSET', base .. 'files', name, fv) end
end
return 1
