-- ARGV: now_ms, instance, max_claim, then (id, name, ident) per file; ident
-- is "inode:size:mtime_ns". Makes the new files jobs and, with max_claim > 0,
-- claims up to that many jobs in the same call: first from the front of
-- :pending (claim_pending() in lib.lua), then, once :pending is empty, the
-- new files themselves, which go straight to active. Nothing is claimed
-- while the queue is paused. Returns {flags, paused, jobs}: one flag per
-- file ('1' a new job, '0' already known), 1 if the queue is paused (0
-- otherwise, or when max_claim is 0), the claimed jobs packed (lib.lua).
--
-- A new job left in :pending gets no record: its :files entry is
-- "<id> <ident>" and its :pending entry "<id> <name>", and the claim that
-- takes it creates the record (layout 2, docs/redis-keys.md). A name is
-- deduplicated by its file, not its text, before anything is claimed:
--   * no entry, or a stale one              -> a new job
--   * "~ident" (handled and kept)           -> a new job only if the identity changed
--   * a job never claimed, same inode       -> the same file: its identity is updated,
--                                              so the run (claimed by this call or a later
--                                              one) takes the latest content
--   * a job with a record, same inode,      -> likewise, in the record
--     still pending
--   * any other live job                    -> a new job: a claimed job's file changed
--                                              (a new version), or another inode took
--                                              the name (the old job ends as a
--                                              `replaced` skip when its turn comes)
local base = KEYS[1]
local now, inst, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local bad
if max > 0 then
  bad = check_types(base, {'files', 'pending', 'active', 'failed', 'counts'})
else
  bad = check_types(base, {'files', 'pending', 'counts'})
end
if bad then return bad end
local files, pending = base .. 'files', base .. 'pending'
local paused = 0
if max > 0 and redis.call('EXISTS', base .. 'paused') == 1 then
  paused, max = 1, 0  -- `dropqctl pause`: nothing is claimed
end
if max > 0 and redis.call('EXISTS', base .. 'throttled_until') == 1 then
  max = 0  -- a server asked to wait: CLAIM says until when
end
local function inode(ident) return string.match(ident or '', '^(%d+):') end
-- First every file is told apart from what the name holds (the dedup), so a
-- pending job whose file was rewritten takes the new identity before it is
-- claimed; new jobs are collected, not yet written.
local news = {}   -- {id, name, ident} of each new job, in order
local fresh = {}  -- name -> its entry in news (a name twice in one call)
local out = {}
for i = 4, #ARGV, 3 do
  local id, name, ident = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local mine = fresh[name]
  local cur
  if mine then cur = mine[1] .. ' ' .. mine[3] else cur = redis.call('HGET', files, name) end
  local take = false
  if not cur then
    take = true
  elseif string.sub(cur, 1, 1) == '~' then
    take = (cur ~= '~' .. ident)
  else
    local cur_id, cur_ident = split_entry(cur)
    if cur_ident then  -- never claimed
      if not mine and redis.call('EXISTS', base .. 'job:' .. cur_id) == 1 then
        take = true  -- stale: CLAIM makes the record and the entry "<id>" at once
      elseif cur_ident ~= ident then
        if inode(cur_ident) == inode(ident) then
          if mine then mine[3] = ident else redis.call('HSET', files, name, cur_id .. ' ' .. ident) end
        else
          take = true
        end
      end
    else
      local key = base .. 'job:' .. cur_id
      local f = hmget(key, 'ident', 'state', 'name')
      if not f[2] or f[3] ~= name then  -- gone, or not a record of this name
        take = true
      elseif f[1] ~= ident then
        if inode(f[1]) == inode(ident) and f[2] == 'pending' then
          redis.call('HSET', key, 'ident', ident)
          redis.call('HDEL', key, 'size')  -- layout 1's, now in the ident
        else
          take = true
        end
      end
    end
  end
  if take then
    news[#news + 1] = {id, name, ident}
    fresh[name] = news[#news]
  end
  out[#out + 1] = take and '1' or '0'
end
-- Then the claim: jobs that waited in :pending go first; room left over goes
-- to the new files, which become active at once with their record made as
-- CLAIM makes it. The rest wait in :pending as jobs never claimed.
local jobs = {}
local room = max
if room > 0 then room = room - claim_pending(base, now, inst, max, jobs) end
for _, j in ipairs(news) do
  local id, name, ident = j[1], j[2], j[3]
  if room > 0 then
    redis.call('HSET', base .. 'job:' .. id, 'name', name, 'ident', ident, 'state', 'active',
               'owner', inst, 'claimed', now)
    redis.call('HSET', files, name, id)
    redis.call('ZADD', base .. 'active', now, id)
    put_job(jobs, id, name, ident, '0', '0', '0', '', '')
    room = room - 1
  else
    redis.call('HSET', files, name, id .. ' ' .. ident)
    redis.call('LPUSH', pending, id .. ' ' .. name)
  end
end
if #news > 0 then redis.call('HINCRBY', base .. 'counts', 'enqueued', #news) end
return {flags(out), paused, packed_jobs(jobs)}
