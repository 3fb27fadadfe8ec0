#include "store/scripts.h"

#include <openssl/evp.h>

#include <initializer_list>

#include "common/escape.h"

namespace dropq {
namespace {

std::string Sha1Hex(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha1(), nullptr);
  return HexBytes(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

Script Make(std::string_view name, std::string_view body) {
  return Script{name, std::string(body), Sha1Hex(body)};
}

// Prepended to every script that changes jobs. Keys in dropq's namespace
// may have been edited by hand: check_types() refuses to start on a queue
// key of the wrong type (before any write, so a refused call changes
// nothing), and hmget() reads a job record that is not a hash as missing.
// Each script checks the queue keys it may write, and no others: a TYPE is
// a command of its own, and these run for every batch of jobs.
constexpr std::string_view kGuard = R"lua(
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
)lua";

// Prepended to the scripts that give active jobs back: moves one own active
// job to the front of pending (the attempt count stays), marking it
// interrupted if its run was cut short. A job whose outcome was recorded
// (phase=disposing) keeps it: its run was complete, and whoever claims it
// next redoes only the disposition. Returns 1 if it was interrupted.
constexpr std::string_view kToPending = R"lua(
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
)lua";

// ARGV: now_ms, then (id, name, ident, size) per file; ident is
// "inode:size:mtime_ns". Returns one integer per file: 1 enqueued, 0 already
// known. A name is deduplicated by its file, not its text:
//   * no entry, or a stale one              -> a new job
//   * "~ident" (handled and kept)           -> a new job only if the identity changed
//   * a live job for the same inode         -> the same file: no new job; while the job
//                                              is pending its identity is updated, so
//                                              the run takes the latest content; once
//                                              claimed, a changed file is a new version
//                                              and gets a job of its own
//   * a live job for another inode          -> a replacement: a new job (the old one
//                                              ends as `replaced` when its worker looks)
constexpr std::string_view kEnqueue = R"lua(
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
)lua";

// ARGV: now_ms, instance, max. Returns (id, name, ident, attempt, failures,
// tempfails, recorded, pident) per claimed job; `recorded` is the state
// ('done' | 'failed') of an outcome recorded before its holder died, whose
// disposition is all that is left to do ('' otherwise), `pident` the
// identity of the file that run processed.
constexpr std::string_view kClaim = R"lua(
local base = KEYS[1]
local bad = check_types(base, {'pending', 'active', 'failed', 'files', 'stats'})
if bad then return bad end
if redis.call('EXISTS', base .. 'paused') == 1 then
  -- `dropqctl pause`: every instance stops starting jobs, none is claimed.
  return redis.error_reply('PAUSED ' .. base .. 'paused is set (dropqctl resume)')
