-- connectors/lua/flush.lua - apply one partition batch atomically with its offset.
--
-- Why a script: the counters, the reach sketches, the per-reason dead-letter counts and the
-- partition's next offset must change together or not at all, and a writer that lost the
-- partition must be refused. The script checks the owner token and the stored offset
-- (fence), then applies everything and stores the new offset. Replaying an applied batch
-- answers DUP and changes nothing.
--
-- Counters live in a few wide hashes (one per minute bucket, one per rolling window, one
-- for lifetime totals) so a batch costs O(hashes) commands, not O(entities): each hash is
-- updated with one HMGET and one HSET per chunk of fields. See docs/redis-keys.md.
--
-- The same script also runs the wall-clock tick (mode 'tick'): it retires minute buckets
-- that left a window (subtracting them from the window hash), merges completed hours of
-- the per-account minute reach sketches, and refreshes reach and er_reach fields.
--
-- Common ARGV: mode, prefix, now_minute, windows ("5:5m,60:1h,1440:24h"), keep_minutes.
-- flush: tp, token, base_offset, next_offset,
--        n_groups, {kind, id, minute, k, {metric, delta}*k}*n_groups,
--        n_reach, {kind, id, k, {minute, user}*k}*n_reach, n_stats, {field, delta}*n_stats
--        -> {'OK'} | {'FENCED', owner} | {'STALE', stored} | {'DUP', stored}
-- tick:  n_refresh, {kind, id}*n_refresh -> {'OK', retired_minutes, merged_hours}
local MODE, P = ARGV[1], ARGV[2]
local now_min = tonumber(ARGV[3])
local keep = tonumber(ARGV[5])
local CHUNK = 2000

local function fmt(v)
  if v == math.floor(v) then
    return string.format('%d', v)
  end
  return string.format('%.6f', v)
end

