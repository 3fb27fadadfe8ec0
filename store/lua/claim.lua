-- ARGV: now_ms, instance, max. Returns (id, name, ident, attempt, failures,
-- tempfails, recorded, pident) per claimed job; `recorded` is the state
-- ('done' | 'failed') of an outcome recorded before its holder died, whose
-- disposition is all that is left to do ('' otherwise), `pident` the
-- identity of the file that run processed.
local base = KEYS[1]
local bad = check_types(base, {'pending', 'active', 'failed', 'files', 'stats'})
if bad then return bad end
if redis.call('EXISTS', base .. 'paused') == 1 then
  -- `dropqctl pause`: every instance stops starting jobs, none is claimed.
  return redis.error_reply('PAUSED ' .. base .. 'paused is set (dropqctl resume)')
end
local now, inst, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local pending, active = base .. 'pending', base .. 'active'
local out = {}
local stale, corrupt = 0, 0
while #out < max * 8 do
  local id = redis.call('RPOP', pending)
  if not id then break end
  local key = base .. 'job:' .. id
  local f = hmget(key, 'name', 'ident', 'attempt', 'state', 'failures', 'tempfails',
                 'phase', 'outcome', 'pident')
  if #id == 0 or #id > 64 or string.find(id, '[/%z]') or string.sub(id, 1, 1) == '.' then
    -- Not a usable id (it becomes a directory name; a leading dot is
    -- the processing area's own, see workers/spare_dirs.h): pushed by hand.
    corrupt = corrupt + 1
    for _, v in ipairs({id, '', '', '0', '0', '0', 'corrupt', ''}) do out[#out + 1] = v end
  elseif (f[4] == 'pending' and not f[1]) or (not f[4] and redis.call('EXISTS', key) == 1) then
    -- A record edited by hand into something unusable (no name, not a
    -- hash): failed where an operator sees it, and reported to the caller.
    if redis.call('TYPE', key)['ok'] == 'hash' then
      local why = f[4] and 'no name' or 'no state'
      redis.call('HSET', key, 'state', 'failed', 'error', 'corrupt job record: ' .. why)
      redis.call('ZADD', base .. 'failed', now, id)
    end
    if f[1] and redis.call('HGET', base .. 'files', f[1]) == id then
      redis.call('HDEL', base .. 'files', f[1])  -- its file may get a job of its own
    end
    corrupt = corrupt + 1
    for _, v in ipairs({id, '', '', '0', '0', '0', 'corrupt', ''}) do out[#out + 1] = v end
  elseif f[1] and f[4] == 'pending' then
    redis.call('HSET', key, 'state', 'active', 'owner', inst, 'claimed', now)
    redis.call('ZADD', active, now, id)
    local recorded = ''
    if f[7] == 'disposing' and (f[8] == 'done' or f[8] == 'failed') then recorded = f[8] end
    out[#out + 1] = id
    out[#out + 1] = f[1]
    out[#out + 1] = f[2] or ''
    out[#out + 1] = f[3] or '0'
    out[#out + 1] = f[5] or '0'
    out[#out + 1] = f[6] or '0'
    out[#out + 1] = recorded
    out[#out + 1] = f[9] or ''
  else
    stale = stale + 1
  end
end
if stale > 0 then redis.call('HINCRBY', base .. 'stats', 'stale_pending', stale) end
if corrupt > 0 then redis.call('HINCRBY', base .. 'stats', 'corrupt', corrupt) end
return out
