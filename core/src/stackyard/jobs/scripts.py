"""The queue's state changes as Lua scripts: each is one atomic EVALSHA.

Keys of one queue share the hash tag `{<queue>}` (`sy:j:{emails}:ready`, …), so a queue
lives on one Redis Cluster slot and its scripts run there atomically. Every script gets
the queue's key prefix as ARGV[1] and the `ready` key as KEYS[1] (for routing); it reads the
clock from Redis (`TIME`), so workers on hosts whose clocks drift still agree.

Per queue:
    ready      ZSET  jobs that may run now; score (9 - priority) * 1e12 + sequence
    sched      ZSET  jobs waiting for a time (delay, retry backoff, a step's sleep); score ms
    active     ZSET  jobs a worker holds; score = the lease's end in ms
    dead       ZSET  dead letters; score = when they died, ms
    job:<id>   HASH  the job (see FIELDS in store.py)
    steps:<id> HASH  results of a step function's completed steps (r:<name>), waits (w:<name>)
    idem:<key> STRING the job id an idempotency key was first used for (expires)
    stats      HASH  counters (enqueued, started, completed, failed, retried, reclaimed, dead, …)
    wake       LIST  a token pushed when work arrives, for idle workers blocked on BLPOP
    rate:<n>   STRING jobs started in rate-limit window n
"""

from __future__ import annotations

from ..luascript import LuaScript

_PRELUDE = """
local P = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function jkey(id) return P .. 'job:' .. id end
local function skey(id) return P .. 'steps:' .. id end
local function wake()
  if redis.call('LLEN', P .. 'wake') == 0 then redis.call('LPUSH', P .. 'wake', '1') end
end
local function make_ready(id)
  local pri = tonumber(redis.call('HGET', jkey(id), 'pri') or '0')
  local score = (9 - pri) * 1000000000000 + redis.call('INCR', P .. 'seq')
  redis.call('ZADD', P .. 'ready', score, id)
  redis.call('HSET', jkey(id), 'state', 'queued', 'run_at', now)
  redis.call('HDEL', jkey(id), 'lease')
  wake()
end
local function schedule(id, at)
  redis.call('ZADD', P .. 'sched', at, id)
  redis.call('HSET', jkey(id), 'state', 'scheduled', 'run_at', at)
  redis.call('HDEL', jkey(id), 'lease')
end
local function keep_for(id, ms)
  redis.call('PEXPIRE', jkey(id), ms)
  redis.call('PEXPIRE', skey(id), ms)
end
local function record_error(id, attempt, message, worker)
  local raw = redis.call('HGET', jkey(id), 'errors')
  local list = {}
  if raw then list = cjson.decode(raw) end
  table.insert(list, {attempt = attempt, at = now, error = message, worker = worker})
  while #list > 10 do table.remove(list, 1) end
  redis.call('HSET', jkey(id), 'errors', cjson.encode(list), 'error', message)
end
local function to_dead(id, dead_ms)
  redis.call('ZADD', P .. 'dead', now, id)
  redis.call('HSET', jkey(id), 'state', 'dead', 'finished', now)
  redis.call('HDEL', jkey(id), 'lease')
  keep_for(id, dead_ms)
  redis.call('HINCRBY', P .. 'stats', 'dead', 1)
  redis.call('ZREMRANGEBYSCORE', P .. 'dead', '-inf', now - dead_ms)
end
local function finish_cancelled(id, keep_ms)
  redis.call('HSET', jkey(id), 'state', 'cancelled', 'finished', now)
  redis.call('HDEL', jkey(id), 'lease')
  keep_for(id, keep_ms)
  redis.call('HINCRBY', P .. 'stats', 'cancelled', 1)
end
local function owned(id, token)
  local f = redis.call('HMGET', jkey(id), 'state', 'lease')
  return f[1] == 'active' and f[2] == token
end
"""

