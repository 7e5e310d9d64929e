package redis

// The scripts read the time with redis.call('TIME') (server time, so every
// replica agrees) and do all arithmetic on Lua numbers (doubles): times in
// microseconds since the epoch (< 2^53) and counts up to ratelimit.MaxValue
// are exact. Numbers are formatted with '%.0f' because tostring uses %.14g.
//
// In the limit scripts KEYS[1] is a client key's log and KEYS[2] its state
// hash (see the package doc); both carry the key's hash tag.

// luaCommon holds the helpers shared by the limit scripts.
const luaCommon = `
local function tok(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end

local function civil(days)
  -- days since 1970-01-01 to the proleptic Gregorian (year, month, day)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local monthDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

-- periods returns the UTC day number of the second sec, the day's end, the
-- month number (year*12 + month - 1) and the month's end; ends in seconds.
local function periods(sec)
  local day = math.floor(sec / 86400)
  local y, m, d = civil(day)
  local n = monthDays[m]
  if m == 2 and ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) then n = 29 end
  return day, (day + 1) * 86400, y * 12 + m - 1, (day + n - d + 1) * 86400
end

-- extend makes key live at least until atMs, never shortening its life.
local function extend(key, atMs, nowMs)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 or nowMs + ttl < atMs then
    redis.call('PEXPIREAT', key, string.format('%.0f', atMs))
  end
end

local function clock()
  local t = redis.call('TIME')
  local sec = tonumber(t[1])
  return sec, sec * 1000000 + tonumber(t[2])
end
`

// admitLua takes one request and ARGV[6] tokens, all or nothing.
//
// ARGV: rpm, tpm, window (µs), daily, monthly, tokens, nonce.
// Returns {reason, remaining requests, remaining tokens, retry after (µs),
// reservation, the token limit the remaining tokens are of}:
// reservation}; reason 0 = allowed, 1 rpm, 2 tpm, 3 daily, 4 monthly.
const admitLua = luaCommon + `
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local win = tonumber(ARGV[3])
local daily = tonumber(ARGV[4])
local monthly = tonumber(ARGV[5])
local tokens = tonumber(ARGV[6])
local nonce = ARGV[7]

local sec, now = clock()
local nowMs = math.floor(now / 1000)
local day, dayEnd, month, monthEnd = periods(sec)

local st = redis.call('HMGET', KEYS[2], 'w', 'd', 'dt', 'm', 'mt')
local dused, mused = 0, 0
if tonumber(st[2]) == day then dused = tonumber(st[3]) or 0 end
if tonumber(st[4]) == month then mused = tonumber(st[5]) or 0 end

local windowed = rpm > 0 or tpm > 0
local count, sum, sumChanged = 0, 0, false
if windowed then
  local cutoff = now - win
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff) end
  count = redis.call('ZCARD', KEYS[1])
  local w = tonumber(st[1])
  if count > 0 and w == nil then
    -- the running sum is gone (evicted): recount the log
    for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do sum = sum + tok(m) end
  elseif count > 0 then
    sum = w
    for _, m in ipairs(expired) do sum = sum - tok(m) end
    if sum < 0 then sum = 0 end
  end
  sumChanged = sum ~= w
end

local reason, after = 0, 0
local function deny(code, a)
  if reason == 0 or a > after then reason, after = code, a end
end
if rpm > 0 and count >= rpm then
  -- the slot frees when the entry at count-rpm leaves the window
  local e = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
  deny(1, tonumber(e[2]) + win - now)
end
if tpm > 0 then
  if tokens > tpm then
    deny(2, win)
  elseif sum + tokens > tpm then
    local need, freed, a, i = sum + tokens - tpm, 0, win, 0
    while freed < need do
      local e = redis.call('ZRANGE', KEYS[1], i, i + 127, 'WITHSCORES')
      if #e == 0 then break end
      for j = 1, #e, 2 do
        freed = freed + tok(e[j])
        if freed >= need then a = tonumber(e[j + 1]) + win - now; break end
      end
      i = i + 128
    end
    deny(2, a)
  end
end
if daily > 0 and dused + tokens > daily then deny(3, dayEnd * 1000000 - now) end
if monthly > 0 and mused + tokens > monthly then deny(4, monthEnd * 1000000 - now) end

local res = ''
if reason == 0 then
  res = string.format('%.0f', now) .. '-' .. nonce
  if windowed then
    redis.call('ZADD', KEYS[1], string.format('%.0f', now), nonce .. ':' .. string.format('%.0f', tokens))
    redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(win / 1000)))
    count, sum, sumChanged = count + 1, sum + tokens, true
  end
  local exp = 0
  if windowed then exp = math.ceil((now + win) / 1000) end
  if daily > 0 then
    dused = dused + tokens
    redis.call('HSET', KEYS[2], 'd', day, 'dt', string.format('%.0f', dused))
    exp = math.max(exp, dayEnd * 1000)
  end
  if monthly > 0 then
    mused = mused + tokens
    redis.call('HSET', KEYS[2], 'm', month, 'mt', string.format('%.0f', mused))
    exp = math.max(exp, monthEnd * 1000)
  end
  if sumChanged then redis.call('HSET', KEYS[2], 'w', string.format('%.0f', sum)) end
  if exp > 0 then extend(KEYS[2], exp, nowMs) end
elseif sumChanged and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'w', string.format('%.0f', sum))
end

local rr, rt, lt = -1, -1, 0
if rpm > 0 then rr = math.max(rpm - count, 0) end
local function lower(limit, used)
  local v = limit - used
  if v < 0 then v = 0 end
  if rt < 0 or v < rt then rt = v; lt = limit end
end
if tpm > 0 then lower(tpm, sum) end
if daily > 0 then lower(daily, dused) end
if monthly > 0 then lower(monthly, mused) end
return {reason, rr, rt, after, res, lt}
`

