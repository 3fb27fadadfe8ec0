-- ARGV: now_ms, instance, max. Returns (id, name, ident, attempt, failures,
-- tempfails, recorded, pident) per claimed job; `recorded` is the state
-- ('done' | 'failed') of an outcome recorded before its holder died, whose
-- disposition is all that is left to do ('' otherwise), `pident` the
-- identity of the file that run processed.
--
-- A :pending entry is "<id> <name>" for a job never claimed (its identity is
-- in its :files entry; its record is created here) or "<id>" for a job with
-- a record (retried, released, requeued, or enqueued by layout 1).
local base = KEYS[1]
local bad = check_types(base, {'pending', 'active', 'failed', 'files', 'counts'})
if bad then return bad end
if redis.call('EXISTS', base .. 'paused') == 1 then
  -- `dropqctl pause`: every instance stops starting jobs, none is claimed.
  return redis.error_reply('PAUSED ' .. base .. 'paused is set (dropqctl resume)')
end
local now, inst, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local pending, active, files = base .. 'pending', base .. 'active', base .. 'files'
local out = {}
local stale, corrupt, replaced = 0, 0, 0
local function bad_id(id)
  -- Not a usable id (it becomes a file or directory name; a leading dot is
  -- the processing area's own, see workers/spare_dirs.h): pushed by hand.
  return #id == 0 or #id > 64 or string.find(id, '[/%z]') or string.sub(id, 1, 1) == '.'
end
local function put(...)
  for _, v in ipairs({...}) do out[#out + 1] = v end
end
while #out < max * 8 do
  local entry = redis.call('RPOP', pending)
  if not entry then break end
  local id, name = split_entry(entry)
  local key = base .. 'job:' .. id
  if bad_id(id) then
    corrupt = corrupt + 1
    put(id, '', '', '0', '0', '0', 'corrupt', '')
  elseif name then
    -- Never claimed: it is this name's job while the name's entry is its own.
    local cur_id, ident = split_entry(redis.call('HGET', files, name) or '')
    if cur_id == id and ident then
      redis.call('HSET', key, 'name', name, 'ident', ident, 'state', 'active', 'owner', inst,
                 'claimed', now)
      redis.call('HSET', files, name, id)
      redis.call('ZADD', active, now, id)
      put(id, name, ident, '0', '0', '0', '', '')
    elseif cur_id ~= '' and cur_id ~= id then
      replaced = replaced + 1  -- another file took the name meanwhile: it has a job of its own
    else
      stale = stale + 1
    end
  else
    local f = hmget(key, 'name', 'ident', 'attempt', 'state', 'failures', 'tempfails',
                   'phase', 'outcome', 'pident')
    if (f[4] == 'pending' and not f[1]) or (not f[4] and redis.call('EXISTS', key) == 1) then
      -- A record edited by hand into something unusable (no name, not a
      -- hash): failed where an operator sees it, and reported to the caller.
      if redis.call('TYPE', key)['ok'] == 'hash' then
        local why = f[4] and 'no name' or 'no state'
        redis.call('HSET', key, 'state', 'failed', 'error', 'corrupt job record: ' .. why)
        redis.call('ZADD', base .. 'failed', now, id)
      end
      if f[1] and redis.call('HGET', files, f[1]) == id then
        redis.call('HDEL', files, f[1])  -- its file may get a job of its own
      end
      corrupt = corrupt + 1
      put(id, '', '', '0', '0', '0', 'corrupt', '')
    elseif f[1] and f[4] == 'pending' then
      redis.call('HSET', key, 'state', 'active', 'owner', inst, 'claimed', now)
      redis.call('ZADD', active, now, id)
      local recorded = ''
      if f[7] == 'disposing' and (f[8] == 'done' or f[8] == 'failed') then recorded = f[8] end
      put(id, f[1], f[2] or '', f[3] or '0', f[5] or '0', f[6] or '0', recorded, f[9] or '')
    else
      stale = stale + 1
    end
  end
end
if stale > 0 then redis.call('HINCRBY', base .. 'counts', 'stale_pending', stale) end
if corrupt > 0 then redis.call('HINCRBY', base .. 'counts', 'corrupt', corrupt) end
if replaced > 0 then redis.call('HINCRBY', base .. 'counts', 'replaced', replaced) end
return out
