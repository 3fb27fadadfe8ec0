-- ARGV: state ('done' | 'failed'), time (unix ms), limit [, id...]. Deletes
-- the records of up to `limit` jobs of that state that finished at or before
-- the time, oldest first; given ids, only those of them (a filter's matches).
-- Returns how many left the set.
local base = KEYS[1]
local state, before, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
if state ~= 'done' and state ~= 'failed' then
  return redis.error_reply('ERR state must be done or failed')
end
local bad = check_types(base, {state, 'counts'})
if bad then return bad end
local set = base .. state
local ids
if #ARGV > 3 then
  ids = {}
  for i = 4, math.min(#ARGV, 3 + limit) do
    local score = redis.call('ZSCORE', set, ARGV[i])
    if score and tonumber(score) <= tonumber(before) then ids[#ids + 1] = ARGV[i] end
  end
else
  ids = redis.call('ZRANGEBYSCORE', set, '-inf', before, 'LIMIT', 0, limit)
end
for _, id in ipairs(ids) do
  local key = base .. 'job:' .. id
  -- A record that moved on meanwhile (retried) keeps its record.
  if hmget(key, 'state')[1] == state then redis.call('DEL', key) end
  redis.call('ZREM', set, id)
end
if #ids > 0 then redis.call('HINCRBY', base .. 'counts', 'purged_' .. state, #ids) end
return #ids