local function range_call(cmd, key, list)
  for s = 1, #list, CHUNK do
    redis.call(cmd, key, unpack(list, s, math.min(s + CHUNK - 1, #list)))
  end
end

-- Windows and their retirement markers (minutes <= marker have left the window).
local wins = {}
local wfields = {}
for len, label in string.gmatch(ARGV[4], '(%d+):(%w+)') do
  wins[#wins + 1] = {len = tonumber(len), label = label}
  wfields[#wfields + 1] = 'retired:' .. label
end
local marks = redis.call('HMGET', P .. 'meta', unpack(wfields))
for i, w in ipairs(wins) do
  if marks[i] then
    w.retired = tonumber(marks[i])
  else
    w.retired = now_min - w.len
    redis.call('HSET', P .. 'meta', 'retired:' .. w.label, w.retired)
  end
end

-- targets[hash] = {deltas = {field = d}, ents = {entity = true}, derived, drop_zero}
local targets = {}
local function target(key, derived, drop_zero)
  local t = targets[key]
  if not t then
    t = {deltas = {}, ents = {}, derived = derived, drop_zero = drop_zero}
    targets[key] = t
  end
  return t
end
local function add(t, ent, metric, d)
  local f = ent .. ':' .. metric
  t.deltas[f] = (t.deltas[f] or 0) + d
  t.ents[ent] = true
end

-- Read-modify-write each target hash in chunks; recompute er_impr for touched entities.
local function apply_targets()
  for key, t in pairs(targets) do
    if t.derived then
      for ent in pairs(t.ents) do
        local fe, fi = ent .. ':engagement', ent .. ':impression'
        t.deltas[fe] = t.deltas[fe] or 0
        t.deltas[fi] = t.deltas[fi] or 0
      end
    end
    local fields = {}
    for f in pairs(t.deltas) do
      fields[#fields + 1] = f
    end
    local values = {}
    for s = 1, #fields, CHUNK do
      local e = math.min(s + CHUNK - 1, #fields)
      local got = redis.call('HMGET', key, unpack(fields, s, e))
      for j = s, e do
        values[fields[j]] = (tonumber(got[j - s + 1]) or 0) + t.deltas[fields[j]]
      end
    end
    local sets, dels = {}, {}
    for _, f in ipairs(fields) do
      local v = values[f]
      if v == 0 and t.drop_zero then
        dels[#dels + 1] = f
      elseif t.deltas[f] ~= 0 or not t.derived then
        sets[#sets + 1] = f
        sets[#sets + 1] = fmt(v)
      end
    end
    if t.derived then
      for ent in pairs(t.ents) do
        local impr = values[ent .. ':impression']
        if impr and impr > 0 then
          sets[#sets + 1] = ent .. ':er_impr'
          sets[#sets + 1] = string.format('%.4f', values[ent .. ':engagement'] * 100 / impr)
        else
          dels[#dels + 1] = ent .. ':er_impr'
        end
      end
    end
    range_call('HSET', key, sets)
    range_call('HDEL', key, dels)
  end
  targets = {}
end

if MODE == 'flush' then
local tp, token, base, nxt = ARGV[6], ARGV[7], ARGV[8], ARGV[9]

local owner = redis.call('HGET', P .. 'owner', tp)
if owner ~= token then
  return {'FENCED', owner or ''}
end
local stored = redis.call('HGET', P .. 'offsets', tp) or '-1'
if stored ~= base then
  if stored == nxt then
    return {'DUP', stored}
  end
  return {'STALE', stored}
end


local life = target(P .. 'total', true, false)
local buckets = {}
local i = 11
local n = tonumber(ARGV[10])
for _ = 1, n do
  local ent = ARGV[i] .. ':' .. ARGV[i + 1]
  local minute = tonumber(ARGV[i + 2])
  local k = tonumber(ARGV[i + 3])
  i = i + 4
  local bkey = P .. 'm:' .. minute
  local b = target(bkey, false, false)
  buckets[minute] = true
  local ws = {}
  for _, w in ipairs(wins) do
    if minute > w.retired then
      ws[#ws + 1] = target(P .. 'w:' .. w.label, true, true)
    end
  end
  for _ = 1, k do
    local metric, d = ARGV[i], tonumber(ARGV[i + 1])
    i = i + 2
    add(b, ent, metric, d)
    add(life, ent, metric, d)
    for _, t in ipairs(ws) do
      add(t, ent, metric, d)
    end
  end
end

apply_targets()
for minute in pairs(buckets) do
  redis.call('EXPIREAT', P .. 'm:' .. minute, (minute + 1 + keep) * 60)
  redis.call('ZADD', P .. 'minutes', minute, minute)
end

-- Reach: HyperLogLogs are idempotent, but they still ride in the same unit as the offset.
local merged = tonumber(redis.call('HGET', P .. 'meta', 'hour_merged') or '-1')
n = tonumber(ARGV[i])
i = i + 1
local hour_accts = {}
for _ = 1, n do
  local kind, id, k = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local base_key = P .. kind .. ':' .. id .. ':reach'
  local all, per_min = {}, {}
  for _ = 1, k do
    local minute, user = ARGV[i], ARGV[i + 1]
    i = i + 2
    all[#all + 1] = user
    if kind == 'a' then
      local l = per_min[minute]
      if not l then
        l = {}
        per_min[minute] = l
      end
      l[#l + 1] = user
    end
  end
  range_call('PFADD', base_key, all)
  for minute, users in pairs(per_min) do
    local m = tonumber(minute)
    local hour = math.floor(m / 60)
    local mkey = base_key .. ':m:' .. minute
    range_call('PFADD', mkey, users)
    local set = hour_accts[hour]
    if not set then
      set = {}
      hour_accts[hour] = set
    end
    set[#set + 1] = id
    if hour <= merged then
      -- A late event for an hour already merged: add it to the hour sketch too.
      local hkey = base_key .. ':h:' .. hour
      range_call('PFADD', hkey, users)
      redis.call('EXPIREAT', mkey, (m + 1 + keep) * 60)
    end
  end
end
for hour, ids in pairs(hour_accts) do
  local hkey = P .. 'reach_accounts:h:' .. hour
  range_call('SADD', hkey, ids)
  redis.call('EXPIREAT', hkey, (hour * 60 + 60 + keep) * 60)
end

n = tonumber(ARGV[i])
i = i + 1
if n > 0 then
  local st = {}
  for _ = 1, n do
    st[#st + 1] = ARGV[i]
    st[#st + 1] = ARGV[i + 1]
    i = i + 2
  end
  for s = 1, #st, 2 do
    redis.call('HINCRBY', P .. 'stats', st[s], st[s + 1])
  end
end

redis.call('HSET', P .. 'offsets', tp, nxt)
return {'OK'}
end

if MODE ~= 'tick' then
  return redis.error_reply('smm.lua: unknown mode ' .. tostring(MODE))
end

-- 1. Retire minutes that left each window: subtract their bucket from the window hash.
local refresh = {}      -- entity -> true, for the reach refresh below
local longest = wins[#wins]
local retired_count = 0
for _, w in ipairs(wins) do
  local goal = now_min - w.len
  if goal > w.retired then
    local minutes = redis.call('ZRANGEBYSCORE', P .. 'minutes', '(' .. w.retired, goal)
    local t = target(P .. 'w:' .. w.label, true, true)
    for _, minute in ipairs(minutes) do
      local kv = redis.call('HGETALL', P .. 'm:' .. minute)
      for j = 1, #kv, 2 do
        local f = kv[j]
        local ent, metric = string.match(f, '^(.*):([%w_]+)$')
        if ent then
          add(t, ent, metric, -tonumber(kv[j + 1]))
          if string.sub(ent, 1, 2) == 'a:' then
            refresh[ent] = true
          end
        end
      end
      retired_count = retired_count + 1
    end
    apply_targets()
    redis.call('HSET', P .. 'meta', 'retired:' .. w.label, goal)
    w.retired = goal
    if w == longest then
      for _, minute in ipairs(minutes) do
        redis.call('DEL', P .. 'm:' .. minute)
      end
      redis.call('ZREMRANGEBYSCORE', P .. 'minutes', '-inf', goal)
    end
  end
end

-- 2. Merge each completed hour of per-account minute sketches into an hour sketch, and
-- let the minute sketches expire once no minute-granular window needs them.
local now_hour = math.floor(now_min / 60)
local minute_keep = 61
for _, w in ipairs(wins) do
  if w.len <= 60 and w.len + 1 > minute_keep then
    minute_keep = w.len + 1
  end
end
local merged = tonumber(redis.call('HGET', P .. 'meta', 'hour_merged') or (now_hour - 1))
if merged < now_hour - 48 then
  merged = now_hour - 48
end
local merged_count = 0
for h = merged + 1, now_hour - 1 do
  local ids = redis.call('SMEMBERS', P .. 'reach_accounts:h:' .. h)
  for _, id in ipairs(ids) do
    local base_key = P .. 'a:' .. id .. ':reach'
    local srcs = {}
    for m = h * 60, h * 60 + 59 do
      srcs[#srcs + 1] = base_key .. ':m:' .. m
    end
    redis.call('PFMERGE', base_key .. ':h:' .. h, unpack(srcs))
    redis.call('EXPIREAT', base_key .. ':h:' .. h, (h * 60 + 60 + keep) * 60)
    for _, k in ipairs(srcs) do
      redis.call('EXPIREAT', k, (tonumber(string.match(k, '(%d+)$')) + 1 + minute_keep) * 60)
    end
    refresh['a:' .. id] = true
  end
  merged_count = merged_count + 1
end
if merged < now_hour - 1 or redis.call('HEXISTS', P .. 'meta', 'hour_merged') == 0 then
  redis.call('HSET', P .. 'meta', 'hour_merged', now_hour - 1)
end

-- 3. Refresh reach and er_reach: lifetime for contents and accounts, windows for accounts.
local n = tonumber(ARGV[6])
local i = 7
for _ = 1, n do
  refresh[ARGV[i] .. ':' .. ARGV[i + 1]] = true
  i = i + 2
end
local function set_rate(key, ent, reach)
  if reach > 0 then
    local eng = tonumber(redis.call('HGET', key, ent .. ':engagement') or '0')
    redis.call('HSET', key, ent .. ':reach', reach, ent .. ':er_reach',
               string.format('%.4f', eng * 100 / reach))
  else
    redis.call('HDEL', key, ent .. ':reach', ent .. ':er_reach')
  end
end
for ent in pairs(refresh) do
  local base_key = P .. ent .. ':reach'
  set_rate(P .. 'total', ent, redis.call('PFCOUNT', base_key))
  if string.sub(ent, 1, 2) == 'a:' then
    for _, w in ipairs(wins) do
      local keys = {}
      local first = now_min - w.len + 1
      if w.len <= 60 then
        for m = first, now_min do
          keys[#keys + 1] = base_key .. ':m:' .. m
        end
      else
        for m = now_hour * 60, now_min do
          keys[#keys + 1] = base_key .. ':m:' .. m
        end
        for h = math.floor(first / 60), now_hour - 1 do
          keys[#keys + 1] = base_key .. ':h:' .. h
        end
      end
      set_rate(P .. 'w:' .. w.label, ent, redis.call('PFCOUNT', unpack(keys)))
    end
  end
end
return {'OK', retired_count, merged_count}
