-- ARGV: job ids. Returns each one's state, '' for a job that does not exist.
local bad = check_layout(KEYS[1])
if bad then return bad end
local out = {}
for i = 1, #ARGV do
  out[i] = hmget(KEYS[1] .. 'job:' .. ARGV[i], 'state')[1] or ''
end
return out
