-- UPGRADE: brings a queue to this layout before anything else runs on it
-- (dropqd, at every (re)connect, before REQUEUE). Returns the layout; an
-- error starting "LAYOUT" for a queue of a layout this dropq does not know.
--
-- Layout 1 had no <base>layout key and kept its counters in <base>stats.
-- Its job records, :pending and :files entries are read as they are (a
-- record pending, an entry "<id>"), so only the counters move, in one call
-- of a few dozen fields: :stats becomes the string below, on which every
-- script of a layout 1 dropqd stops with WRONGTYPE before it writes.
local base = KEYS[1]
local cur = redis.pcall('GET', base .. 'layout')
if cur == LAYOUT then return tonumber(LAYOUT) end
if cur then return check_layout(base) end  -- another layout: refused as every script does
for _, k in ipairs({'counts', 'stats'}) do
  local t = redis.call('TYPE', base .. k)['ok']
  if t ~= 'none' and t ~= 'hash' and not (k == 'stats' and t == 'string') then
    return redis.error_reply('WRONGTYPE ' .. base .. k .. ' is a ' .. t .. ', not a hash')
  end
end
local stats, counts = base .. 'stats', base .. 'counts'
if redis.call('TYPE', stats)['ok'] == 'hash' then
  local kv = redis.call('HGETALL', stats)
  for i = 1, #kv, 2 do
    -- A counter edited into something that is not a number is kept as it was.
    local r = redis.pcall('HINCRBY', counts, kv[i], kv[i + 1])
    if type(r) == 'table' and r['err'] then
      redis.call('HSETNX', counts, kv[i], kv[i + 1])
    end
  end
  redis.call('DEL', stats)
end
redis.call('SET', stats, 'dropq Redis layout ' .. LAYOUT .. ': the counters are in ' .. counts ..
           '; a dropqd or dropqctl older than this layout stops at this key')
redis.call('SET', base .. 'layout', LAYOUT)
return tonumber(LAYOUT)
