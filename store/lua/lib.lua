-- lib.lua: prepended to every script (store/scripts.cc). Redis reports an
-- error in a script at "user_script:<line>" of the two joined; dropq names
-- the file and line instead (DescribeScriptError()).
--
-- The layout of a queue's keys is versioned: <base>layout holds it, and
-- every script refuses (an error starting "LAYOUT", before any write) on a
-- queue of another layout. UPGRADE (upgrade.lua) moves a queue of the
-- previous layout to this one. docs/redis-keys.md describes layout 2.
local LAYOUT = '2'
local function check_layout(base)
  local r = redis.pcall('GET', base .. 'layout')
  if r == LAYOUT then return nil end
  local got = 'missing'
  if type(r) == 'string' then got = '"' .. r .. '"' elseif type(r) == 'table' and r['err'] then got = 'not a string' end
  return redis.error_reply('LAYOUT ' .. base .. 'layout is ' .. got .. ', this dropq reads layout ' .. LAYOUT)
end

-- Keys in dropq's namespace may have been edited by hand: check_types() refuses to start on a queue
-- key of the wrong type (before any write, so a refused call changes
-- nothing), and hmget() reads a job record that is not a hash as missing.
-- Each script checks the queue keys it may write, and no others: a TYPE is
-- a command of its own, and these run for every batch of jobs. It checks
-- the layout first.
local key_types = {pending = 'list', active = 'zset', done = 'zset', failed = 'zset',
                   scheduled = 'zset', files = 'hash', counts = 'hash', starts = 'zset',
                   running = 'zset'}
-- present[k]: whether queue key k existed when check_types() looked.
local present = {}
local function check_types(base, keys)
  local bad = check_layout(base)
  if bad then return bad end
  for _, k in ipairs(keys) do
    local t = key_types[k]
    local got = redis.call('TYPE', base .. k)['ok']
    present[k] = got ~= 'none'
    if got ~= 'none' and got ~= t then
      return redis.error_reply('WRONGTYPE ' .. base .. k .. ' is a ' .. got .. ', not a ' .. t)
    end
  end
  return nil
end
-- Splits an entry of :pending or :files at its first space: a job never
-- claimed has no record, and carries what it needs in its entries
-- ("<id> <name>" in :pending, "<id> <ident>" in :files). Returns the id and
-- the rest, or the whole and nil.
local function split_entry(s)
  local sp = string.find(s, ' ', 1, true)
  if not sp then return s, nil end
  return string.sub(s, 1, sp - 1), string.sub(s, sp + 1)
end
local function hmget(key, ...)
  local r = redis.pcall('HMGET', key, ...)
  if r['err'] then return {} end
  return r
end

-- A job's run is over: it no longer counts against max_active (claim.lua).
-- Only a queue with max_active has :running, and the caller's check_types()
-- saw whether it exists: no command per job for the others. A script that
-- calls it ends with announce_freed().
local freed = 0
local function leave_running(base, id)
  if present.running then freed = freed + redis.call('ZREM', base .. 'running', id) end
end
-- Tells every instance held back by max_active that slots are free: one
-- PUBLISH on <base>freed per call that freed any (its message: how many).
-- A refused PUBLISH (an ACL user without channel access) must not fail the
-- call after its writes: the notice is lost, and the 1 s look covers it.
local function announce_freed(base)
  if freed > 0 then redis.pcall('PUBLISH', base .. 'freed', freed) end
end

-- For the scripts that give active jobs back (RELEASE, REQUEUE): moves one own active
-- job to the front of pending (the attempt count stays), marking it
-- interrupted if its run was cut short. A job whose outcome was recorded
-- (phase=disposing) keeps it: its run was complete, and whoever claims it
-- next redoes only the disposition. Returns 1 if it was interrupted.
local function to_pending(base, key, id, interrupted)
  redis.call('HSET', key, 'state', 'pending')
  local rec = hmget(key, 'phase', 'outcome')
  if rec[1] == 'disposing' and (rec[2] == 'done' or rec[2] == 'failed') then
    interrupted = false
    redis.call('HDEL', key, 'owner', 'claimed')
  else
    redis.call('HDEL', key, 'owner', 'claimed', 'phase')
  end
  redis.call('ZREM', base .. 'active', id)
  leave_running(base, id)
  redis.call('RPUSH', base .. 'pending', id)
  if interrupted then
    redis.call('HINCRBY', key, 'interrupted', 1)
    redis.call('HSET', key, 'result', 'interrupted')
    return 1
  end
  return 0
end

-- Replies are packed (store/protocol.h): a flag per job is one character of
-- one string ('1' taken, '0' left alone), and the jobs a claim hands over
-- are one string of fields, each ended by a NUL byte (no name, identity or
-- id holds one), 8 fields per job: id, name, ident, attempt, failures,
-- tempfails, recorded, pident. `recorded` is the state ('done' | 'failed')
-- of an outcome recorded before its holder died, whose disposition is all
-- that is left to do ('' otherwise; 'corrupt' for a record set aside),
-- `pident` the identity of the file that run processed.
local function flags(out) return table.concat(out) end
local function put_job(out, id, name, ident, attempt, failures, tempfails, recorded, pident)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, name, ident, attempt
  out[n + 5], out[n + 6], out[n + 7], out[n + 8] = failures, tempfails, recorded, pident
