-- Resolve the live version and read keys under it, atomically and in one round trip.
-- KEYS[1] = the live pointer; ARGV[1] = the key prefix up to the version; ARGV[2..n] = "<kind>:<id>" suffixes.
-- Returns {version, value2, ..., valueN}; a missing value is nil, a missing live version returns {nil}.
local version = redis.call('GET', KEYS[1])
if not version then return {false} end
local out = {version}
for i = 2, #ARGV do
  out[i] = redis.call('GET', ARGV[1] .. version .. ':' .. ARGV[i])
end
return out
