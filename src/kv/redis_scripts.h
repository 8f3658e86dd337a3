// The Lua scripts of the redis:// engine (internal to redis_engine.cc). Each runs
// atomically in Redis. Keys: KEYS[1] the value hash, KEYS[2] the key index (sorted set,
// all scores 0), KEYS[3] the commit counter, KEYS[4] the commit's marker key.
//
// A stored value is a 16-hex-digit version (the commit counter of the commit that wrote
// it) followed by the value bytes. A scan is summarised by a SHA-1 of its keys and
// versions, so a commit can check that the same scan would still see the same thing.
#pragma once

namespace sluice::kv::redis_scripts {

// Shared by both scripts: a range read (keys and stored values) and its digest.
#define SLUICE_REDIS_LUA_SCAN                                                    \
  "local function scan(h, z, mn, mx, lim)\n"                                    \
  "  local ks\n"                                                                \
  "  if lim > 0 then ks = redis.call('ZRANGEBYLEX', z, mn, mx, 'LIMIT', 0, lim)\n" \
  "  else ks = redis.call('ZRANGEBYLEX', z, mn, mx) end\n"                      \
  "  local vs = {}\n"                                                           \
  "  local i = 1\n"                                                             \
  "  while i <= #ks do\n"                                                       \
  "    local j = math.min(i + 999, #ks)\n"                                      \
  "    local part = redis.call('HMGET', h, unpack(ks, i, j))\n"                 \
  "    for n = 1, #part do vs[#vs + 1] = part[n] or '' end\n"                   \
  "    i = j + 1\n"                                                             \
  "  end\n"                                                                     \
  "  return ks, vs\n"                                                           \
  "end\n"                                                                       \
  "local function digest(ks, vs)\n"                                             \
  "  local parts = {}\n"                                                        \
  "  for i = 1, #ks do\n"                                                       \
  "    parts[i] = #ks[i] .. ':' .. ks[i] .. string.sub(vs[i], 1, 16)\n"         \
  "  end\n"                                                                     \
  "  return redis.sha1hex(table.concat(parts, ','))\n"                          \
  "end\n"

// ARGV: min, max (ZRANGEBYLEX syntax), limit (0: none).
// Returns {keys, stored values, digest}.
inline constexpr const char* kScan = SLUICE_REDIS_LUA_SCAN
    "local ks, vs = scan(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]))\n"
    "return {ks, vs, digest(ks, vs)}\n";

// ARGV: nreads, nscans, nwrites, then nreads pairs (key, version or '' when it was
// missing), nscans quadruples (min, max, limit, digest), nwrites triples ('p' or 'd',
// key, value). Returns 1 (committed, or validated when nwrites is 0), 0 (a read is out
// of date: conflict) or 2 (the marker exists: this commit id was fenced or already ran).
inline constexpr const char* kCommit = SLUICE_REDIS_LUA_SCAN
    "local h, z = KEYS[1], KEYS[2]\n"
    "local nr, ns, nw = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local a = 4\n"
    "for i = 1, nr do\n"
    "  local v = redis.call('HGET', h, ARGV[a])\n"
    "  local cur = v and string.sub(v, 1, 16) or ''\n"
    "  if cur ~= ARGV[a + 1] then return 0 end\n"
    "  a = a + 2\n"
    "end\n"
    "for i = 1, ns do\n"
    "  local ks, vs = scan(h, z, ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]))\n"
    "  if digest(ks, vs) ~= ARGV[a + 3] then return 0 end\n"
    "  a = a + 4\n"
    "end\n"
    "if nw == 0 then return 1 end\n"
    "if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end\n"
    "local ver = string.format('%016x', redis.call('INCR', KEYS[3]))\n"
    "for i = 1, nw do\n"
    "  local k = ARGV[a + 1]\n"
    "  if ARGV[a] == 'p' then\n"
    "    if redis.call('HSET', h, k, ver .. ARGV[a + 2]) == 1 then\n"
    "      redis.call('ZADD', z, 0, k)\n"
    "    end\n"
    "  elseif redis.call('HDEL', h, k) == 1 then\n"
    "    redis.call('ZREM', z, k)\n"
    "  end\n"
    "  a = a + 3\n"
    "end\n"
    "redis.call('SET', KEYS[4], '1', 'PX', 600000)\n"
    "return 1\n";

#undef SLUICE_REDIS_LUA_SCAN

}  // namespace sluice::kv::redis_scripts