// openStreamLua takes one of a key's concurrent stream slots, or refuses.
// KEYS[1] is the key's ZSET of leases (member → expiry, server ms).
//
// ARGV: max, lease (ms), member. Expired leases (an instance that stopped
// without giving its slots back) are dropped first; the ZSET lives as long
// as its longest lease. Returns 1 (taken) or 0.
const openStreamLua = luaCommon + `
local sec, now = clock()
local nowMs = math.floor(now / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], nowMs + tonumber(ARGV[2]), ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2])) end
return 1
`

// renewStreamLua extends a slot's lease; a slot whose lease ran out (Redis
// was unreachable longer than the lease, or lost its data) is taken again,
// since its stream still runs.
//
// ARGV: lease (ms), member. Returns 1.
const renewStreamLua = luaCommon + `
local sec, now = clock()
local nowMs = math.floor(now / 1000)
redis.call('ZADD', KEYS[1], nowMs + tonumber(ARGV[1]), ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1])) end
return 1
`

// reconcileLua replaces a reservation's tokens in the log and its quota periods.
//
// ARGV: admission time (µs), nonce, estimated, actual, daily, monthly,
// windowed (0/1). The log entry's own count wins over the estimate when it
// is still there. Returns 1.
const reconcileLua = luaCommon + `
local at = tonumber(ARGV[1])
local nonce = ARGV[2]
local actual = tonumber(ARGV[4])
local daily = tonumber(ARGV[5])
local monthly = tonumber(ARGV[6])
local delta = actual - tonumber(ARGV[3])

local sec, now = clock()
local nowMs = math.floor(now / 1000)

if ARGV[7] == '1' then
  local score = string.format('%.0f', at)
  local prefix = nonce .. ':'
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], score, score)) do
    if string.sub(m, 1, #prefix) == prefix then
      delta = actual - tok(m)
      if delta ~= 0 then
        -- add before removing, so the key never empties and keeps its TTL
        redis.call('ZADD', KEYS[1], score, prefix .. string.format('%.0f', actual))
        redis.call('ZREM', KEYS[1], m)
        local w = tonumber(redis.call('HGET', KEYS[2], 'w'))
        if w then redis.call('HSET', KEYS[2], 'w', string.format('%.0f', math.max(w + delta, 0))) end
      end
      break
    end
  end
end

if delta ~= 0 and (daily > 0 or monthly > 0) then
  local day, dayEnd, month, monthEnd = periods(sec)
  local rday, _, rmonth = periods(math.floor(at / 1000000))
  local st = redis.call('HMGET', KEYS[2], 'd', 'dt', 'm', 'mt')
  local exp = 0
  if daily > 0 and rday == day then
    local used = 0
    if tonumber(st[1]) == day then used = tonumber(st[2]) or 0 end
    redis.call('HSET', KEYS[2], 'd', day, 'dt', string.format('%.0f', math.max(used + delta, 0)))
    exp = dayEnd * 1000
  end
  if monthly > 0 and rmonth == month then
    local used = 0
    if tonumber(st[3]) == month then used = tonumber(st[4]) or 0 end
    redis.call('HSET', KEYS[2], 'm', month, 'mt', string.format('%.0f', math.max(used + delta, 0)))
    exp = math.max(exp, monthEnd * 1000)
  end
  if exp > 0 then extend(KEYS[2], exp, nowMs) end
end
return 1
`

// throttleLua keeps the later of the stored and the new time of one
// backend in the hash KEYS[1] (field = backend, value = until in Unix ms),
// drops past ones, and makes the hash expire with the last one. A time it
// keeps is also published on the channel ARGV[3] as "ARGV[4] until backend",
// so that other replicas apply it at once.
//
// ARGV: backend, until (ms), channel, kind. Returns 1.
const throttleLua = `
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0
if untilMs > nowMs and untilMs > cur then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('PUBLISH', ARGV[3], ARGV[4] .. ' ' .. ARGV[2] .. ' ' .. ARGV[1])
end
local all = redis.call('HGETALL', KEYS[1])
local last = 0
for i = 1, #all, 2 do
  local v = tonumber(all[i + 1]) or 0
  if v <= nowMs then
    redis.call('HDEL', KEYS[1], all[i])
  elseif v > last then
    last = v
  end
end
if last > 0 then redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', last)) end
return 1
`
