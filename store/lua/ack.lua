-- ARGV: instance, now_ms, keep_done, keep_failed (-1: all), then per job
--   (id, state 'done'|'failed'|'scheduled', files value ('' = remove),
--    nfields, field, value, ...).
-- A scheduled job (a retry) waits in :scheduled until its `due` field's time
-- and keeps its name in :files. Returns a flag per job (lib.lua): '1'
-- acknowledged, '0' for a job this instance does not own.
local base = KEYS[1]
local bad = check_types(base, {'active', 'done', 'failed', 'scheduled', 'files', 'counts',
                               'running'})
if bad then return bad end
local inst, now, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local keep_failed = tonumber(ARGV[4])
local files = base .. 'files'
local out = {}
local ndone, nfailed, nsched = 0, 0, 0
local i = 5
while i <= #ARGV do
  local id, state, fv, nf = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local key = base .. 'job:' .. id
  local f = hmget(key, 'owner', 'state', 'name', 'phase', 'outcome')
  if f[1] == inst and f[2] == 'active' then
    local kv = {'state', state, 'finished', now}
    local result, due = '', now
    for k = 0, 2 * nf - 1 do kv[#kv + 1] = ARGV[i + 4 + k] end
    for k = 0, nf - 1 do
      local name, value = ARGV[i + 4 + 2 * k], ARGV[i + 5 + 2 * k]
      if name == 'result' then result = value end
      if name == 'due' then due = value end
    end
    redis.call('HSET', key, unpack(kv))
    if f[4] or f[5] then redis.call('HDEL', key, 'phase', 'outcome', 'pident') end  -- RECORD's
    redis.call('ZREM', base .. 'active', id)
    leave_running(base, id)
    if state == 'scheduled' then
      redis.call('HDEL', key, 'owner', 'claimed')
      redis.call('ZADD', base .. 'scheduled', due, id)
    else
      redis.call('ZADD', base .. state, now, id)
      if f[3] and redis.call('HGET', files, f[3]) == id then
        if fv == '' then redis.call('HDEL', files, f[3]) else redis.call('HSET', files, f[3], fv) end
      end
    end
    if state == 'scheduled' then
      nsched = nsched + 1
    elseif result == 'vanished' or result == 'replaced' then
      redis.call('HINCRBY', base .. 'counts', result, 1)  -- a skip, not a run
    elseif state == 'done' then
      ndone = ndone + 1
    else
      nfailed = nfailed + 1
    end
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
  i = i + 4 + 2 * nf
end
if nfailed > 0 then redis.call('HINCRBY', base .. 'counts', 'failed', nfailed) end
if ndone > 0 then redis.call('HINCRBY', base .. 'counts', 'done', ndone) end
if nsched > 0 then redis.call('HINCRBY', base .. 'counts', 'retries', nsched) end
if nfailed > 0 and keep_failed >= 0 then
  -- Only when configured (keep_failed), and counted: never silently.
  local failed = base .. 'failed'
  local over = redis.call('ZCARD', failed) - keep_failed
  if over > 0 then
    local old = redis.call('ZRANGE', failed, 0, over - 1)
    for _, oid in ipairs(old) do redis.call('DEL', base .. 'job:' .. oid) end
    redis.call('ZREMRANGEBYRANK', failed, 0, over - 1)
    redis.call('HINCRBY', base .. 'counts', 'failed_trimmed', over)
  end
end
local done = base .. 'done'
local excess = redis.call('ZCARD', done) - keep
if excess > 0 then
  local old = redis.call('ZRANGE', done, 0, excess - 1)
  for _, oid in ipairs(old) do redis.call('DEL', base .. 'job:' .. oid) end
  redis.call('ZREMRANGEBYRANK', done, 0, excess - 1)
end
announce_freed(base)
return flags(out)
