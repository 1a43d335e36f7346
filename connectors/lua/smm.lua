-- connectors/lua/smm.lua - the state script: every write smm-processor makes to Redis.
--
-- Why a script: a batch's counters, reach sketches and dead-letter counts must change
-- together with the offsets of the partitions they came from, or not at all, and a
-- writer that lost a partition must be refused. Mode 'flush' first checks every
-- partition's fence (the owner token written on assignment, and the offset the writer
-- believes is stored); if any fence fails nothing is applied and the answer says which.
-- Otherwise it applies the merged batch and stores each partition's next offset.
--
-- Counters live in one hash per entity, P{<shard>}:<entity>, whose fields are time
-- buckets (minute, hour, lifetime) of packed counters: a flush adds to them with one HMGET
-- and one HSET per entity (write_entities below). Windows are not kept: readers sum the
-- buckets (the Function library connectors/lua/smm_lib.lua). Reach is one HyperLogLog per
-- content and per account (plus per-minute and per-hour sketches for account windows),
-- counted when read. Layout: docs/redis-keys.md.
--
-- Mode 'tick' runs on the wall clock: it merges each completed hour of per-account minute
-- sketches into an hour sketch, applies the processor's viral decisions (as a flush does)
-- and runs the viral stale rule, the response-time and the goal rules.
--
-- ARGV common: mode, prefix, now_minute, shards (redis.shards), keep_minutes
-- flush: n_parts, then per part:
--          tp, token, base_offset, next_offset,
--          n_groups, {entity, minute, rated, k, {field, delta}*k}*n_groups,
--            (entity "c:<id>" or "a:<id>"; field "<entity>:<metric>"; rated is unused)
--          n_abs, {key, entity, base_v, prune, expire_at, k, {field, value, delta, score}*k}*n_abs
--            (entities whose buckets the processor computed: see write_entities)
--          n_sketches, {key, sketch_key, expire_at, changed, bytes}*n_sketches
--            (lifetime reach sketches the processor computed: see reach below; the other
--            users reach their sketches as plain PFADDs ahead of this call, in its MULTI)
--          n_days, {minute, field, delta}*n_days (their accounts' daily deltas)
--          n_stats, {field, delta}*n_stats
--          n_links, {type, account, a, b, c, ts_ms, biz_ms, x}*n_links  (see links below)
--          n_adm, {key, base_v, set_key, expire_at, push, n_f, {field, value}*n_f,
--                  n_del, {field}*n_del, n_set, {member}*n_set}*n_adm
--            (admission sketches the processor decided: see 2. below)
--        (smm-processor folds all its partitions into one batch and sends it with the
--        first part, and empty sections with the others: a flush applies all of its parts
--        or none, so only the fences need to stay per part)
--        then the viral section (see viral() below), then the insights settings:
--          now_ms, days_keep, top_n, max_open, reorder_ms, referral_window_ms, max_depth,
--          sketch_m, half_life_ms, idle_days
--        -> {'OK', {content_id, new_state}..., {content_id, state}...,
--           {content_id, stored_state}..., {key}...} (changes, then the unchanged non-normal
--           states of the posts decided, then the posts whose decision was not applied: see
--           viral() below, then the counter hashes written from deltas: write_entities) or
--           {'REJECT', {part_index, 'FENCED'|'STALE'|'DUP', owner|stored}...}
-- tick:  max_refresh (account hour merges per tick), now_ms, window_refresh_ms (unused),
--        then the viral section,
--        the insights settings and the goal section (see goals below)
--        -> {'OK', merged_hours, changes, states, conflicts}
--
-- Retention (idle_days > 0): every key named by an id from an event (a post's or
-- account's sketches, viral hash, thread and referral state, customer value, segment
-- sketch) expires idle_days after the call that last wrote it: touch() collects the keys a
-- call writes and retain() gives each one EXPIREAT at the end, once per key per call
-- however many events wrote it (admission sketches, written by nearly every flush, once a
-- day: the processor sends their expiry when it moves). The expiry is computed from the call's now_ms, so a replayed
-- call sets the same one. Ids that only live as fields of the wide hashes cannot
-- expire this way (docs/redis-keys.md, "Lifetimes").
local MODE, P = ARGV[1], ARGV[2]
local now_min = tonumber(ARGV[3])
local keep = tonumber(ARGV[5])
local CHUNK = 2000
local DAY_SKETCH_KEEP = 15 -- days an account's day reach sketch is kept after its day
local TOPN = 1000 -- members kept in a leaderboard sorted set
local tonumber, tostring, floor, format = tonumber, tostring, math.floor, string.format
local call, unpack, pairs, ipairs = redis.call, unpack, pairs, ipairs

-- Redis does not roll a script back when a command fails: a command or key the ACL refuses
-- half-way would leave counters without the offsets that cover them (counted again after
-- the fix). So check every command this script may run before the first write (Redis 7+).
if redis.acl_check_cmd then
  local k = P .. 'total'
  for _, c in ipairs({{'HSET', k, 'f', '1'}, {'HGET', k, 'f'}, {'HMGET', k, 'f'}, {'SET', k, 'v'},
                      {'HGETALL', k}, {'HKEYS', k}, {'HINCRBY', k, 'f', '1'}, {'HDEL', k, 'f'}, {'DEL', k},
                      {'EXPIREAT', k, '1'}, {'PFADD', k, 'u'}, {'PFCOUNT', k},
                      {'PFMERGE', k, k}, {'EXPIRETIME', k}, {'SADD', k, 'm'}, {'SMEMBERS', k}, {'SPOP', k, '1'}, {'SCARD', k},
                      {'ZADD', k, '1', 'm'}, {'ZRANGEBYSCORE', k, '0', '1'},
                      {'ZREMRANGEBYSCORE', k, '0', '1'}, {'ZREM', k, 'm'},
                      {'ZREMRANGEBYRANK', k, '0', '1'}, {'ZRANGE', k, '0', '1'},
                      {'ZINCRBY', k, '1', 'm'},
                      {'XADD', k, 'MAXLEN', '~', '10', '*', 'f', 'v'}, {'PUBLISH', k, 'm'}}) do
    if not redis.acl_check_cmd(unpack(c)) then
      return redis.error_reply('NOPERM the Redis user may not run ' .. c[1] .. ' on ' .. k ..
                               ' (nothing was written)')
    end
  end
end

-- Lua 5.1 prints integers below 1e14 exactly with tostring(), much faster than format().
local function fmt(v)
  if v == floor(v) then
    if v < 1e14 and v > -1e14 then
      return tostring(v)
    end
    return format('%d', v)
  end
  return format('%.6f', v)
end

-- Retention: expire_at (seconds) is set from the insights settings (a tick reads them
-- after its viral section, so keys are collected either way); nil keeps every key.
local expire_at = nil
local touched = {}

local function touch(key)
  touched[key] = true
end

local function retain()
  if expire_at then
    for key in pairs(touched) do
      call('EXPIREAT', key, expire_at)
    end
  end
  touched = {}
end

local function range_call(cmd, key, list)
  local n = #list
  for s = 1, n, CHUNK do
    call(cmd, key, unpack(list, s, s + CHUNK - 1 < n and s + CHUNK - 1 or n))
  end
end

-- cmd key ARGV[from..to], in chunks of at most CHUNK arguments (nothing when to < from).
local function slice_call(cmd, key, from, to)
  for s = from, to, CHUNK do
    call(cmd, key, unpack(ARGV, s, s + CHUNK - 1 < to and s + CHUNK - 1 or to))
  end
end

-- The shard count is fixed for a prefix once written (keys are named by it).
do
  local stored = redis.call('HGET', P .. 'meta', 'shards')
  if not stored then
    redis.call('HSET', P .. 'meta', 'shards', ARGV[4])
  elseif stored ~= ARGV[4] then
    return redis.error_reply('ERR redis.shards is ' .. ARGV[4] .. ' but ' .. P ..
                             'meta holds shards ' .. stored .. ' (keys are named by it: ' ..
                             'set redis.shards to ' .. stored .. ')')
  end
end

-- Adds deltas {field = delta} to the integer fields of one hash (the daily account
-- buckets): one HMGET and one HSET per chunk of fields.
local function hash_add(key, deltas)
  local fields, n = {}, 0
  for f in pairs(deltas) do
    n = n + 1
    fields[n] = f
  end
  for s = 1, n, CHUNK do
    local e = s + CHUNK - 1 < n and s + CHUNK - 1 or n
    local got = call('HMGET', key, unpack(fields, s, e))
    local sets = {}
    for j = s, e do
      local v = (tonumber(got[j - s + 1]) or 0) + deltas[fields[j]]
      sets[#sets + 1] = fields[j]
      -- Counters are integers: Redis prints a Lua number below 1e15 exactly.
      sets[#sets + 1] = (v < 1e14 and v > -1e14) and v or fmt(v)
    end
    call('HSET', key, unpack(sets))
  end
end

-- Viral posts. The processor computes each post's figures and rule flags (metrics/viral.c)
-- and decides its state (metrics/viral_state.c, processor/pipeline.c); this section applies
-- the decisions as plain writes, in the same call as the counters and offsets they follow
-- from, so an alert is emitted exactly once, also across kill -9.
-- Section: now_ms, exit_ticks, cooldown_ms, stream_max, stale_ms, n,
--          {content_id, account, base_seq, state, alert_id, alert_json, spm_5m, predicted,
--           k, {field, value}*k, n_state, {field, value}*n_state}*n
-- base_seq: the post's seq the decision started from ('' = no decision, figures only);
-- state: the state after the decision; alert_id/alert_json: the alert of a state change
-- ('' = none); {field, value}*n_state: the stored state fields the decision changes.
-- The decision applies only if the stored seq is still base_seq: otherwise another writer
-- moved the post first (partitions not keyed by content_id), nothing of it is written and
-- the post is reported as a conflict, so the processor reloads its state and decides again.
-- predicted: '' = no estimate. A field value '' is a figure with no finite value
-- (predicted_final of a supercritical cascade): stored as '' in the hash.
local ENTER, HOLD, RISE, EVAL = 1, 2, 4, 8
local function has(flags, bit)
  return math.floor(flags / bit) % 2 == 1
end

-- Words for people: every alert carries `message`, one sentence built from one table per
-- kind (docs/alerts.md lists every form). A viral alert comes worded from the processor
-- (metrics/alert_text.c), but for the stale rule below, which is decided here.
local SAY = {
  viral = {viral = '{id} went viral: {why}.', rising = '{id} is rising: {why}.',
           cooling = '{id} is cooling down: {why}.', normal = '{id} is back to normal: {why}.',
           stale = 'no new figures for it for {stale}'},
  sla = {breached = '{account}: the customer in thread {thread} has had no reply for ' ..
                    '{waited}, past the reply deadline of {sla} (SLA breached).',
         resolved = '{account}: the customer in thread {thread} got a reply after {waited}, ' ..
                    '{late} past the reply deadline of {sla} (SLA breach resolved).'},
  goal = {reached = '{account}: goal {goal} reached: {metric} is at {current}, target {target}.',
          off_track = '{account}: goal {goal} is off track: {metric} is at {current}, below ' ..
                      'the {expected} expected by now on the way to {target}.'},
}

local function say(kind, form, slots)
  return (string.gsub(SAY[kind][form], '{(%w+)}', slots))
end

-- 1234567.8 -> "1,234,567.8": whole numbers with thousands separators, else at most 2
-- decimals.
local function words_number(x)
  x = tonumber(x)
  if not x or x ~= x then
    return 'unknown'
  end
  if x == math.huge or x == -math.huge then
    return 'unbounded'
  end
  local s
  if x == floor(x) and x < 1e15 and x > -1e15 then
    s = format('%d', x)
  else
    s = format('%.2f', x):gsub('0+$', ''):gsub('%.$', '')
  end
  local sign, int, frac = string.match(s, '^(-?)(%d+)(.*)$')
  int = int:reverse():gsub('(%d%d%d)', '%1,'):reverse():gsub('^,', '')
  return sign .. int .. frac
end

-- 5400000 -> "1 h 30 min": the two largest units, seconds below a minute.
local function words_duration(ms)
  local sec = floor((tonumber(ms) or 0) / 1000 + 0.5)
  if sec < 0 then
    sec = 0
  end
  local units = {{86400, 'd'}, {3600, 'h'}, {60, 'min'}, {1, 's'}}
  for u = 1, 4 do
    if sec >= units[u][1] or u == 4 then
      local a = floor(sec / units[u][1])
      local rest = sec - a * units[u][1]
      local nxt = units[u + 1]
      local b = nxt and floor(rest / nxt[1]) or 0
      if b > 0 then
        return format('%d %s %d %s', a, units[u][2], b, nxt[2])
      end
      return format('%d %s', a, units[u][2])
    end
  end
end

local function emit(v, cid, account, from, to, seq, reasons, kv, why)
  local metrics = {}
  for j = 1, #kv, 2 do
    local num = tonumber(kv[j + 1])
    if num and num == num and num > -math.huge and num < math.huge then
      metrics[kv[j]] = num
    elseif kv[j + 1] == '' or kv[j + 1] == 'inf' then
      metrics[kv[j]] = cjson.null -- no finite value (a supercritical predicted_final)
    end
  end
  local rs = {}
  for r in string.gmatch(reasons, '[^;]+') do
    rs[#rs + 1] = r
  end
  if #rs == 0 then
    rs[1] = to == 'normal' and 'quiet' or (to == 'cooling' and 'below exit level' or to)
  end
  local message = say('viral', to, {id = cid, why = why})
  if why == '' then
    message = string.gsub(message, ': %.$', '.') -- no clause sent: the head alone
  end
  local id = 'viral:' .. cid .. ':' .. seq
  local json = cjson.encode({alert_id = id, kind = 'viral', content_id = cid,
                             account_id = account, from = from, to = to, at_ms = v.now,
                             reasons = rs, message = message, metrics = metrics})
  call('XADD', P .. 'alerts', 'MAXLEN', '~', v.stream_max, '*', 'alert_id', id,
       'kind', 'viral', 'content_id', cid, 'account_id', account, 'json', json)
  call('PUBLISH', P .. 'alerts', json)
  call('HINCRBY', P .. 'stats', 'alerts:viral', 1)
  v.alerts = v.alerts + 1
end

-- The stale rule (docs/viral.md): a flagged post no processor has evaluated for stale_ms
-- is stepped as quiet on a tick. It stays here, in the tick, because no processor holds
-- such a post: its state and figures are only in Redis. This is the machine of
-- metrics/viral_state.c for that one input (flags 0, tick): keep the two in step.
local function machine(v, cid, account, flags, reasons, kv, tick, up, down)
  local key = P .. 'v:' .. cid
  local cur = call('HMGET', key, 'state', 'state_since_ms', 'seq', 'below')
  local state = cur[1] or 'normal'
  local since = tonumber(cur[2]) or 0
  local seq = tonumber(cur[3]) or 0
  local below = tonumber(cur[4]) or 0
  local enter, hold, rise = has(flags, ENTER), has(flags, HOLD), has(flags, RISE)
  local to = nil
  if state == 'normal' then
    if enter then
      to = 'viral'
    elseif rise then
      to = 'rising'
    end
  elseif state == 'rising' then
    if enter then
      to = 'viral'
    elseif rise then
      below = 0
    elseif tick then
      below = below + 1
      if below >= v.exit_ticks then
        to = 'normal'
      end
    end
  elseif state == 'viral' then
    if enter or hold then
      below = 0
    elseif tick then
      below = below + 1
      if below >= v.exit_ticks then
        to = 'cooling'
      end
    end
  else -- cooling: stays at least cooldown_ms, then viral again or normal
    if v.now - since >= v.cooldown then
      if enter then
        to = 'viral'
      elseif not hold and not rise then
        to = 'normal'
      end
    end
  end
  if to then
    seq = seq + 1
    emit(v, cid, account, state, to, seq, reasons, kv,
         (to == 'viral' or to == 'rising') and up or down)
    call('HSET', key, 'state', to, 'state_since_ms', v.now, 'seq', seq, 'below', 0)
    if to == 'normal' then
      call('ZREM', P .. 'viral:active', cid)
    else
      call('ZADD', P .. 'viral:active', v.now, cid)
    end
    v.changes[#v.changes + 1] = cid
    v.changes[#v.changes + 1] = to
  else
    if below ~= (tonumber(cur[4]) or 0) then
      call('HSET', key, 'below', below)
    end
    if state ~= 'normal' then
      -- The processor mirrors states (a restarted one learns them here): it keeps sending
      -- flagged posts on every tick.
      v.states[#v.states + 1] = cid
      v.states[#v.states + 1] = state
    end
  end
end

local function viral(i, tick)
  if ARGV[i] == nil then
    return {changes = {}, states = {}, conflicts = {}} -- no viral section (callers may omit it)
  end
  local v = {now = tonumber(ARGV[i]), exit_ticks = tonumber(ARGV[i + 1]),
             cooldown = tonumber(ARGV[i + 2]), stream_max = ARGV[i + 3],
             stale = tonumber(ARGV[i + 4]), alerts = 0, changes = {}, states = {},
             conflicts = {}}
  local n = tonumber(ARGV[i + 5])
  i = i + 6
  local seen = {}
  local vel, vel_gone, pred, pred_gone = {}, {}, {}, {}
  for _ = 1, n do
    local cid, account, base, state = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local alert_id, json = ARGV[i + 4], ARGV[i + 5]
    local spm, predicted, k = tonumber(ARGV[i + 6]), ARGV[i + 7], tonumber(ARGV[i + 8])
    i = i + 9
    local kv = {unpack(ARGV, i, i + 2 * k - 1)}
    i = i + 2 * k
    local nst = tonumber(ARGV[i])
    local st = {unpack(ARGV, i + 1, i + 2 * nst)}
    i = i + 1 + 2 * nst
    seen[cid] = true
    local key = P .. 'v:' .. cid
    touch(key)
    if base ~= '' then
      -- updated_ms: the last evaluation (a flagged post without one for stale_ms cools)
      call('HSET', key, 'account', account, 'updated_ms', v.now, unpack(kv))
    else
      call('HSET', key, 'account', account, unpack(kv))
    end
    if spm > 0 then
      vel[#vel + 1] = spm
      vel[#vel + 1] = cid
    else
      vel_gone[#vel_gone + 1] = cid
    end
    if predicted ~= '' then
      pred[#pred + 1] = predicted
      pred[#pred + 1] = cid
    else
      pred_gone[#pred_gone + 1] = cid
    end
    if base ~= '' then
      local cur = call('HMGET', key, 'seq', 'state')
      if (tonumber(cur[1]) or 0) ~= tonumber(base) then
        v.conflicts[#v.conflicts + 1] = cid
        v.conflicts[#v.conflicts + 1] = cur[2] or 'normal'
      else
        if nst > 0 then
          call('HSET', key, unpack(st))
        end
        if alert_id ~= '' then
          call('XADD', P .. 'alerts', 'MAXLEN', '~', v.stream_max, '*', 'alert_id', alert_id,
               'kind', 'viral', 'content_id', cid, 'account_id', account, 'json', json)
          call('PUBLISH', P .. 'alerts', json)
          call('HINCRBY', P .. 'stats', 'alerts:viral', 1)
          v.alerts = v.alerts + 1
          if state == 'normal' then
            call('ZREM', P .. 'viral:active', cid)
          else
            call('ZADD', P .. 'viral:active', v.now, cid)
          end
          v.changes[#v.changes + 1] = cid
          v.changes[#v.changes + 1] = state
        elseif state ~= 'normal' then
          -- The processor mirrors states: it keeps sending flagged posts on every tick.
          v.states[#v.states + 1] = cid
          v.states[#v.states + 1] = state
        end
      end
    end
  end
  range_call('ZADD', P .. 'viral:velocity', vel)
  range_call('ZREM', P .. 'viral:velocity', vel_gone)
  range_call('ZADD', P .. 'viral:predicted', pred)
  range_call('ZREM', P .. 'viral:predicted', pred_gone)
  -- Both are read as leaderboards (the top 1000 at most) and trimmed like them: a post
  -- forgotten with a score left (its estimate stays; a processor stopped before its
  -- velocity fell to 0) would otherwise stay a member for good.
  if #vel > 0 then
    call('ZREMRANGEBYRANK', P .. 'viral:velocity', 0, -(TOPN + 1))
  end
  if #pred > 0 then
    call('ZREMRANGEBYRANK', P .. 'viral:predicted', 0, -(TOPN + 1))
  end
  if tick then
    -- Flagged posts no instance has updated for stale_ms (their tracker restarted or
    -- forgot them): treat them as quiet so they cool down on the clock.
    local active = call('ZRANGE', P .. 'viral:active', 0, -1)
    for _, cid in ipairs(active) do
      if not seen[cid] then
        local cur = call('HMGET', P .. 'v:' .. cid, 'updated_ms', 'account')
        if v.now - (tonumber(cur[1]) or 0) >= v.stale then
          local why = say('viral', 'stale', {stale = words_duration(v.stale)})
          machine(v, cid, cur[2] or '', EVAL, '', {}, true, why, why)
        end
      end
    end
  end
  v.next = i
  return v
end

-- Where the viral section starting at i ends (the insights settings follow it).
local function viral_end(i)
  if ARGV[i] == nil then
    return i
  end
  local n = tonumber(ARGV[i + 5])
  i = i + 6
  for _ = 1, n do
    i = i + 9 + 2 * tonumber(ARGV[i + 8])
    i = i + 1 + 2 * tonumber(ARGV[i])
  end
  return i
end

-------------------------------------------------------------------------------------------
-- Insights: response times and SLA alerts, referrals and conversions, segment admission,
-- goals (docs/insights.md). Settings: now_ms, days_keep, top_n, max_open, reorder_ms,
-- referral_window_ms, max_depth, sketch_m, half_life_ms, idle_days (absent in old callers:
-- defaults; idle_days 0 = no retention; top_n, sketch_m and half_life_ms are the
-- processor's, for admission). Sets expire_at for touch()/retain().
local function insights_settings(i)
  local function n(j, dflt)
    return tonumber(ARGV[i + j] or '') or dflt
  end
  local ins = {now = n(0, 0), days_keep = n(1, 400), top_n = n(2, 20), max_open = n(3, 100000),
               reorder = n(4, 600000), ref_window = n(5, 2592000000), max_depth = n(6, 3),
               sketch_m = n(7, 80), half_life = n(8, 21600000), idle_days = n(9, 0),
               next = i + 10, stream_max = 10000, open = {}, adm = {}, rt_new = {}}
  if ins.idle_days > 0 then
    expire_at = floor(ins.now / 1000) + ins.idle_days * 86400
  end
  return ins
end

-- Alerts other than viral ones share the stream, the channel and the relay.
-- Each gets its sentence from SAY (above) and the alert's own fields.
local function alert(ins, kind, id, account, fields)
  fields.alert_id = id
  fields.kind = kind
  fields.account_id = account
  fields.at_ms = ins.now
  local f = fields
  if kind == 'sla' then
    fields.message = say('sla', f.to, {account = account, thread = f.thread_id,
                                       waited = words_duration(f.waited_ms),
                                       sla = words_duration(f.sla_ms),
                                       late = words_duration((f.waited_ms or 0) -
                                                             (f.sla_ms or 0))})
  elseif kind == 'goal' then
    -- "response rate is at 50%": the metric in words, a rate with its percent sign.
    local unit = f.metric == 'response_rate' and '%' or ''
    fields.message = say('goal', f.to, {account = account, goal = f.goal_id,
                                        metric = (string.gsub(f.metric or '', '_', ' ')),
                                        current = words_number(f.current) .. unit,
                                        target = words_number(f.target) .. unit,
                                        expected = words_number(f.expected) .. unit})
  end
  local json = cjson.encode(fields)
  call('XADD', P .. 'alerts', 'MAXLEN', '~', ins.stream_max, '*', 'alert_id', id,
       'kind', kind, 'account_id', account, 'json', json)
  call('PUBLISH', P .. 'alerts', json)
  call('HINCRBY', P .. 'stats', 'alerts:' .. kind, 1)
end

-- Is a referral's source admitted for the account (keeps its own series)? The processor
-- decides admission (metrics/admission.h) and writes the admitted set, seg:<account>:source,
-- before the links are matched (2. below), so the set answers as its sketch would.
local function admitted(ins, account, src)
  local set = ins.adm[account]
  if not set then
    set = {}
    for _, v in ipairs(call('SMEMBERS', P .. 'seg:' .. account .. ':source')) do
      set[v] = true
    end
    ins.adm[account] = set
  end
  return set[src] == true
end

-- First-response-time histogram: bucket b holds (1.04^(b-1), 1.04^b] ms, 0 holds <= 1 ms
-- (metrics/response.h computes the same index and reads the percentiles).
local LOG_GAMMA = math.log(1.04)
local function frt_bucket(ms)
  if ms <= 1 then
    return 0
  end
  return math.ceil(math.log(ms) / LOG_GAMMA)
end

-- Thread state, P rt:<account> field <thread>: records joined by ';', replies in event-time
-- order (docs/insights.md, "Out of order"):
--   "o,<msg_ts>,<msg_biz>,<deadline>,<breached>,<alert_at>"  the open wait (at most one; it
--        starts after every reply kept); alert_at: when the tick breaches it
--   "p,<reply_ts>,<reply_biz>,<expires>"                     a reply that ended no wait (yet)
--   "a,<reply_ts>,<reply_biz>,<expires>,<msg_ts>,<msg_biz>"  a reply that ended the wait that
--        started at msg_ts
-- A reply is kept until expires (processing time, response.reorder after it arrived or
-- ended a wait) for messages that arrive after it but are older; at most MAX_REPLIES per
-- thread (beyond, the earliest in event time goes). P rt:due orders the threads by when the
-- tick must look again: the open wait's alert_at or the first expiry.
local MAX_REPLIES = 32

local function thread_load(ins, key, thread)
  local raw = call('HGET', key, thread)
  local st = {replies = {}}
  if not raw then
    return st
  end
  for rec in string.gmatch(raw, '[^;]+') do
    local t = {}
    for x in string.gmatch(rec, '[^,]+') do
      t[#t + 1] = x
    end
    if t[1] == 'o' then
      -- (a record written before alert_at was kept alerts at its deadline)
      local alert_at = tonumber(t[6] or '') or tonumber(t[4])
      st.open = {ts = tonumber(t[2]), biz = tonumber(t[3]), deadline = tonumber(t[4]),
                 breached = t[5] == '1', alert_at = alert_at}
    else
      local r = {ts = tonumber(t[2]), biz = tonumber(t[3]),
                 exp = tonumber(t[4] or '') or ins.now + ins.reorder}
      if t[1] == 'a' then
        r.mts, r.mbiz = tonumber(t[5]), tonumber(t[6])
      end
      st.replies[#st.replies + 1] = r
    end
  end
  return st
end

local function thread_save(key, thread, member, st)
  local recs, due = {}, nil
  local o = st.open
  if o then
    recs[1] = 'o,' .. fmt(o.ts) .. ',' .. fmt(o.biz) .. ',' .. fmt(o.deadline) .. ',' ..
              (o.breached and '1' or '0') .. ',' .. fmt(o.alert_at)
    if not o.breached then
      due = o.alert_at
    end
  end
  local rs = st.replies
  while #rs > MAX_REPLIES do
    table.remove(rs, 1)
  end
  for _, r in ipairs(rs) do
    local head = fmt(r.ts) .. ',' .. fmt(r.biz) .. ',' .. fmt(r.exp)
    if r.mts then
      recs[#recs + 1] = 'a,' .. head .. ',' .. fmt(r.mts) .. ',' .. fmt(r.mbiz)
    else
      recs[#recs + 1] = 'p,' .. head
    end
    if not due or r.exp < due then
      due = r.exp
    end
  end
  if #recs == 0 then
    call('HDEL', key, thread)
    call('ZREM', P .. 'rt:due', member)
    return
  end
  call('HSET', key, thread, table.concat(recs, ';'))
  if due then
    call('ZADD', P .. 'rt:due', due, member)
  else
    call('ZREM', P .. 'rt:due', member) -- a breached wait: nothing to do until its reply
  end
end

local function open_count(ins, account)
  local c = ins.open[account]
  if c == nil then
    c = tonumber(call('HGET', P .. 'rt:open', account) or '0')
  end
  return c
end

-- rt:open keeps a field only for accounts with open waits, so it stays bounded by them.
local function open_add(ins, account, d)
  ins.open[account] = open_count(ins, account) + d
  if call('HINCRBY', P .. 'rt:open', account, d) == 0 then
    call('HDEL', P .. 'rt:open', account)
  end
end

-- Retention of P rt:<account>: the first message or reply of an account in a call pushes
-- its expiry at once, and EXPIREAT's answer says whether the hash exists. When it does
-- not (a new account, or one whose hash expired after idle_days without a message or
-- reply), any open count left in rt:open belongs to waits that are gone: it is cleared,
-- and the hash the call creates gets its expiry with the call's other keys (retain()).
local function thread_retain(ins, account, key)
  if not expire_at or ins.rt_new[account] ~= nil then
    return
  end
  if call('EXPIREAT', key, expire_at) == 1 then
    ins.rt_new[account] = false
    return
  end
  ins.rt_new[account] = true
  touch(key)
  if open_count(ins, account) ~= 0 then
    ins.open[account] = 0
    call('HDEL', P .. 'rt:open', account)
  end
end

local function links(ins, at, bump)
  local i = at + 1
  for _ = 1, tonumber(ARGV[at]) do
    local t, account, a, b, c = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    local ts, biz, x = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
    i = i + 8
    local e = 'a:' .. account
    if t == 'm' or t == 'r' then
      local key, member = P .. 'rt:' .. account, account .. '\n' .. a
      thread_retain(ins, account, key)
      local st = thread_load(ins, key, a)
      local rs = st.replies
      -- A wait's answer and response times, counted in the minute of the message that
      -- started it, like `threads`: a window's answered waits are among the waits it
      -- opened, so answered <= threads in every window. sign -1 takes one back.
      local function timed(msg_ts, msg_biz, reply_ts, reply_biz, sign)
        local minute = floor(msg_ts / 60000)
        local frt = reply_ts - msg_ts
        local frtb = reply_biz - msg_biz
        if frtb < 0 then
          frtb = 0
        end
        bump(minute, e, 'answered', sign)
        bump(minute, e, 'frt_ms', sign * frt)
        bump(minute, e, 'frtb_ms', sign * frtb)
        bump(minute, e, 'frt_' .. frt_bucket(frt), sign)
        bump(minute, e, 'frtb_' .. frt_bucket(frtb), sign)
      end
      -- Reply r ends the wait that started at msg_ts; it stays reorder_ms so that later
      -- messages older than it are seen to belong to that wait.
      local function use(r, msg_ts, msg_biz)
        r.mts, r.mbiz = msg_ts, msg_biz
        r.exp = math.max(r.exp, ins.now + ins.reorder)
        timed(msg_ts, msg_biz, r.ts, r.biz, 1)
      end
      local function move_start(from_ts, to_ts)
        bump(floor(from_ts / 60000), e, 'threads', -1)
        bump(floor(to_ts / 60000), e, 'threads', 1)
      end
      if t == 'm' then
        local function open()
          bump(floor(ts / 60000), e, 'threads', 1)
          if open_count(ins, account) >= ins.max_open then
            call('HINCRBY', P .. 'stats', 'response:untracked', 1)
            return
          end
          local alert_at = ts + x
          if alert_at < ins.now then
            -- Already overdue on arrival (a backlog): leave the reply reorder_ms to arrive.
            alert_at = ins.now + ins.reorder
          end
          st.open = {ts = ts, biz = biz, deadline = ts + x, breached = false, alert_at = alert_at}
          open_add(ins, account, 1)
        end
        -- The first reply kept at or after the message in event time.
        local r = nil
        for _, y in ipairs(rs) do
          if y.ts >= ts then
            r = y
            break
          end
        end
        if r and r.mts then
          if ts < r.mts then
            -- An earlier message of a wait already answered (no reply between): the wait
            -- starts here instead.
            timed(r.mts, r.mbiz, r.ts, r.biz, -1)
            move_start(r.mts, ts)
            use(r, ts, biz)
          end
          -- else the message is inside that answered wait: it changes nothing
        elseif r then
          -- The reply came first (out of order) and answers this message.
          bump(floor(ts / 60000), e, 'threads', 1)
          use(r, ts, biz)
        elseif st.open then
          local o = st.open
          if ts < o.ts and not o.breached then
            -- An earlier message of the same wait arrived late: the wait starts there.
            move_start(o.ts, ts)
            o.ts, o.biz, o.deadline = ts, biz, ts + x
            o.alert_at = math.max(ts + x, ins.now + ins.reorder)
          end
        else
          open() -- every reply kept predates this message: none answers it
        end
      else -- reply
        local o = st.open
        local r = {ts = ts, biz = biz, exp = ins.now + ins.reorder}
        if o and ts >= o.ts then
          -- The open wait starts after every kept reply, so r goes last.
          st.open = nil
          open_add(ins, account, -1)
          rs[#rs + 1] = r
          use(r, o.ts, o.biz)
          if o.breached then
            local msg_ts, reply_ts, frt = o.ts, ts, ts - o.ts
            alert(ins, 'sla', 'sla:' .. account .. ':' .. a .. ':' .. fmt(msg_ts) .. ':resolved',
                  account, {thread_id = a, to = 'resolved', message_ts_ms = msg_ts,
                            sla_ms = o.deadline - msg_ts, reply_ts_ms = reply_ts, waited_ms = frt})
          end
        else
          -- No open wait at or before it: kept reorder_ms (processing time) for its message.
          local at = #rs + 1
          while at > 1 and rs[at - 1].ts > ts do
            at = at - 1
          end
          table.insert(rs, at, r)
        end
      end
      thread_save(key, a, member, st)
    elseif t == 'f' then
      -- Referral: the visitor a came through referrer b (may be '') via source c. The
      -- latest referral before a conversion is the one credited.
      local key = P .. 'ref:' .. account
      local old = call('HGET', key, a)
      local old_ts = old and tonumber(string.match(old, '\t([^\t]*)$')) or nil
      if not old_ts or old_ts <= ts then
        call('HSET', key, a, b .. '\t' .. c .. '\t' .. fmt(ts))
        touch(key)
        call('ZADD', P .. 'ref:due', math.max(ts, ins.now) + ins.ref_window, account .. '\n' .. a)
      end
    else -- conversion of user a, value x cents
      if x ~= 0 then
        call('ZINCRBY', P .. 'cv:direct:' .. account, x, a)
        touch(P .. 'cv:direct:' .. account)
      end
      local key = P .. 'ref:' .. account
      local function referral_of(user)
        local raw = call('HGET', key, user)
        if not raw then
          return nil
        end
        local r, src, rts = string.match(raw, '^(.-)\t(.-)\t(.*)$')
        rts = tonumber(rts)
        if rts and rts <= ts and ts - rts <= ins.ref_window then
          return r, src
        end
        return nil
      end
      local r, src = referral_of(a)
      if r then
        local minute = floor(ts / 60000)
        bump(minute, e, 'indirect_conversions', 1)
        bump(minute, e, 'indirect_value_cents', x)
        if src ~= '' then
          local s = admitted(ins, account, src) and ('s:' .. account .. '|' .. src) or
                    ('s:' .. account .. '|other')
          bump(minute, s, 'indirect_conversions', 1)
          bump(minute, s, 'indirect_value_cents', x)
        end
        -- Every referrer up the chain (at most max_depth, each once) earns the value as
        -- indirect customer value.
        local seen, depth = {[a] = true}, 0
        while r and r ~= '' and not seen[r] and depth < ins.max_depth do
          seen[r] = true
          depth = depth + 1
          if x ~= 0 then
            call('ZINCRBY', P .. 'cv:indirect:' .. account, x, r)
            touch(P .. 'cv:indirect:' .. account)
          end
          r = referral_of(r)
        end
      end
    end
  end
end

-- Tick: SLA deadlines and kept replies that are due, referrals past their window, and
-- the goal section: n, {id, account, metric, kind, start_day, end_day, baseline, current,
-- target, expected, progress_pct, on_track, reached, ended}*n (computed by the processor,
-- metrics/goals.c); the script keeps them and alerts once per transition.
local function insights_tick(ins, i)
  local due = call('ZRANGEBYSCORE', P .. 'rt:due', '-inf', ins.now, 'LIMIT', 0, 1000)
  for _, m in ipairs(due) do
    local account, thread = string.match(m, '^(.-)\n(.*)$')
    local key = P .. 'rt:' .. account
    local st = thread_load(ins, key, thread)
    local o = st.open
    if o and not o.breached and o.alert_at <= ins.now then
      alert(ins, 'sla', 'sla:' .. account .. ':' .. thread .. ':' .. fmt(o.ts), account,
            {thread_id = thread, to = 'breached', message_ts_ms = o.ts,
             sla_ms = o.deadline - o.ts, waited_ms = ins.now - o.ts})
      o.breached = true
    end
    local kept = {}
    for _, r in ipairs(st.replies) do
      if r.exp > ins.now then
        kept[#kept + 1] = r
      end
    end
    st.replies = kept
    thread_save(key, thread, m, st)
  end
  local old = call('ZRANGEBYSCORE', P .. 'ref:due', '-inf', ins.now, 'LIMIT', 0, 1000)
  for _, m in ipairs(old) do
    local account, user = string.match(m, '^(.-)\n(.*)$')
    call('HDEL', P .. 'ref:' .. account, user)
    call('ZREM', P .. 'ref:due', m)
  end
  local n = tonumber(ARGV[i] or '0') or 0
  i = i + 1
  for _ = 1, n do
    local id, account = ARGV[i], ARGV[i + 1]
    local key = P .. 'goal:' .. id
    local prev = call('HMGET', key, 'on_track', 'reached', 'seq')
    local seq = tonumber(prev[3]) or 0
    local g = {goal_id = id, metric = ARGV[i + 2], kind = ARGV[i + 3],
               start_day = tonumber(ARGV[i + 4]), end_day = tonumber(ARGV[i + 5]),
               baseline = tonumber(ARGV[i + 6]), current = tonumber(ARGV[i + 7]),
               target = tonumber(ARGV[i + 8]), expected = tonumber(ARGV[i + 9]),
               progress_pct = tonumber(ARGV[i + 10])}
    local on_track, reached, ended = ARGV[i + 11], ARGV[i + 12], ARGV[i + 13]
    i = i + 14
    local function goal_alert(to)
      seq = seq + 1
      g.to = to
      alert(ins, 'goal', 'goal:' .. id .. ':' .. seq, account, g)
    end
    if reached == '1' and prev[2] ~= '1' then
      goal_alert('reached')
    end
    if on_track == '0' and prev[1] ~= '0' and reached ~= '1' then
      goal_alert('off_track')
    end
    call('HSET', key, 'account', account, 'metric', g.metric, 'kind', g.kind,
         'start_day', ARGV[i - 10], 'end_day', ARGV[i - 9], 'baseline', ARGV[i - 8],
         'current', ARGV[i - 7], 'target', ARGV[i - 6], 'expected', ARGV[i - 5],
         'progress_pct', ARGV[i - 4], 'on_track', on_track, 'reached', reached,
         'ended', ended, 'seq', seq, 'updated_ms', ins.now)
    touch(key)
  end
end


-- Counters: one hash per entity, P{<shard>}:<entity>, whose fields are time buckets
-- holding the entity's counters packed as "name=value,..." (docs/redis-keys.md): t
-- (lifetime), m<minute> (kept MINUTE_KEEP minutes), h<hour> (kept HOUR_KEEP hours). A flush
-- adds its deltas to the buckets they fall in: one HMGET and one HSET per entity, however
-- many metrics and minutes it carries. Nothing here knows windows: readers sum buckets
-- (connectors/lua/smm_lib.lua). Each post's new engagement in a bucket also goes to that
-- bucket's leaderboard P top:m<minute> / top:h<hour> / top:t (the top TOPN posts of the
-- bucket, exact scores: a ZADD of an absolute value, which a replay repeats harmlessly).
local MINUTE_KEEP, HOUR_KEEP = 180, 192
local SHARDS = tonumber(ARGV[4])
local gmatch, concat = string.gmatch, table.concat

local function shard_of(ent)
  return tonumber(string.sub(redis.sha1hex(ent), 1, 8), 16) % SHARDS
end

local function packed_add(s, deltas)
  local v = {}
  if s then
    for name, x in gmatch(s, '([^,=]+)=([^,]+)') do
      v[name] = tonumber(x)
    end
  end
  for name, d in pairs(deltas) do
    v[name] = (v[name] or 0) + d
  end
  local out, n = {}, 0
  for name, x in pairs(v) do
    if x ~= 0 then
      n = n + 1
      out[n] = name .. '=' .. fmt(x)
    end
  end
  return concat(out, ','), v.engagement or 0
end

-- Drops bucket fields past their keep (at most once an hour per entity: field p).
local function prune(key, pruned)
  if pruned and now_min - tonumber(pruned) < 60 then
    return
  end
  local gone = {}
  for _, f in ipairs(call('HKEYS', key)) do
    local at = string.byte(f, 1) == 108 and 2 or 1 -- "l": a link bucket (write_links)
    local kind, n = string.byte(f, at), tonumber(string.sub(f, at + 1))
    if n and ((kind == 109 and n <= now_min - MINUTE_KEEP) or
              (kind == 104 and n <= floor(now_min / 60) - HOUR_KEEP)) then
      gone[#gone + 1] = f
    end
  end
  range_call('HDEL', key, gone)
  call('HSET', key, 'p', now_min)
end

local counter_conflicts = {}

-- The buckets per-minute deltas {minute = {metric = delta}} add to: fields[1] (the
-- lifetime bucket, pre .. 't') gets their sum, and pre .. 'm<minute>' and pre .. 'h<hour>'
-- are appended to fields for each minute and hour still kept, deltas[j] for fields[j].
local function bucket_fields(minutes, pre, fields, deltas)
  local now_hour = floor(now_min / 60)
  local total, hours = {}, {}
  for minute, b in pairs(minutes) do
    for name, d in pairs(b) do
      total[name] = (total[name] or 0) + d
    end
    if minute > now_min - MINUTE_KEEP then
      fields[#fields + 1] = pre .. 'm' .. minute
      deltas[#fields] = b
    end
    local hour = floor(minute / 60)
    if hour > now_hour - HOUR_KEEP then
      local h = hours[hour]
      if not h then
        h = {}
        hours[hour] = h
      end
      for name, d in pairs(b) do
        h[name] = (h[name] or 0) + d
      end
    end
  end
  for hour, h in pairs(hours) do
    fields[#fields + 1] = pre .. 'h' .. hour
    deltas[#fields] = h
  end
  deltas[1] = total
end

-- What the links yield (answers and response times, threads, indirect conversions: no
-- other counter) goes to link buckets lt, lm<minute> and lh<hour> of the account's or
-- source's hash, beside the buckets the processor computes, which it leaves as they are:
-- neither v nor p moves, so the processor's copy of the hash still holds. Readers add
-- both (connectors/lua/smm_lib.lua); prune() drops both.
local function write_links(lents, lent_list)
  for _, ent in ipairs(lent_list) do
    local key = P .. '{' .. shard_of(ent) .. '}:' .. ent
    local fields, deltas = {'lt'}, {}
    bucket_fields(lents[ent], 'l', fields, deltas)
    local got = call('HMGET', key, unpack(fields))
    local sets, dels = {}, {}
    for j = 1, #fields do
      local packed = packed_add(got[j], deltas[j])
      if packed == '' then
        dels[#dels + 1] = fields[j]
      else
        sets[#sets + 1] = fields[j]
        sets[#sets + 1] = packed
      end
    end
    if #sets > 0 then
      call('HSET', key, unpack(sets))
    end
    if #dels > 0 then
      call('HDEL', key, unpack(dels))
    end
    -- Retention: an account's own events are in this flush, whose counters move its
    -- expiry; a source may be credited here only (the referral's, not the conversion's):
    -- its expiry moves when a day or more behind, as the processor moves it.
    if expire_at and string.byte(ent, 1) == 115 and
       call('EXPIRETIME', key) < expire_at - 86400 then
      touch(key)
    end
  end
end

local function write_entities(ents, ent_list, parts)
  local tops = {} -- top key -> {score, member, ...}
  local function top_add(key, score, id)
    local t = tops[key]
    if not t then
      t = {ins = {}, del = {}}
      tops[key] = t
    end
    if score > 0 then
      t.ins[#t.ins + 1] = score
      t.ins[#t.ins + 1] = id
    else
      t.del[#t.del + 1] = id
    end
  end
  for _, ent in ipairs(ent_list) do
    local shard = shard_of(ent)
    local key = P .. '{' .. shard .. '}:' .. ent
    -- The buckets this flush adds to: t, each kept minute, each kept hour (after p and v).
    local fields, deltas = {'t', 'p', 'v'}, {}
    bucket_fields(ents[ent], '', fields, deltas)
    local got = call('HMGET', key, unpack(fields))
    local sets, dels = {'v', (tonumber(got[3]) or 0) + 1}, {}
    local is_post = string.byte(ent, 1) == 99 and string.byte(ent, 2) == 58 -- "c:"
    local tkey = is_post and P .. 'top:' or nil
    for j = 1, #fields do
      if j ~= 2 and j ~= 3 then
        local packed, eng = packed_add(got[j], deltas[j])
        if packed == '' then
          dels[#dels + 1] = fields[j]
        else
          sets[#sets + 1] = fields[j]
          sets[#sets + 1] = packed
        end
        if tkey and deltas[j].engagement then
          top_add(tkey .. fields[j], eng, string.sub(ent, 3))
        end
      end
    end
    call('HSET', key, unpack(sets))
    if #dels > 0 then
      call('HDEL', key, unpack(dels))
    end
    if got[1] then
      prune(key, got[2])
    else
      call('HSET', key, 'p', now_min) -- a new hash: nothing to prune yet
    end
    touch(key)
  end
  -- Entities whose buckets the processor computed (processor/counters.h): each bucket's
  -- new value is written as it comes when the hash is still at the version v it was
  -- computed from. Otherwise another writer moved the hash first (partitions not keyed by
  -- content_id): the deltas sent beside the values are added as above and the hash is
  -- reported, so the processor loads it again. prune: '1' prune now, 'n' a new hash (p is
  -- set), '0' neither; expire_at '' = the expiry set before still holds.
  local tkey = P .. 'top:'
  for _, part in ipairs(parts) do
    local i = part.abs_at + 1
    for _ = 1, tonumber(ARGV[part.abs_at]) do
      local key, ent, base, prune_it, exp = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
      local f0 = i + 6
      i = f0 + 4 * tonumber(ARGV[i + 5])
      local stored = call('HGET', key, 'v') or '0'
      local sets, dels = {'v', (tonumber(stored) or 0) + 1}, {}
      local got = nil
      if stored ~= base then
        counter_conflicts[#counter_conflicts + 1] = key
        touch(key) -- (the processor's expiry may be older than what is stored, or lost)
        local fields = {'p'}
        for j = f0, i - 1, 4 do
          fields[#fields + 1] = ARGV[j]
        end
        got = call('HMGET', key, unpack(fields))
      end
      for j = f0, i - 1, 4 do
        local f, value, score = ARGV[j], ARGV[j + 1], ARGV[j + 3]
        if got then
          local d = {}
          for name, x in gmatch(ARGV[j + 2], '([^,=]+)=([^,]+)') do
            d[name] = tonumber(x)
          end
          local eng
          value, eng = packed_add(got[(j - f0) / 4 + 2], d)
          score = score ~= '' and eng or ''
        end
        if value == '' then
          dels[#dels + 1] = f
        else
          sets[#sets + 1] = f
          sets[#sets + 1] = value
        end
        if score ~= '' then
          top_add(tkey .. f, tonumber(score), string.sub(ent, 3))
        end
      end
      if prune_it == 'n' then
        sets[#sets + 1] = 'p'
        sets[#sets + 1] = now_min
      end
      call('HSET', key, unpack(sets))
      if #dels > 0 then
        call('HDEL', key, unpack(dels))
      end
      if prune_it == '1' then
        prune(key, nil)
      end
      if exp ~= '' then
        call('EXPIREAT', key, exp)
      end
    end
  end
  for key, t in pairs(tops) do
    range_call('ZADD', key, t.ins)
    range_call('ZREM', key, t.del)
    if #t.ins > 0 then
      call('ZREMRANGEBYRANK', key, 0, -(TOPN + 1))
    end
    local last = string.match(key, ':top:([mh]%d+)$')
    if last then
      local n = tonumber(string.sub(last, 2))
      if string.byte(last, 1) == 109 then
        call('EXPIREAT', key, (n + 1 + MINUTE_KEEP) * 60)
      else
        call('EXPIREAT', key, (n + 1 + HOUR_KEEP) * 3600)
      end
    end
  end
end

-- Mode 'check' opens a flush whose counter values go as plain commands (HSET, HDEL,
-- EXPIREAT, ZADD...) in a MULTI/EXEC with the rest of the flush, its 'flush' call without
-- the absolute section (connectors/redis_sink.c, "the plain path"). The caller has
-- WATCHed <P>offsets and <P>owner; this passes when every fence holds and every hash
-- listed is still at the version its values were computed from, and prunes the hashes due
-- for it (dropping buckets past their keep changes no figure). Every writer of a counter
-- hash moves <P>offsets and sets <P>wseq to a value of its own in the same atomic unit, so
-- no version checked here can move before the caller's EXEC without making it write
-- nothing, and while <P>wseq holds the caller's last value (mine) nobody else wrote any
-- hash since: reduced = '1' says the list leaves out the hashes that proves current
-- (processor/pipeline.c, proven()), and then it must hold. 'NO': the caller sends the
-- flush whole instead; 'SHARED': passed, but another writer committed since mine.
-- ARGV: common, mine, reduced, n, {key, base_v, prune}*n, n_parts,
--       {tp, token, base_offset, next_offset}*   -> 'OK', 'SHARED' or 'NO'
if MODE == 'check' then
  local alone = ARGV[6] ~= '' and call('GET', P .. 'wseq') == ARGV[6]
  if ARGV[7] == '1' and not alone then
    return 'NO'
  end
  local n = tonumber(ARGV[8])
  local at, i = 9, 9 + 3 * n
  for _ = 1, tonumber(ARGV[i]) do
    if call('HGET', P .. 'owner', ARGV[i + 1]) ~= ARGV[i + 2] or
       (call('HGET', P .. 'offsets', ARGV[i + 1]) or '-1') ~= ARGV[i + 3] then
      return 'NO'
    end
    i = i + 4
  end
  for j = at, at + 3 * n - 1, 3 do
    if (call('HGET', ARGV[j], 'v') or '0') ~= ARGV[j + 1] then
      return 'NO'
    end
  end
  for j = at, at + 3 * n - 1, 3 do
    if ARGV[j + 2] == '1' then
      prune(ARGV[j], nil)
    end
  end
  return alone and 'OK' or 'SHARED'
end

if MODE == 'flush' then
  -- 1. Fences. Nothing is written unless every partition passes.
  local n_parts = tonumber(ARGV[6])
  local parts = {}
  local i = 7
  local rejects = {}
  for pi = 1, n_parts do
    local part = {tp = ARGV[i], token = ARGV[i + 1], base = ARGV[i + 2], nxt = ARGV[i + 3]}
    i = i + 4
    -- Skip over this part's sections to find the next part.
    part.groups_at = i
    local n = tonumber(ARGV[i])
    i = i + 1
    for _ = 1, n do
      i = i + 4 + 2 * tonumber(ARGV[i + 3])
    end
    part.abs_at = i
    n = tonumber(ARGV[i])
    i = i + 1
    for _ = 1, n do
      i = i + 6 + 4 * tonumber(ARGV[i + 5])
    end
    part.sketches_at = i
    i = i + 1 + 5 * tonumber(ARGV[i])
    part.days_at = i
    i = i + 1 + 3 * tonumber(ARGV[i])
    part.stats_at = i
    i = i + 1 + 2 * tonumber(ARGV[i])
    part.links_at = i
    i = i + 1 + 8 * tonumber(ARGV[i])
    part.adm_at = i
    n = tonumber(ARGV[i])
    i = i + 1
    for _ = 1, n do
      i = i + 6 + 2 * tonumber(ARGV[i + 5]) -- key .. push, n_f, fields
      i = i + 1 + tonumber(ARGV[i])         -- n_del, fields
      local n_set = tonumber(ARGV[i])
      i = i + 1 + (n_set > 0 and n_set or 0)
    end
    parts[pi] = part
    local owner = redis.call('HGET', P .. 'owner', part.tp)
    if owner ~= part.token then
      rejects[#rejects + 1] = {pi, 'FENCED', owner or ''}
    else
      local stored = redis.call('HGET', P .. 'offsets', part.tp) or '-1'
      if stored ~= part.base then
        rejects[#rejects + 1] = {pi, stored == part.nxt and 'DUP' or 'STALE', stored}
      end
    end
  end
  if #rejects > 0 then
    return {'REJECT', rejects}
  end
  local viral_at = i
  local ins = insights_settings(viral_end(viral_at))
  ins.stream_max = ARGV[viral_at + 3] or ins.stream_max
  -- Daily account buckets (goals, long-range charts): the account fields of every minute,
  -- collected while the groups are read.
  local per_day, days = {}, {}
  local function day_set(minute)
    local day = floor(minute / 1440)
    local set = per_day[day]
    if not set then
      set = {}
      per_day[day] = set
      days[#days + 1] = day
    end
    return set
  end
  -- Counter deltas per entity and event-time minute: map[ent][minute][metric], each
  -- entity listed once in list. ents: the groups' (write_entities), lents: what the links
  -- yield (write_links: the entity's link buckets, so that its own buckets stay as the
  -- processor computed them).
  local function bucket_in(map, list, ent, minute)
    local e = map[ent]
    if not e then
      e = {}
      map[ent] = e
      list[#list + 1] = ent
    end
    local b = e[minute]
    if not b then
      b = {}
      e[minute] = b
    end
    return b
  end
  local ents, ent_list, lents, lent_list = {}, {}, {}, {}
  local function bucket(ent, minute)
    return bucket_in(ents, ent_list, ent, minute)
  end
  -- A counter a link yields: metric of entity ent ("a:<account>", "s:<account>|<source>").
  local function bump(minute, ent, metric, d)
    local b = bucket_in(lents, lent_list, ent, minute)
    b[metric] = (b[metric] or 0) + d
    if string.byte(ent, 1) == 97 then -- "a:"
      local dd = day_set(minute)
      local f = ent .. ':' .. metric
      dd[f] = (dd[f] or 0) + d
    end
  end

  -- 2. Admission sketches (metrics/admission.h): the processor fed them and decided which
  -- breakdown values keep their own series (the others already come as their account's
  -- "other"); their changed fields are written under the version they were computed from.
  -- A sketch another writer moved stays as stored and is reported: the processor loads it
  -- again. First of all, so that referrals below read the admitted sets as decided.
  for _, part in ipairs(parts) do
    i = part.adm_at + 1
    for _ = 1, tonumber(ARGV[part.adm_at]) do
      local key, base, skey, x_at, push = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
      local f0 = i + 6
      i = f0 + 2 * tonumber(ARGV[i + 5])
      local d0 = i + 1
      i = d0 + tonumber(ARGV[i])
      local n_set = tonumber(ARGV[i])
      local s0 = i + 1
      i = s0 + (n_set > 0 and n_set or 0)
      local stored = call('HGET', key, 'v') or '0'
      if stored ~= base then
        counter_conflicts[#counter_conflicts + 1] = key
      else
        call('HSET', key, 'v', tonumber(stored) + 1)
        slice_call('HSET', key, f0, d0 - 2)
        slice_call('HDEL', key, d0, s0 - 2)
        if push == '1' then
          call('EXPIREAT', key, x_at)
        end
        if n_set >= 0 then
          call('DEL', skey)
          slice_call('SADD', skey, s0, i - 1)
        end
        if x_at ~= '' and (push == '1' or n_set > 0) then
          call('EXPIREAT', skey, x_at)
        end
      end
    end
  end

  -- 3. Counters: one delta set per event-time minute; lifetime gets their sum, each
  -- window the sum of the minutes it still holds (usually all of them: the same set).
  for _, part in ipairs(parts) do
    i = part.groups_at + 1
    for _ = 1, tonumber(ARGV[part.groups_at]) do
      local ent, minute, rated, k = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
      i = i + 4
      local cut = #ent + 2 -- the metric after "<entity>:"
      local d = bucket(ent, minute)
      if string.byte(ent, 1) == 97 then -- an account: its daily bucket too
        local dd = day_set(minute)
        for _ = 1, k do
          local f, v = ARGV[i], tonumber(ARGV[i + 1])
          local metric = string.sub(f, cut)
          d[metric] = (d[metric] or 0) + v
          dd[f] = (dd[f] or 0) + v
          i = i + 2
        end
      else
        for _ = 1, k do
          local metric = string.sub(ARGV[i], cut)
          d[metric] = (d[metric] or 0) + tonumber(ARGV[i + 1])
          i = i + 2
        end
      end
    end
  end
  -- The accounts of the absolute section (on the plain path their daily deltas come as
  -- plain HINCRBYs ahead of this call, and this section comes empty).
  for _, part in ipairs(parts) do
    i = part.days_at + 1
    for _ = 1, tonumber(ARGV[part.days_at]) do
      local dd, f = day_set(tonumber(ARGV[i])), ARGV[i + 1]
      dd[f] = (dd[f] or 0) + tonumber(ARGV[i + 2])
      i = i + 3
    end
  end
  -- Messages, replies, referrals and conversions: matched against state in Redis; what
  -- they yield (answers, response times, indirect conversions) are counters like the rest.
  for _, part in ipairs(parts) do
    links(ins, part.links_at, bump)
  end
  for _, day in ipairs(days) do
    hash_add(P .. 'd:' .. day, per_day[day])
    call('EXPIREAT', P .. 'd:' .. day, (day + 1 + ins.days_keep) * 86400)
  end
  write_entities(ents, ent_list, parts)
  write_links(lents, lent_list)

  -- 4. Reach. The users of sketches the processor does not hold came ahead of this call as
  -- plain PFADDs in its MULTI (processor/pipeline.c, reach_writes): adding a user twice
  -- changes nothing, so they need no fence, and they land together with the version move
  -- of their entity's hash, so no holder of that sketch writes it whole over them.
  -- Lifetime sketches the processor holds (processor/counters.h): written whole where the
  -- entity's hash passed its version check above (nobody else wrote it since the
  -- processor read it, so the sketch it holds is what is stored plus this batch) and the
  -- batch changed it; else merged into what is stored, which keeps the other writer's
  -- users too (or, after Redis came back from an older state, adds the users it lost).
  -- KEEPTTL: the processor sends the expiry when the sketch lacks one (expire_at '' = it
  -- has it). On the plain path (check passed: nothing to merge) the processor sends these
  -- SETs and EXPIREATs itself, in the MULTI with this call, and this section comes empty.
  local conflicted = {}
  for _, key in ipairs(counter_conflicts) do
    conflicted[key] = true
  end
  for _, part in ipairs(parts) do
    i = part.sketches_at + 1
    for _ = 1, tonumber(ARGV[part.sketches_at]) do
      local skey, exp = ARGV[i + 1], ARGV[i + 2]
      if conflicted[ARGV[i]] then
        local tmp = skey .. ':merge'
        call('SET', tmp, ARGV[i + 4])
        call('PFMERGE', skey, tmp)
        call('DEL', tmp)
        touch(skey)
      else
        if ARGV[i + 3] == '1' then
          call('SET', skey, ARGV[i + 4], 'KEEPTTL')
        end
        if exp ~= '' then
          call('EXPIREAT', skey, exp)
        end
      end
      i = i + 5
    end
  end

  -- 5. Exactly-once statistics, then the offsets.
  local st = {}
  for _, part in ipairs(parts) do
    i = part.stats_at + 1
    for _ = 1, tonumber(ARGV[part.stats_at]) do
      st[ARGV[i]] = (st[ARGV[i]] or 0) + tonumber(ARGV[i + 1])
      i = i + 2
    end
  end
  for f, d in pairs(st) do
    redis.call('HINCRBY', P .. 'stats', f, d)
  end
  local v = viral(viral_at, false)
  local offs = {}
  for _, part in ipairs(parts) do
    offs[#offs + 1] = part.tp
    offs[#offs + 1] = part.nxt
  end
  if #offs > 0 then
    redis.call('HSET', P .. 'offsets', unpack(offs))
  end
  retain()
  -- Who committed last (see mode 'check'); absent from callers that prove nothing by it.
  local wseq = ARGV[ins.next]
  if wseq and wseq ~= '' then
    redis.call('SET', P .. 'wseq', wseq)
  end
  return {'OK', v.changes, v.states, v.conflicts, counter_conflicts}
end

if MODE ~= 'tick' then
  return redis.error_reply('smm.lua: unknown mode ' .. tostring(MODE))
end

-- Merge each completed hour of per-account minute sketches into an hour sketch, and let
-- the minute sketches expire once no minute-granular window (up to 1 h) needs them.
local now_hour = math.floor(now_min / 60)
local minute_keep = 61
local merged = tonumber(redis.call('HGET', P .. 'meta', 'hour_merged') or (now_hour - 1))
if merged < now_hour - 48 then
  merged = now_hour - 48
end
-- The hour's set names each account minute sketch written (a:<id>\n<minute>), so a merge
-- reads only sketches that exist. At most ARGV[6] (reach.refresh_max) of them per tick, so
-- a tick stays short however many accounts an hour had: an hour counts as merged once its
-- set is empty, and until then readers count its minute sketches
-- (connectors/lua/smm_lib.lua). The processors write minute sketches and these sets ahead
-- of their flush calls, outside the script, so a sketch of an hour can be written just
-- after that hour's merge: the sets of the two hours before the next one to merge are
-- merged again whenever they hold members (until then, at most a tick, such users are
-- missing from the hour's sketch); older hours get their users straight from the processor.
local budget = tonumber(ARGV[6])
local merged_count = 0
-- Merges what the set of hour h holds, within the budget; returns the set's key.
local function merge_hour(h)
  local set = P .. 'reach_accounts:h:' .. h
  local members = budget > 0 and redis.call('SPOP', set, budget) or {}
  budget = budget - #members
  local srcs, order = {}, {} -- account -> its minute sketches popped now
  for _, member in ipairs(members) do
    local ent, m = string.match(member, '^(.*)\n(%-?%d+)$')
    if ent then
      if not srcs[ent] then
        srcs[ent] = {}
        order[#order + 1] = ent
      end
      srcs[ent][#srcs[ent] + 1] = m
    end
  end
  for _, ent in ipairs(order) do
    local hk = P .. ent .. ':reach:h:' .. h
    local keys = {}
    for x, m in ipairs(srcs[ent]) do
      keys[x] = P .. ent .. ':reach:m:' .. m
    end
    redis.call('PFMERGE', hk, unpack(keys)) -- (adds to what an earlier tick merged)
    redis.call('EXPIREAT', hk, (h * 60 + 60 + keep) * 60)
    -- Only after the merge: an expiry already past (a tick catching up on an hour more
    -- than 61 minutes old) deletes the minute sketch at once.
    for x, m in ipairs(srcs[ent]) do
      redis.call('EXPIREAT', keys[x], (tonumber(m) + 1 + minute_keep) * 60)
    end
  end
  return set
end
for h = merged - 1, merged do
  merge_hour(h)
end
for h = merged + 1, now_hour - 1 do
  if redis.call('SCARD', merge_hour(h)) > 0 then
    break
  end
  merged = h
  merged_count = merged_count + 1
end
redis.call('HSET', P .. 'meta', 'hour_merged', merged)

local v = viral(9, true)
if v.next and ARGV[v.next] then
  local ins = insights_settings(v.next)
  ins.stream_max = v.stream_max
  insights_tick(ins, ins.next)
end
retain()
return {'OK', merged_count, v.changes, v.states, v.conflicts}
