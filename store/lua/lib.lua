-- lib.lua: prepended to every script (store/scripts.cc). Redis reports an
-- error in a script at "user_script:<line>" of the two joined; dropq names
-- the file and line instead (DescribeScriptError()).
--
-- Keys in dropq's namespace may have been edited by hand: check_types() refuses to start on a queue
-- key of the wrong type (before any write, so a refused call changes
-- nothing), and hmget() reads a job record that is not a hash as missing.
-- Each script checks the queue keys it may write, and no others: a TYPE is
-- a command of its own, and these run for every batch of jobs.
local key_types = {pending = 'list', active = 'zset', done = 'zset', failed = 'zset',
                   scheduled = 'zset', files = 'hash', stats = 'hash'}
local function check_types(base, keys)
  for _, k in ipairs(keys) do
    local t = key_types[k]
    local got = redis.call('TYPE', base .. k)['ok']
    if got ~= 'none' and got ~= t then
      return redis.error_reply('WRONGTYPE ' .. base .. k .. ' is a ' .. got .. ', not a ' .. t)
    end
  end
  return nil
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
