-- ARGV: now_ms, then (id, name, ident, size) per file; ident is
-- "inode:size:mtime_ns". Returns one integer per file: 1 enqueued, 0 already
-- known. A name is deduplicated by its file, not its text:
--   * no entry, or a stale one              -> a new job
--   * "~ident" (handled and kept)           -> a new job only if the identity changed
--   * a live job for the same inode         -> the same file: no new job; while the job
--                                              is pending its identity is updated, so
--                                              the run takes the latest content; once
--                                              claimed, a changed file is a new version
--                                              and gets a job of its own
--   * a live job for another inode          -> a replacement: a new job (the old one
--                                              ends as `replaced` when its worker looks)
local base = KEYS[1]
local bad = check_types(base, {'files', 'pending', 'stats'})
if bad then return bad end
local now = ARGV[1]
local files = base .. 'files'
local out = {}
local n = 0
for i = 2, #ARGV, 4 do
  local id, name, ident = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call('HGET', files, name)
  local take = false
  if not cur then
    take = true
  elseif string.sub(cur, 1, 1) == '~' then
    take = (cur ~= '~' .. ident)
  else
    local key = base .. 'job:' .. cur
    local f = hmget(key, 'ident', 'state', 'name')
    if not f[2] or f[3] ~= name then  -- gone, or not a record of this name
      take = true
    elseif f[1] ~= ident then
      local same_inode = string.match(f[1] or '', '^(%d+):') == string.match(ident, '^(%d+):')
      if same_inode and f[2] == 'pending' then
        redis.call('HSET', key, 'ident', ident, 'size', ARGV[i + 3])
      else
        take = true
      end
    end
  end
  if take then
    redis.call('HSET', base .. 'job:' .. id, 'name', name, 'size', ARGV[i + 3],
               'ident', ident, 'state', 'pending', 'enq', now)
    redis.call('HSET', files, name, id)
    redis.call('LPUSH', base .. 'pending', id)
    n = n + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if n > 0 then redis.call('HINCRBY', base .. 'stats', 'enqueued', n) end
return out
