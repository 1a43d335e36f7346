#!lua name=smm
-- connectors/lua/smm_lib.lua - the Redis Function library `smm`: every figure a reader
-- takes from the counters (docs/redis-keys.md, "Reading: the Function library smm").
--
-- Why a library: counters are stored once per entity, in time buckets (fields m<minute>,
-- h<hour>, t of the hash <prefix>{<shard>}:<entity>), and a window is the sum of its
-- buckets computed when read. Summing, the derived rates and the leaderboard's exact
-- re-scoring need many small reads of one hash or shard; doing them next to the data in
-- one call keeps every reader (HTTP API, dashboard, redis-cli) to one round trip per
-- figure, and keeps the window rules in one place. smm-processor installs it at connect
-- with FUNCTION LOAD REPLACE (connectors/redis_sink.c); the functions never write.
--
-- Flags. smm_top and smm_series are `no-writes` (FCALL_RO works, also on a replica).
-- smm_get and smm_mget count reach with PFCOUNT, which Redis (7.0 and later) refuses in
-- any no-writes script because PFCOUNT may rewrite the cached cardinality of a sketch:
-- they are registered without `no-writes` (call them with FCALL; FCALL_RO refuses them)
-- and with `allow-oom`, so reads keep working when Redis is at maxmemory. Reading the
-- sketches' bytes with GET and estimating in Lua would keep them read-only, but costs
-- about 1.3 ms per dense sketch against 40 us for PFCOUNT (a 48-hour account reach unions
-- ~110 sketches).
--
-- Arguments (the key prefix is always first; <minute> = floor(epoch_ms / 60000), the
-- server clock's minute when omitted or ''):
--   FCALL smm_get 0 <prefix> <entity> <window> [<minute>]
--     -> name, value, ...: the window's nonzero counters sorted by name, then er_impr,
--        reach, er_reach where defined (all values strings)
--   FCALL smm_mget 0 <prefix> <window> <minute or ''> <m1,m2,...> <entity>...
--     -> entities x metrics, flat: a counter absent is "0", a derived metric that is not
--        defined (er_impr without impressions, reach of a kind or window without
--        sketches, er_reach without reach) is nil
--   FCALL_RO smm_top 0 <prefix> <window> <n> [<minute>]
--     -> content_id, engagement, ...: highest first, ties by id ascending, scores > 0
--   FCALL_RO smm_series 0 <prefix> <entity> m|h <from> <to> <m1,m2,...>
--     -> buckets from..to x metrics, flat, counters only, "0" where absent
-- Windows: `<n>m`, `<n>h`, `<n>d` or `total`. Up to 180 minutes: minute fields
-- now-n < k <= now. Longer, up to 8 days: minute fields of the current hour so far plus
-- the ceil(n/60) whole hours before it (hour-granular at the old edge). Account reach:
-- up to 60 minutes the window's minutes; up to 48 hours the current hour so far plus the
-- ceil(n/60) whole hours before it (hour-granular, like the counters); longer, the read
-- minute's UTC day sketch plus the ceil(n/1440) whole days before it (day-granular: 7d
-- covers 7 to 8 days), nil when the oldest of those days is more than 15 days before the
-- server clock's day (day sketches are kept 15 days). Within the first two, an hour wholly
-- inside the span is read from its hour sketch once `<prefix>meta hour_merged` has reached
-- it (or it is more than 48 hours, the most the tick merges, before the read minute), else
-- from its minute sketches (which expire about an hour after the merge).
-- No `<prefix>meta shards` means no data: empty or zero answers, not an error.
--
-- Cost (keep every call to a few ms; the processor's flushes wait behind it):
--   smm_get / smm_mget: per entity one HMGET of at most 60 + 192 fields, one PFCOUNT of
--     about 60 + hours sketches for an account window up to 48 h (at most ~3,000 keys,
--     nearly all missing, while hours are not merged; missing keys cost next to nothing),
--     at most 10 day sketches beyond.
--   smm_top: one ZREVRANGE of K = max(4n, 50) members per bucket of the window (1 for
--     total, the window's minutes, or the current hour's minutes + whole hours: 193 for
--     7d), then one HMGET of the window's fields for each of the 2n best candidates; n is
--     capped at 1000.
--   smm_get for an account's 7d window: 0.45 ms. smm_series: HMGETs of 1,000 fields for
--     at most 10,080 buckets.
-- Only globals of the callback environment are used inside functions: the library's
-- load-time environment has no string, math or table.

local MAX_MINUTES = 8 * 24 * 60 -- 8 days: the hour fields are kept 192 hours
local MINUTE_LIMIT = 180 -- minute fields are kept 180 minutes
local REACH_MINUTE_LIMIT = 60 -- minute sketches live about an hour after their hour merges
local MERGE_HORIZON = 48 -- the tick merges at most the last 48 hours: older ones are hours
local REACH_HOUR_LIMIT = 48 * 60 -- hour sketches are kept at least 49 hours after their hour
local DAY_KEEP = 15 -- day sketches are kept 15 days after their day
local MAX_SKETCHES = 7900 -- one PFCOUNT's keys must fit Lua's unpack (8,000 values)
local MAX_SERIES = 10080
local MAX_TOP = 1000
local DERIVED = {er_impr = true, reach = true, er_reach = true}

local function fail(msg)
  return redis.error_reply('ERR ' .. msg)
end

-- Minute to read at: the caller's, else the server clock's.
local function now_minute(arg)
  if arg ~= nil and arg ~= '' then
    local m = tonumber(arg)
    if not m or m ~= math.floor(m) then
      return nil, 'minute: not an integer: ' .. arg
    end
    return m
  end
  local t = redis.call('TIME')
  return math.floor(tonumber(t[1]) / 60)
end

-- A window label: {total = true} or {len = minutes}; nil and a reason when refused.
local function parse_window(label)
  if label == 'total' then
    return {total = true}
  end
  local n, unit = string.match(label or '', '^([1-9]%d*)([mhd])$')
  if not n then
    return nil, "window: unknown label '" .. tostring(label) .. "' (expected <n>m, <n>h, <n>d or total)"
  end
  local len = tonumber(n) * (unit == 'm' and 1 or unit == 'h' and 60 or 1440)
  if len > MAX_MINUTES then
    return nil, "window: '" .. label .. "' is longer than 8 days (hour buckets are kept 192 hours)"
  end
  return {len = len}
end

-- The bucket fields of a window read at minute now: {'t'}, or m<k> and h<k> names.
local function window_fields(w, now)
  if w.total then
    return {'t'}
  end
  local f = {}
  if w.len <= MINUTE_LIMIT then
    for k = now - w.len + 1, now do
      f[#f + 1] = 'm' .. k
    end
    return f
  end
  local hour = math.floor(now / 60)
  for k = hour * 60, now do
    f[#f + 1] = 'm' .. k
  end
  for h = hour - math.ceil(w.len / 60), hour - 1 do
    f[#f + 1] = 'h' .. h
  end
  return f
end

local function shard_count(P)
  local s = tonumber(redis.call('HGET', P .. 'meta', 'shards') or '')
  if not s or s < 1 then
    return nil
  end
  return s
end

local function entity_key(P, S, ent)
  return P .. '{' .. (tonumber(string.sub(redis.sha1hex(ent), 1, 8), 16) % S) .. '}:' .. ent
end

-- Adds the packed counters of one field value ("name=value,...") into acc.
local function add_packed(acc, s)
  if s then
    for name, v in string.gmatch(s, '([^,=]+)=(-?%d+)') do
      acc[name] = (acc[name] or 0) + tonumber(v)
    end
  end
end

-- An account's or a source's hash also holds link buckets, l<bucket> (lt, lm<k>, lh<k>):
-- what its messages, replies, referrals and conversions yield, written apart by the state
-- script (write_links in smm.lua). Their counters add to the bucket's.
local function has_links(ent)
  local c = string.byte(ent, 1)
  return (c == 97 or c == 115) and string.byte(ent, 2) == 58 -- "a:", "s:"
end

-- The window's counters of one entity: name -> sum.
local function sum_fields(P, S, ent, fields)
  local key, acc = entity_key(P, S, ent), {}
  if has_links(ent) then
    local both = {}
    for _, f in ipairs(fields) do
      both[#both + 1] = f
      both[#both + 1] = 'l' .. f
    end
    fields = both
  end
  for s = 1, #fields, 1000 do
    local e = math.min(s + 999, #fields)
    local got = redis.call('HMGET', key, unpack(fields, s, e))
    for j = 1, e - s + 1 do
      add_packed(acc, got[j])
    end
  end
  return acc
end

local function int(v)
  return string.format('%d', v)
end

local function rate(num, den)
  return string.format('%.4f', num / den * 100)
end

-- Reach of an entity in window w, or nil where no sketch holds it (kinds s: and v:,
-- windows of contents and segment values).
local function reach_of(P, ent, w, now)
  local kind = string.sub(ent, 1, 2)
  if w.total then
    if kind == 'c:' or kind == 'a:' or kind == 'g:' then
      return redis.call('PFCOUNT', P .. ent .. ':reach')
    end
    return nil
  end
  if kind ~= 'a:' then
    return nil
  end
  local base = P .. ent .. ':reach'
  local keys = {}
  if w.len > REACH_HOUR_LIMIT then
    -- Day-granular: the read minute's day sketch and the ceil(n/1440) whole days before.
    local day = math.floor(now / 1440)
    local first = day - math.ceil(w.len / 1440)
    local t = redis.call('TIME')
    if first < math.floor(tonumber(t[1]) / 86400) - DAY_KEEP then
      return nil -- its oldest day sketch has expired: an undercount is never published
    end
    for d = first, day do
      keys[#keys + 1] = base .. ':d:' .. d
    end
    return redis.call('PFCOUNT', unpack(keys))
  end
  local hour = math.floor(now / 60)
  local from = now - w.len + 1 -- minute-granular up to an hour
  if w.len > REACH_MINUTE_LIMIT then
    from = (hour - math.ceil(w.len / 60)) * 60 -- hour-granular at the old edge
  end
  -- An hour wholly inside the span is read from its hour sketch once merged (or when it is
  -- older than the tick merges), else from its minute sketches: the same users either way,
  -- but minute sketches expire about an hour after the merge, so a span read later (a
  -- previous period ending with a whole hour) needs the hour sketch.
  local merged = tonumber(redis.call('HGET', P .. 'meta', 'hour_merged') or '')
  for h = math.floor(from / 60), hour do
    local a, b = math.max(from, h * 60), math.min(now, h * 60 + 59)
    if a == h * 60 and b == h * 60 + 59 and
        ((merged and merged >= h) or h < hour - MERGE_HORIZON) then
      keys[#keys + 1] = base .. ':h:' .. h
    else
      for m = a, b do
        keys[#keys + 1] = base .. ':m:' .. m
      end
    end
  end
  if #keys > MAX_SKETCHES then
    error({err = 'ERR reach: the window needs ' .. #keys .. ' sketches, more than one PFCOUNT can take'})
  end
  return redis.call('PFCOUNT', unpack(keys))
end

-- smm_get <prefix> <entity> <window> [<minute>]
local function smm_get(_, args)
  local P, ent = args[1], args[2]
  local w, why = parse_window(args[3])
  if not w then
    return fail(why)
  end
  local now, bad = now_minute(args[4])
  if not now then
    return fail(bad)
  end
  local S = shard_count(P)
  if not S then
    return {}
  end
  local acc = sum_fields(P, S, ent, window_fields(w, now))
  local names = {}
  for name, v in pairs(acc) do
    if v ~= 0 then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  local out = {}
  for _, name in ipairs(names) do
    out[#out + 1] = name
    out[#out + 1] = int(acc[name])
  end
  local eng, impr = acc.engagement or 0, acc.impression or 0
  if impr > 0 then
    out[#out + 1] = 'er_impr'
    out[#out + 1] = rate(eng, impr)
  end
  local reach = reach_of(P, ent, w, now)
  if reach and reach > 0 then
    out[#out + 1] = 'reach'
    out[#out + 1] = int(reach)
    out[#out + 1] = 'er_reach'
    out[#out + 1] = rate(eng, reach)
  end
  return out
end

-- smm_mget <prefix> <window> <minute or ''> <m1,m2,...> <entity>...
local function smm_mget(_, args)
  local P = args[1]
  local w, why = parse_window(args[2])
  if not w then
    return fail(why)
  end
  local now, bad = now_minute(args[3])
  if not now then
    return fail(bad)
  end
  local metrics, wants_reach = {}, false
  for m in string.gmatch(args[4] or '', '[^,]+') do
    metrics[#metrics + 1] = m
    if m == 'reach' or m == 'er_reach' then
      wants_reach = true
    end
  end
  local S = shard_count(P)
  local fields = S and window_fields(w, now)
  local out = {}
  for i = 5, #args do
    local ent = args[i]
    local acc, reach = {}, nil
    if S then
      acc = sum_fields(P, S, ent, fields)
      if wants_reach then
        reach = reach_of(P, ent, w, now)
      end
    end
    local eng, impr = acc.engagement or 0, acc.impression or 0
    for _, m in ipairs(metrics) do
      local v
      if m == 'er_impr' then
        v = impr > 0 and rate(eng, impr) or false
      elseif m == 'reach' then
        v = reach and int(reach) or false
      elseif m == 'er_reach' then
        v = reach and reach > 0 and rate(eng, reach) or false
      else
        v = int(acc[m] or 0)
      end
      out[#out + 1] = v
    end
  end
  return out
end

-- smm_top <prefix> <window> <n> [<minute>]
local function smm_top(_, args)
  local P = args[1]
  local w, why = parse_window(args[2])
  if not w then
    return fail(why)
  end
  local n = tonumber(args[3] or '')
  if not n or n ~= math.floor(n) or n < 0 then
    return fail('top: n must be a whole number >= 0, got ' .. tostring(args[3]))
  end
  n = math.min(n, MAX_TOP)
  local now, bad = now_minute(args[4])
  if not now then
    return fail(bad)
  end
  local S = shard_count(P)
  if not S or n == 0 then
    return {}
  end
  local fields = window_fields(w, now) -- 't', 'm<k>', 'h<k>': the boards are top:<field>
  -- Each bucket's board holds its posts' exact engagement in that bucket: the sum over the
  -- window's boards of a post's top-K entries is its window engagement, less the buckets
  -- where it is not among the top K. The 2n best sums are re-scored exactly.
  local k = math.max(4 * n, 50)
  local sum, ids = {}, {}
  local function take(id, score)
    if not sum[id] then
      sum[id] = 0
      ids[#ids + 1] = id
    end
    sum[id] = sum[id] + score
  end
  for _, f in ipairs(fields) do
    local key = P .. 'top:' .. f
    local got = redis.call('ZREVRANGE', key, 0, k - 1, 'WITHSCORES')
    local seen = {}
    for j = 1, #got, 2 do
      seen[got[j]] = true
      take(got[j], tonumber(got[j + 1]))
    end
    if #got == 2 * k then
      -- Ties at the K-th score: ZREVRANGE gives the highest ids, the answer wants the
      -- lowest first, so take the lowest ids of that score too.
      local last = got[2 * k]
      for _, id in ipairs(redis.call('ZRANGE', key, last, last, 'BYSCORE', 'LIMIT', 0, k)) do
        if not seen[id] then
          take(id, tonumber(last))
        end
      end
    end
  end
  table.sort(ids, function(a, b)
    if sum[a] ~= sum[b] then
      return sum[a] > sum[b]
    end
    return a < b
  end)
  local scored = {}
  for j = 1, math.min(#ids, 2 * n) do
    local id = ids[j]
    local score = 0
    local got = redis.call('HMGET', entity_key(P, S, 'c:' .. id), unpack(fields))
    for x = 1, #fields do
      -- %f: `engagement` as a whole name, not the tail of `mention_engagement`
      local v = got[x] and string.match(got[x], '%f[%w_]engagement=(-?%d+)')
      if v then
        score = score + tonumber(v)
      end
    end
    if score > 0 then
      scored[#scored + 1] = {id, score}
    end
  end
  table.sort(scored, function(a, b)
    if a[2] ~= b[2] then
      return a[2] > b[2]
    end
    return a[1] < b[1]
  end)
  local out = {}
  for j = 1, math.min(n, #scored) do
    out[#out + 1] = scored[j][1]
    out[#out + 1] = int(scored[j][2])
  end
  return out
end

-- smm_series <prefix> <entity> m|h <from> <to> <m1,m2,...>
local function smm_series(_, args)
  local P, ent, unit = args[1], args[2], args[3]
  if unit ~= 'm' and unit ~= 'h' then
    return fail("series: bucket unit must be 'm' or 'h', got '" .. tostring(unit) .. "'")
  end
  local from, to = tonumber(args[4] or ''), tonumber(args[5] or '')
  if not from or not to or from ~= math.floor(from) or to ~= math.floor(to) then
    return fail('series: from and to must be whole numbers')
  end
  if to - from + 1 > MAX_SERIES then
    return fail('series: ' .. (to - from + 1) .. ' buckets, more than ' .. MAX_SERIES)
  end
  local metrics = {}
  for m in string.gmatch(args[6] or '', '[^,]+') do
    if DERIVED[m] then
      return fail('series: ' .. m .. ' is derived, not a counter (read its counters)')
    end
    metrics[#metrics + 1] = m
  end
  local S = shard_count(P)
  local out = {}
  if to < from then
    return out
  end
  local key = S and entity_key(P, S, ent)
  local links = has_links(ent)
  for s = from, to, 500 do
    local e = math.min(s + 499, to)
    local got, lgot = {}, {}
    if S then
      local fields = {}
      for b = s, e do
        fields[#fields + 1] = unit .. b
      end
      got = redis.call('HMGET', key, unpack(fields))
      if links then
        for j = 1, #fields do
          fields[j] = 'l' .. fields[j]
        end
        lgot = redis.call('HMGET', key, unpack(fields))
      end
    end
    for j = 1, e - s + 1 do
      local acc = {}
      add_packed(acc, got[j] or nil)
      add_packed(acc, lgot[j] or nil)
      for _, m in ipairs(metrics) do
        out[#out + 1] = int(acc[m] or 0)
      end
    end
  end
  return out
end

redis.register_function{function_name = 'smm_get', callback = smm_get, flags = {'allow-oom'}}
redis.register_function{function_name = 'smm_mget', callback = smm_mget, flags = {'allow-oom'}}
redis.register_function{function_name = 'smm_top', callback = smm_top, flags = {'no-writes'}}
redis.register_function{function_name = 'smm_series', callback = smm_series, flags = {'no-writes'}}
