-- ARGV: id. A failed (or half-retried) job becomes 'retrying' and takes its
-- name in :files, so the watcher does not make a second job when the file
-- comes back. Returns {name, disposed_to, ident, previous :files value} or
-- an error; RETRY_ABORT puts the previous value back.
local bad = check_layout(KEYS[1])
if bad then return bad end
local base = KEYS[1]
local id = ARGV[1]
local key = base .. 'job:' .. id
local f = redis.call('HMGET', key, 'state', 'name', 'disposed_to', 'ident')
if not f[1] then return redis.error_reply('NOTFOUND no such job') end
if f[1] ~= 'failed' and f[1] ~= 'retrying' then
  return redis.error_reply('WRONGSTATE job is ' .. f[1] .. ', not failed')
end
local cur = redis.call('HGET', base .. 'files', f[2])
local cur_id, never_claimed = split_entry(cur or '')
if cur and cur_id ~= id and string.sub(cur, 1, 1) ~= '~' and
   (never_claimed or redis.call('EXISTS', base .. 'job:' .. cur_id) == 1) then
  return redis.error_reply('BUSY job ' .. cur_id .. ' holds the name')
end
redis.call('HSET', key, 'state', 'retrying')
redis.call('HSET', base .. 'files', f[2], id)
return {f[2], f[3] or '', f[4] or '', cur or ''}
