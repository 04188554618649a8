#!lua
-- Appends one intake request's events in one atomic step (serving/event_log.py builds its keys and arguments
-- and says why). No flags: Redis refuses the whole script up front when it is out of memory, so a request is
-- never half written; and every key's type is checked before anything is written, so a key another client left
-- of the wrong type is an error that wrote nothing.
--
-- KEYS: the stream, this minute's intake counter, [the idempotency record], then per person: their recent list,
--       their excluded set, their counter for this minute.
-- ARGV: 1 the entry's field name, 2 recent_max, 3 ttl_s (of a person's keys), 4 n events, 5 once_ttl (0: no
--       idempotency record), 6 the request's fingerprint, 7 the intake's cap, 8 a person's cap per minute,
--       then the n events' JSON, then per person: their events, their recent entries r, what they saw s, then the
--       r recent entries ("<movie>:<rating>"), then the s movie ids.
-- Returns {0, the stream's length, the n stream ids}; {1, "<fingerprint> <id> ..."} for an idempotency key seen
-- before (nothing appended); {2, "intake" or "user", the person's position} for a request over a cap.
local field, recent_max, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local once_ttl, fingerprint = tonumber(ARGV[5]), ARGV[6]
local intake_cap, user_cap = tonumber(ARGV[7]), tonumber(ARGV[8])
local first_person = 3
if once_ttl > 0 then first_person = 4 end
local kinds = {'stream', 'string', 'string'}
for p = first_person, #KEYS, 3 do kinds[p], kinds[p + 1], kinds[p + 2] = 'list', 'set', 'string' end
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'none' and kind ~= kinds[i] then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ' where the intake keeps a ' ..
                             kinds[i] .. '; nothing was written')
  end
end
if once_ttl > 0 then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {1, seen} end
end
local function used(key) return tonumber(redis.call('GET', key) or '0') end
if used(KEYS[2]) + n > intake_cap then return {2, 'intake', 0} end
local at = 8 + n
for p = first_person, #KEYS, 3 do
  if used(KEYS[p + 2]) + tonumber(ARGV[at + 1]) > user_cap then return {2, 'user', (p - first_person) / 3} end
  at = at + 3 + tonumber(ARGV[at + 2]) + tonumber(ARGV[at + 3])
end
local function count(key, events)
  if redis.call('INCRBY', key, events) == events then redis.call('EXPIRE', key, 120) end
end
count(KEYS[2], n)
local replies = {0, 0}
for i = 1, n do replies[i + 2] = redis.call('XADD', KEYS[1], '*', field, ARGV[8 + i]) end
at = 8 + n
for p = first_person, #KEYS, 3 do
  local recent, excluded = KEYS[p], KEYS[p + 1]
  local recents, seen = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  count(KEYS[p + 2], tonumber(ARGV[at + 1]))
  at = at + 3
  for j = 1, recents do redis.call('LPUSH', recent, ARGV[at + j]) end
  if recents > 0 then
    redis.call('LTRIM', recent, 0, recent_max - 1)
    redis.call('EXPIRE', recent, ttl)
  end
  at = at + recents
  for j = 1, seen do redis.call('SADD', excluded, ARGV[at + j]) end
  if seen > 0 then redis.call('EXPIRE', excluded, ttl) end
  at = at + seen
end
replies[2] = redis.call('XLEN', KEYS[1])
if once_ttl > 0 then
  redis.call('SET', KEYS[3], fingerprint .. ' ' .. table.concat(replies, ' ', 3), 'EX', once_ttl)
end
return replies