# ARGV: prefix, id, delay ms, run-at ms (0: none), idempotency key ('': none), its window ms,
# then the job's fields as name, value pairs. Answers {1, id, created ms, run-at ms} when
# enqueued, {0, first id} when the idempotency key was already used within its window.
ENQUEUE = (
    _PRELUDE
    + """
local id, delay, run_at, idem, idem_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6]
if idem ~= '' then
  local first = redis.call('GET', P .. 'idem:' .. idem)
  if first and redis.call('EXISTS', jkey(first)) == 1 then return {0, first} end
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', jkey(id), 'created', now, 'att', 0, unpack(fields))
local at = now + delay
if run_at > 0 then at = run_at end
if at > now then schedule(id, at) else make_ready(id) end
if idem ~= '' then redis.call('SET', P .. 'idem:' .. idem, id, 'PX', idem_ms) end
redis.call('HINCRBY', P .. 'stats', 'enqueued', 1)
return {1, id, now, at}
"""
)

# ARGV: prefix, how many wanted, lease ms, worker token, global cap (0: none), rate limit
# (0: none), rate interval ms, dead-letter retention ms.
# First moves due scheduled jobs to ready and reclaims jobs whose lease ran out (their
# worker died), then takes up to the wanted number within the global cap and the rate limit.
# Answers {wait ms until something is due (-1: nothing), then per job one string: id, attempt,
# function, http, payload, max attempts, timeout s and trace joined by NUL (none of them holds
# one: JSON escapes control characters), which is much cheaper to parse than eight replies.
DEQUEUE = (
    _PRELUDE
    + """
local want, lease, token = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local cap, rate, interval, dead_ms = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'sched', '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', P .. 'sched', id)
  if redis.call('EXISTS', jkey(id)) == 1 then make_ready(id) end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', P .. 'active', id)
  local f = redis.call('HMGET', jkey(id), 'att', 'max', 'lease', 'cancel')
  if f[1] then
    record_error(id, tonumber(f[1]), 'lease expired: worker ' .. (f[3] or '?') .. ' stopped heartbeating', f[3])
    redis.call('HINCRBY', P .. 'stats', 'reclaimed', 1)
    if f[4] == '1' then
      finish_cancelled(id, dead_ms)
    elseif tonumber(f[1]) >= tonumber(f[2]) then
      to_dead(id, dead_ms)
    else
      make_ready(id)
    end
  end
end
local rate_wait = -1
if cap > 0 then want = math.min(want, cap - redis.call('ZCARD', P .. 'active')) end
local rkey
if rate > 0 then
  local window = math.floor(now / interval)
  rkey = P .. 'rate:' .. window
  local used = tonumber(redis.call('GET', rkey) or '0')
  if used >= rate then rate_wait = (window + 1) * interval - now end
  want = math.min(want, rate - used)
end
local out = {0}
local taken, waited = 0, 0
if want > 0 then
  local popped = redis.call('ZPOPMIN', P .. 'ready', want)
  for i = 1, #popped, 2 do
    local id = popped[i]
    local key = jkey(id)
    if redis.call('EXISTS', key) == 1 then
      local att = redis.call('HINCRBY', key, 'att', 1)
      local f = redis.call('HMGET', key, 'fn', 'http', 'payload', 'max', 'timeout', 'trace', 'run_at')
      redis.call('HSET', key, 'state', 'active', 'started', now, 'lease', token)
      redis.call('ZADD', P .. 'active', now + lease, id)
      waited = waited + now - tonumber(f[7] or now)
      taken = taken + 1
      for j = 1, 6 do f[j] = f[j] or '' end
      out[#out + 1] = table.concat({id, att, f[1], f[2], f[3], f[4], f[5], f[6]}, '\0')
    end
  end
  if taken > 0 then
    redis.call('HINCRBY', P .. 'stats', 'started', taken)
    redis.call('HINCRBY', P .. 'stats', 'wait_ms', waited)
    if rkey then
      redis.call('INCRBY', rkey, taken)
      redis.call('PEXPIRE', rkey, interval * 2)
    end
  end
  if #popped / 2 == want and redis.call('ZCARD', P .. 'ready') > 0 then wake() end
end
local wait = rate_wait
for _, set in ipairs({'sched', 'active'}) do
  local first = redis.call('ZRANGE', P .. set, 0, 0, 'WITHSCORES')
  if first[2] then
    local until_due = math.max(0, tonumber(first[2]) - now)
    if wait < 0 or until_due < wait then wait = until_due end
  end
end
out[1] = wait
return out
"""
)

