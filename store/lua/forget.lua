-- ARGV: names of files that left the watched directory. Drops their
-- "handled" markers; a live job's entry stays.
local bad = check_layout(KEYS[1])
if bad then return bad end
local files = KEYS[1] .. 'files'
local n = 0
for i = 1, #ARGV do
  local cur = redis.call('HGET', files, ARGV[i])
  if cur and string.sub(cur, 1, 1) == '~' then
    redis.call('HDEL', files, ARGV[i])
    n = n + 1
  end
end
return n