end
local now, inst, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local pending, active = base .. 'pending', base .. 'active'
local out = {}
local stale, corrupt = 0, 0
while #out < max * 8 do
  local id = redis.call('RPOP', pending)
  if not id then break end
  local key = base .. 'job:' .. id
  local f = hmget(key, 'name', 'ident', 'attempt', 'state', 'failures', 'tempfails',
                 'phase', 'outcome', 'pident')
  if #id == 0 or #id > 64 or string.find(id, '[/%z]') or string.sub(id, 1, 1) == '.' then
    -- Not a usable id (it becomes a directory name; a leading dot is
    -- the processing area's own, see workers/spare_dirs.h): pushed by hand.
    corrupt = corrupt + 1
    for _, v in ipairs({id, '', '', '0', '0', '0', 'corrupt', ''}) do out[#out + 1] = v end
  elseif (f[4] == 'pending' and not f[1]) or (not f[4] and redis.call('EXISTS', key) == 1) then
    -- A record edited by hand into something unusable (no name, not a
    -- hash): failed where an operator sees it, and reported to the caller.
    if redis.call('TYPE', key)['ok'] == 'hash' then
      local why = f[4] and 'no name' or 'no state'
      redis.call('HSET', key, 'state', 'failed', 'error', 'corrupt job record: ' .. why)
      redis.call('ZADD', base .. 'failed', now, id)
    end
    if f[1] and redis.call('HGET', base .. 'files', f[1]) == id then
      redis.call('HDEL', base .. 'files', f[1])  -- its file may get a job of its own
    end
    corrupt = corrupt + 1
    for _, v in ipairs({id, '', '', '0', '0', '0', 'corrupt', ''}) do out[#out + 1] = v end
  elseif f[1] and f[4] == 'pending' then
    redis.call('HSET', key, 'state', 'active', 'owner', inst, 'claimed', now)
    redis.call('ZADD', active, now, id)
    local recorded = ''
    if f[7] == 'disposing' and (f[8] == 'done' or f[8] == 'failed') then recorded = f[8] end
    out[#out + 1] = id
    out[#out + 1] = f[1]
    out[#out + 1] = f[2] or ''
    out[#out + 1] = f[3] or '0'
    out[#out + 1] = f[5] or '0'
    out[#out + 1] = f[6] or '0'
    out[#out + 1] = recorded
    out[#out + 1] = f[9] or ''
  else
    stale = stale + 1
  end
end
if stale > 0 then redis.call('HINCRBY', base .. 'stats', 'stale_pending', stale) end
if corrupt > 0 then redis.call('HINCRBY', base .. 'stats', 'corrupt', corrupt) end
return out
)lua";

// ARGV: instance, now_ms, then (id, attempt) per job.
constexpr std::string_view kStarted = R"lua(
local base = KEYS[1]
local inst, now = ARGV[1], ARGV[2]
for i = 3, #ARGV, 2 do
  local key = base .. 'job:' .. ARGV[i]
  local f = hmget(key, 'owner', 'state')
  if f[1] == inst and f[2] == 'active' then
    redis.call('HSET', key, 'attempt', ARGV[i + 1], 'started', now)
  end
end
return 0
)lua";

// ARGV: instance, then (id, nfields, field, value, ...) per job.
// Records an outcome before the file moves: phase=disposing plus the fields.
// Returns 1 per job recorded, 0 per job this instance does not own.
constexpr std::string_view kRecord = R"lua(
local base = KEYS[1]
-- Writes job records alone, each read through hmget() first.
local inst = ARGV[1]
local out = {}
local i = 2
while i <= #ARGV do
  local id, nf = ARGV[i], tonumber(ARGV[i + 1])
  local key = base .. 'job:' .. id
  local f = hmget(key, 'owner', 'state')
  if f[1] == inst and f[2] == 'active' then
    local kv = {'phase', 'disposing'}
    for k = 0, 2 * nf - 1 do kv[#kv + 1] = ARGV[i + 2 + k] end
    redis.call('HSET', key, unpack(kv))
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  i = i + 2 + 2 * nf
end
return out
)lua";

// ARGV: instance, now_ms, keep_done, keep_failed (-1: all), then per job
//   (id, state 'done'|'failed'|'scheduled', files value ('' = remove),
//    nfields, field, value, ...).
// A scheduled job (a retry) waits in :scheduled until its `due` field's time
// and keeps its name in :files. Returns 1 per job acknowledged, 0 per job
// this instance does not own.
constexpr std::string_view kAck = R"lua(
local base = KEYS[1]
local bad = check_types(base, {'active', 'done', 'failed', 'scheduled', 'files', 'stats'})
if bad then return bad end
local inst, now, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local keep_failed = tonumber(ARGV[4])
local files = base .. 'files'
local out = {}
local ndone, nfailed, nsched = 0, 0, 0
local i = 5
while i <= #ARGV do
  local id, state, fv, nf = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local key = base .. 'job:' .. id
  local f = hmget(key, 'owner', 'state', 'name')
  if f[1] == inst and f[2] == 'active' then
    local kv = {'state', state, 'finished', now}
    local result, due = '', now
    for k = 0, 2 * nf - 1 do kv[#kv + 1] = ARGV[i + 4 + k] end
    for k = 0, nf - 1 do
      local name, value = ARGV[i + 4 + 2 * k], ARGV[i + 5 + 2 * k]
      if name == 'result' then result = value end
      if name == 'due' then due = value end
    end
    redis.call('HSET', key, unpack(kv))
    redis.call('HDEL', key, 'phase', 'outcome', 'pident')
    redis.call('ZREM', base .. 'active', id)
    if state == 'scheduled' then
      redis.call('HDEL', key, 'owner', 'claimed')
      redis.call('ZADD', base .. 'scheduled', due, id)
    else
      redis.call('ZADD', base .. state, now, id)
      if f[3] and redis.call('HGET', files, f[3]) == id then
        if fv == '' then redis.call('HDEL', files, f[3]) else redis.call('HSET', files, f[3], fv) end
      end
    end
    if state == 'scheduled' then
      nsched = nsched + 1
    elseif result == 'vanished' or result == 'replaced' then
      redis.call('HINCRBY', base .. 'stats', result, 1)  -- a skip, not a run
    elseif state == 'done' then
      ndone = ndone + 1
    else
      nfailed = nfailed + 1
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  i = i + 4 + 2 * nf
end
if nfailed > 0 then redis.call('HINCRBY', base .. 'stats', 'failed', nfailed) end
if ndone > 0 then redis.call('HINCRBY', base .. 'stats', 'done', ndone) end
if nsched > 0 then redis.call('HINCRBY', base .. 'stats', 'retries', nsched) end
if nfailed > 0 and keep_failed >= 0 then
  -- Only when configured (keep_failed), and counted: never silently.
  local failed = base .. 'failed'
  local over = redis.call('ZCARD', failed) - keep_failed
  if over > 0 then
    local old = redis.call('ZRANGE', failed, 0, over - 1)
    for _, oid in ipairs(old) do redis.call('DEL', base .. 'job:' .. oid) end
    redis.call('ZREMRANGEBYRANK', failed, 0, over - 1)
    redis.call('HINCRBY', base .. 'stats', 'failed_trimmed', over)
  end
end
local done = base .. 'done'
local excess = redis.call('ZCARD', done) - keep
if excess > 0 then
  local old = redis.call('ZRANGE', done, 0, excess - 1)
  for _, oid in ipairs(old) do redis.call('DEL', base .. 'job:' .. oid) end
  redis.call('ZREMRANGEBYRANK', done, 0, excess - 1)
end
return out
)lua";

// ARGV: instance, then (id, interrupted '0'|'1') per job. Own active jobs go
// back to the front of pending; the attempt count stays as it is.
constexpr std::string_view kRelease = R"lua(
local base = KEYS[1]
local bad = check_types(base, {'active', 'pending', 'stats'})
if bad then return bad end
local inst = ARGV[1]
local n, ni = 0, 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local key = base .. 'job:' .. id
  local f = hmget(key, 'owner', 'state')
  if f[1] == inst and f[2] == 'active' then
    ni = ni + to_pending(base, key, id, ARGV[i + 1] == '1')
    n = n + 1
  end
end
if ni > 0 then redis.call('HINCRBY', base .. 'stats', 'interrupted', ni) end
return n
)lua";

// ARGV: instance, then the ids this instance holds (in memory, running, or
// with an outcome not yet acknowledged). Every other active job it owns goes
// back to the front of pending, marked interrupted: its holder died or lost
// it, possibly while its handler ran (the STARTED record is not waited for,
// so its absence does not prove the handler never started). Returns the
// requeued ids.
constexpr std::string_view kRequeue = R"lua(
local base = KEYS[1]
local bad = check_types(base, {'active', 'pending', 'stats'})
if bad then return bad end
local inst = ARGV[1]
local held = {}
for i = 2, #ARGV do held[ARGV[i]] = true end
local out = {}
local ni = 0
for _, id in ipairs(redis.call('ZRANGE', base .. 'active', 0, -1)) do
  if not held[id] then
    local key = base .. 'job:' .. id
    local f = hmget(key, 'owner', 'state')
    if not f[2] then
      redis.call('ZREM', base .. 'active', id)
    elseif f[1] == inst and f[2] == 'active' then
      ni = ni + to_pending(base, key, id, true)
      out[#out + 1] = id
    end
  end
end
if ni > 0 then redis.call('HINCRBY', base .. 'stats', 'interrupted', ni) end
return out
)lua";

// ARGV: now_ms, max. Moves up to `max` due scheduled jobs (retries) to the
// front of pending. Returns {moved, next due time in unix ms or -1}.
constexpr std::string_view kPromote = R"lua(
local base = KEYS[1]
local bad = check_types(base, {'scheduled', 'pending'})
if bad then return bad end
local sched = base .. 'scheduled'
local ids = redis.call('ZRANGEBYSCORE', sched, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local key = base .. 'job:' .. id
  redis.call('ZREM', sched, id)
  if hmget(key, 'state')[1] == 'scheduled' then
    redis.call('HSET', key, 'state', 'pending')
    redis.call('HDEL', key, 'due')
    redis.call('RPUSH', base .. 'pending', id)
  end
end
local nxt = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
return {#ids, nxt[2] or '-1'}
)lua";

// ARGV: names of files that left the watched directory. Drops their
// "handled" markers; a live job's entry stays.
constexpr std::string_view kForget = R"lua(
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
)lua";

// ARGV: job ids. Returns each one's state, '' for a job that does not exist.
constexpr std::string_view kStates = R"lua(
local out = {}
for i = 1, #ARGV do
  out[i] = hmget(KEYS[1] .. 'job:' .. ARGV[i], 'state')[1] or ''
end
return out
)lua";

// ARGV: id. A failed (or half-retried) job becomes 'retrying' and takes its
// name in :files, so the watcher does not make a second job when the file
// comes back. Returns {name, disposed_to, ident, previous :files value} or
// an error; RETRY_ABORT puts the previous value back.
constexpr std::string_view kRetryPrepare = R"lua(
local base = KEYS[1]
local id = ARGV[1]
local key = base .. 'job:' .. id
local f = redis.call('HMGET', key, 'state', 'name', 'disposed_to', 'ident')
if not f[1] then return redis.error_reply('NOTFOUND no such job') end
if f[1] ~= 'failed' and f[1] ~= 'retrying' then
  return redis.error_reply('WRONGSTATE job is ' .. f[1] .. ', not failed')
end
local cur = redis.call('HGET', base .. 'files', f[2])
if cur and cur ~= id and string.sub(cur, 1, 1) ~= '~' and
   redis.call('EXISTS', base .. 'job:' .. cur) == 1 then
  return redis.error_reply('BUSY job ' .. cur .. ' holds the name')
end
redis.call('HSET', key, 'state', 'retrying')
redis.call('HSET', base .. 'files', f[2], id)
return {f[2], f[3] or '', f[4] or '', cur or ''}
)lua";

// ARGV: id, now_ms. The file is back in place: the job goes to pending with
// its attempts reset and its last result kept as last_result.
constexpr std::string_view kRetryCommit = R"lua(
local base = KEYS[1]
local id, now = ARGV[1], ARGV[2]
local key = base .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'retrying' then
  return redis.error_reply('WRONGSTATE job is not being retried')
end
local last = redis.call('HGET', key, 'result')
if last then redis.call('HSET', key, 'last_result', last) end
redis.call('HDEL', key, 'owner', 'claimed', 'started', 'finished', 'phase', 'result', 'exit',
           'signal', 'error', 'stderr', 'sha256', 'ms', 'disposed_to', 'due', 'target',
           'outcome', 'pident', 'dispose_error', 'dispose_failures')
for _, f in ipairs(redis.call('HKEYS', key)) do
  if string.find(f, '^attempt%.') or string.find(f, '^stderr%.') then redis.call('HDEL', key, f) end
end
redis.call('HSET', key, 'state', 'pending', 'attempt', 0, 'failures', 0, 'tempfails', 0,
           'enq', now)
redis.call('HINCRBY', key, 'retried', 1)
redis.call('ZREM', base .. 'failed', id)
redis.call('LPUSH', base .. 'pending', id)
redis.call('HINCRBY', base .. 'stats', 'retried', 1)
return 1
)lua";

// ARGV: id, files value ('' = remove). Undoes RETRY_PREPARE when the file
// could not be put back.
constexpr std::string_view kRetryAbort = R"lua(
local base = KEYS[1]
local id, fv = ARGV[1], ARGV[2]
local key = base .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'retrying' then return 0 end
redis.call('HSET', key, 'state', 'failed')
local name = redis.call('HGET', key, 'name')
if redis.call('HGET', base .. 'files', name) == id then
  if fv == '' then redis.call('HDEL', base .. 'files', name)
  else redis.call('HSET', base .. 'files', name, fv) end
end
return 1
)lua";

// ARGV: state ('done' | 'failed'), time (unix ms), limit. Deletes the
// records of up to `limit` jobs of that state that finished at or before the
// time, oldest first. Returns how many left the set.
constexpr std::string_view kPurge = R"lua(
local base = KEYS[1]
local state, before, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
if state ~= 'done' and state ~= 'failed' then
  return redis.error_reply('ERR state must be done or failed')
end
local bad = check_types(base, {state, 'stats'})
if bad then return bad end
local set = base .. state
local ids = redis.call('ZRANGEBYSCORE', set, '-inf', before, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local key = base .. 'job:' .. id
  -- A record that moved on meanwhile (retried) keeps its record.
  if hmget(key, 'state')[1] == state then redis.call('DEL', key) end
  redis.call('ZREM', set, id)
end
if #ids > 0 then redis.call('HINCRBY', base .. 'stats', 'purged_' .. state, #ids) end
return #ids
)lua";

}  // namespace

#define DROPQ_SCRIPT(fn, name, body)          \
  const Script& fn() {                        \
    static const Script s = Make(name, body); \
    return s;                                 \
  }
DROPQ_SCRIPT(EnqueueScript, "enqueue", Cat({kGuard, kEnqueue}))
DROPQ_SCRIPT(ClaimScript, "claim", Cat({kGuard, kClaim}))
DROPQ_SCRIPT(StartedScript, "started", Cat({kGuard, kStarted}))
DROPQ_SCRIPT(RecordScript, "record", Cat({kGuard, kRecord}))
DROPQ_SCRIPT(AckScript, "ack", Cat({kGuard, kAck}))
DROPQ_SCRIPT(ReleaseScript, "release", Cat({kGuard, kToPending, kRelease}))
DROPQ_SCRIPT(RequeueScript, "requeue", Cat({kGuard, kToPending, kRequeue}))
DROPQ_SCRIPT(ForgetScript, "forget", kForget)
DROPQ_SCRIPT(StatesScript, "states", Cat({kGuard, kStates}))
DROPQ_SCRIPT(PromoteScript, "promote", Cat({kGuard, kPromote}))
DROPQ_SCRIPT(RetryPrepareScript, "retry_prepare", kRetryPrepare)
DROPQ_SCRIPT(RetryCommitScript, "retry_commit", kRetryCommit)
DROPQ_SCRIPT(RetryAbortScript, "retry_abort", kRetryAbort)
DROPQ_SCRIPT(PurgeScript, "purge", Cat({kGuard, kPurge}))
#undef DROPQ_SCRIPT

}  // namespace dropq