# ARGV: prefix, completed retention ms, then per job: id, worker token, result JSON, run ms.
# A job still held under the token completes; so does one whose lease ran out and that waits
# in ready again (it has just succeeded after all). Answers one 1 or 0 per job.
COMPLETE = (
    _PRELUDE
    + """
local keep_ms = tonumber(ARGV[2])
local out, done, ran = {}, 0, 0
for i = 3, #ARGV, 4 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', jkey(id), 'state', 'lease')
  local ok = 0
  if (f[1] == 'active' and f[2] == token) or f[1] == 'queued' then
    redis.call('ZREM', P .. 'active', id)
    redis.call('ZREM', P .. 'ready', id)
    redis.call('HSET', jkey(id), 'state', 'completed', 'finished', now, 'result', ARGV[i + 2])
    redis.call('HDEL', jkey(id), 'lease')
    keep_for(id, keep_ms)
    done = done + 1
    ran = ran + tonumber(ARGV[i + 3])
    ok = 1
  end
  out[#out + 1] = ok
end
if done > 0 then
  redis.call('HINCRBY', P .. 'stats', 'completed', done)
  redis.call('HINCRBY', P .. 'stats', 'run_ms', ran)
end
return out
"""
)

# ARGV: prefix, id, worker token, error message, worker name, retry delay ms (-1: dead letter),
# dead-letter retention ms. Answers 1 retried, 2 dead-lettered, 0 not held any more.
FAIL = (
    _PRELUDE
    + """
local id, token, message, worker = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local delay, dead_ms = tonumber(ARGV[6]), tonumber(ARGV[7])
if not owned(id, token) then return 0 end
redis.call('ZREM', P .. 'active', id)
record_error(id, tonumber(redis.call('HGET', jkey(id), 'att')), message, worker)
redis.call('HINCRBY', P .. 'stats', 'failed', 1)
if delay >= 0 then
  schedule(id, now + delay)
  redis.call('HINCRBY', P .. 'stats', 'retried', 1)
  return 1
end
to_dead(id, dead_ms)
return 2
"""
)

# ARGV: prefix, id, worker token, delay ms, refund ('1': the attempt does not count), step name.
# Gives a held job back: a step's sleep or wait (refunded, after the delay, at once if the
# awaited event already came), or a worker's shutdown (refunded, at once).
REQUEUE = (
    _PRELUDE
    + """
local id, token, delay, refund, step = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
if not owned(id, token) then return 0 end
redis.call('ZREM', P .. 'active', id)
if refund == '1' then redis.call('HINCRBY', jkey(id), 'att', -1) end
if step ~= '' and redis.call('HEXISTS', skey(id), 'r:' .. step) == 1 then delay = 0 end
if delay > 0 then schedule(id, now + delay) else make_ready(id) end
return 1
"""
)

# ARGV: prefix, worker token, lease ms, then job ids. Extends the leases the token holds.
# Answers {ids not held any more, ids whose cancel was asked for}.
HEARTBEAT = (
    _PRELUDE
    + """
local token, lease = ARGV[2], tonumber(ARGV[3])
local lost, cancel = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HMGET', jkey(id), 'state', 'lease', 'cancel')
  if f[1] == 'active' and f[2] == token then
    redis.call('ZADD', P .. 'active', 'XX', now + lease, id)
    if f[3] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancel}
"""
)

# ARGV: prefix, id, retention ms. Answers the state before: a queued or scheduled job is
# cancelled at once; an active one is asked to stop (its worker sees it at the next heartbeat).
CANCEL = (
    _PRELUDE
    + """
local id, keep_ms = ARGV[2], tonumber(ARGV[3])
local state = redis.call('HGET', jkey(id), 'state')
if not state then return '' end
if state == 'queued' or state == 'scheduled' then
  redis.call('ZREM', P .. 'ready', id)
  redis.call('ZREM', P .. 'sched', id)
  finish_cancelled(id, keep_ms)
elseif state == 'active' then
  redis.call('HSET', jkey(id), 'cancel', '1')
end
return state
"""
)

