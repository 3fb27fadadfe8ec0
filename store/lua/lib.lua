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
                   scheduled = 'zset', files = 'hash', counts = 'hash'}
local function check_types(base, keys)
  local bad = check_layout(base)
  if bad then return bad end
  for _, k in ipairs(keys) do
    local t = key_types[k]
    local got = redis.call('TYPE', base .. k)['ok']
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
  redis.call('RPUSH', base .. 'pending', id)
  if interrupted then
    redis.call('HINCRBY', key, 'interrupted', 1)
    redis.call('HSET', key, 'result', 'interrupted')
    return 1
  end
  return 0
end
