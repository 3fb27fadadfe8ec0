-- ARGV: (id, name, ident) per file; ident is "inode:size:mtime_ns". Returns
-- one integer per file: 1 enqueued, 0 already known.
--
-- A new job gets no record: its :files entry is "<id> <ident>" and its
-- :pending entry "<id> <name>", and CLAIM creates the record (layout 2,
-- docs/redis-keys.md). A name is deduplicated by its file, not its text:
--   * no entry, or a stale one              -> a new job
--   * "~ident" (handled and kept)           -> a new job only if the identity changed
--   * a job never claimed, same inode       -> the same file: its identity is updated,
--                                              so the run takes the latest content
--   * a job with a record, same inode,      -> likewise, in the record
--     still pending
--   * any other live job                    -> a new job: a claimed job's file changed
--                                              (a new version), or another inode took
--                                              the name (the old job ends as a
--                                              `replaced` skip when its turn comes)
local base = KEYS[1]
local bad = check_types(base, {'files', 'pending', 'counts'})
if bad then return bad end
local files, pending = base .. 'files', base .. 'pending'
local function inode(ident) return string.match(ident or '', '^(%d+):') end
local out = {}
local n = 0
for i = 1, #ARGV, 3 do
  local id, name, ident = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call('HGET', files, name)
  local take = false
  if not cur then
    take = true
  elseif string.sub(cur, 1, 1) == '~' then
    take = (cur ~= '~' .. ident)
  else
    local cur_id, cur_ident = split_entry(cur)
    if cur_ident then  -- never claimed
      if redis.call('EXISTS', base .. 'job:' .. cur_id) == 1 then
        take = true  -- stale: CLAIM makes the record and the entry "<id>" at once
      elseif cur_ident ~= ident then
        if inode(cur_ident) == inode(ident) then
          redis.call('HSET', files, name, cur_id .. ' ' .. ident)
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
    redis.call('HSET', files, name, id .. ' ' .. ident)
    redis.call('LPUSH', pending, id .. ' ' .. name)
    n = n + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if n > 0 then redis.call('HINCRBY', base .. 'counts', 'enqueued', n) end
return out