# ARGV: prefix, id, worker token, retention ms. The worker stopped a job whose cancel was asked.
CANCELLED = (
    _PRELUDE
    + """
local id, token, keep_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
if not owned(id, token) then return 0 end
redis.call('ZREM', P .. 'active', id)
finish_cancelled(id, keep_ms)
return 1
"""
)

# ARGV: prefix, then dead-letter ids. Each goes back to ready with its attempts reset; its
# error history and completed steps stay. Answers the ids replayed.
REPLAY = (
    _PRELUDE
    + """
local done = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', P .. 'dead', id) == 1 and redis.call('EXISTS', jkey(id)) == 1 then
    redis.call('PERSIST', jkey(id))
    redis.call('PERSIST', skey(id))
    redis.call('HSET', jkey(id), 'att', 0)
    redis.call('HDEL', jkey(id), 'finished', 'cancel')
    make_ready(id)
    done[#done + 1] = id
  end
end
redis.call('HINCRBY', P .. 'stats', 'replayed', #done)
return done
"""
)

# ARGV: prefix, id, payload JSON. Replays one dead letter with a new payload (as REPLAY
# does: fresh attempts, its error history and completed steps kept). Answers 1 if it was one.
REPLAY_CHANGED = (
    _PRELUDE
    + """
local id = ARGV[2]
if redis.call('EXISTS', jkey(id)) == 0 or redis.call('ZREM', P .. 'dead', id) == 0 then return 0 end
redis.call('PERSIST', jkey(id))
redis.call('PERSIST', skey(id))
redis.call('HSET', jkey(id), 'att', 0, 'payload', ARGV[3])
redis.call('HDEL', jkey(id), 'finished', 'cancel')
make_ready(id)
redis.call('HINCRBY', P .. 'stats', 'replayed', 1)
return 1
"""
)

# ARGV: prefix, then dead-letter ids. Deletes them. Answers the ids deleted.
PURGE = (
    _PRELUDE
    + """
local done = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', P .. 'dead', id) == 1 then
    redis.call('DEL', jkey(id), skey(id))
    done[#done + 1] = id
  end
end
return done
"""
)

# ARGV: prefix, id, step name, data JSON. An awaited event came: the step's result is stored
# and a job suspended in that wait runs again at once. Answers 1 if the job was waiting.
DELIVER = (
    _PRELUDE
    + """
local id, step, data = ARGV[2], ARGV[3], ARGV[4]
if redis.call('HEXISTS', skey(id), 'w:' .. step) == 0 or redis.call('HEXISTS', skey(id), 'r:' .. step) == 1 then
  return 0
end
redis.call('HSET', skey(id), 'r:' .. step, data)
if redis.call('HGET', jkey(id), 'state') == 'scheduled' then
  redis.call('ZREM', P .. 'sched', id)
  make_ready(id)
end
return 1
"""
)

ENQUEUE_SCRIPT = LuaScript(ENQUEUE)
DEQUEUE_SCRIPT = LuaScript(DEQUEUE)
COMPLETE_SCRIPT = LuaScript(COMPLETE)
FAIL_SCRIPT = LuaScript(FAIL)
REQUEUE_SCRIPT = LuaScript(REQUEUE)
HEARTBEAT_SCRIPT = LuaScript(HEARTBEAT)
CANCEL_SCRIPT = LuaScript(CANCEL)
CANCELLED_SCRIPT = LuaScript(CANCELLED)
REPLAY_SCRIPT = LuaScript(REPLAY)
REPLAY_CHANGED_SCRIPT = LuaScript(REPLAY_CHANGED)
PURGE_SCRIPT = LuaScript(PURGE)
DELIVER_SCRIPT = LuaScript(DELIVER)