end
local function packed_jobs(out)
  if #out == 0 then return '' end
  return table.concat(out, '\0') .. '\0'
end

-- CLAIM's work, shared with ENQUEUE: takes up to `max` jobs from the front of
-- :pending, makes them active under `inst` and appends them to `out`
-- (put_job). A :pending entry is "<id> <name>" for a job never claimed (its
-- identity is in its :files entry; its record is created here) or "<id>" for
-- a job with a record (retried, released, requeued, or enqueued by layout
-- 1). The caller has checked the types of pending, active, failed, files and
-- counts. Returns how many jobs it appended (those set aside as corrupt
-- included; stale and replaced entries are dropped and not counted).
local function claim_pending(base, now, inst, max, out)
  local pending, active, files = base .. 'pending', base .. 'active', base .. 'files'
  local stale, corrupt, replaced, claimed = 0, 0, 0, 0
  -- A field packed into the reply must hold no NUL byte (packed_jobs()).
  local function has_nul(...)
    for _, v in ipairs({...}) do
      if v and string.find(v, '%z') then return true end
    end
    return false
  end
  local function set_aside(id)
    corrupt = corrupt + 1
    claimed = claimed + 1
    put_job(out, (string.gsub(id, '%z', '?')), '', '', '0', '0', '0', 'corrupt', '')
  end
  local function bad_id(id)
    -- Not a usable id (it becomes a file or directory name; a leading dot is
    -- the processing area's own, see workers/spare_dirs.h): pushed by hand.
    return #id == 0 or #id > 64 or string.find(id, '[/%z]') or string.sub(id, 1, 1) == '.'
  end
  while claimed < max do
    local entry = redis.call('RPOP', pending)
    if not entry then break end
    local id, name = split_entry(entry)
    local key = base .. 'job:' .. id
    if bad_id(id) then
      set_aside(id)
    elseif name then
      -- Never claimed: it is this name's job while the name's entry is its own.
      local cur_id, ident = split_entry(redis.call('HGET', files, name) or '')
      if cur_id == id and ident and has_nul(name, ident) then
        set_aside(id)  -- edited by hand: dropped, its name left to a job of its own
      elseif cur_id == id and ident then
        redis.call('HSET', key, 'name', name, 'ident', ident, 'state', 'active', 'owner', inst,
                   'claimed', now)
        redis.call('HSET', files, name, id)
        redis.call('ZADD', active, now, id)
        claimed = claimed + 1
        put_job(out, id, name, ident, '0', '0', '0', '', '')
      elseif cur_id ~= '' and cur_id ~= id then
        replaced = replaced + 1  -- another file took the name meanwhile: it has a job of its own
      else
        stale = stale + 1
      end
    else
      local f = hmget(key, 'name', 'ident', 'attempt', 'state', 'failures', 'tempfails',
                     'phase', 'outcome', 'pident')
      local nul = f[4] == 'pending' and has_nul(f[1], f[2], f[9])
      if (f[4] == 'pending' and (not f[1] or nul)) or
         (not f[4] and redis.call('EXISTS', key) == 1) then
        -- A record edited by hand into something unusable (no name, a NUL
        -- byte, not a hash): failed where an operator sees it, and reported
        -- to the caller.
        if redis.call('TYPE', key)['ok'] == 'hash' then
          local why = not f[4] and 'no state' or nul and 'a NUL byte' or 'no name'
          redis.call('HSET', key, 'state', 'failed', 'error', 'corrupt job record: ' .. why)
          redis.call('ZADD', base .. 'failed', now, id)
        end
        if f[1] and redis.call('HGET', files, f[1]) == id then
          redis.call('HDEL', files, f[1])  -- its file may get a job of its own
        end
        set_aside(id)
      elseif f[1] and f[4] == 'pending' then
        redis.call('HSET', key, 'state', 'active', 'owner', inst, 'claimed', now)
        redis.call('ZADD', active, now, id)
        local recorded = ''
        if f[7] == 'disposing' and (f[8] == 'done' or f[8] == 'failed') then recorded = f[8] end
        claimed = claimed + 1
        put_job(out, id, f[1], f[2] or '', f[3] or '0', f[5] or '0', f[6] or '0', recorded,
                f[9] or '')
      else
        stale = stale + 1
      end
    end
  end
  if stale > 0 then redis.call('HINCRBY', base .. 'counts', 'stale_pending', stale) end
  if corrupt > 0 then redis.call('HINCRBY', base .. 'counts', 'corrupt', corrupt) end
  if replaced > 0 then redis.call('HINCRBY', base .. 'counts', 'replaced', replaced) end
  return claimed
end
