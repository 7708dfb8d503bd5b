//! The Lua scripts of the Redis router, one per atomic session operation.
//! Each runs on one session's slot and declares every key it touches.

/// Lua: `NodeEvent { message: NodeMessage { session, seq, message } }` as
/// protobuf (the schema's, field numbers fixed there).
pub(super) const NODE_MESSAGE: &str = r#"
local function varint(n)
  local out = {}
  while n >= 128 do
    table.insert(out, string.char(n % 128 + 128))
    n = math.floor(n / 128)
  end
  table.insert(out, string.char(n))
  return table.concat(out)
end
local function node_message(sid, seq, payload)
  local inner = '\10' .. varint(#sid) .. sid .. '\16' .. varint(seq) .. '\26' .. varint(#payload) .. payload
  return '\10' .. varint(#inner) .. inner
end
"#;

/// Lua: appends `payload` to the log (KEYS[2]) as the session's next seq,
/// keeping `log_bytes` in the outbox (KEYS[1]), trims the oldest entries
/// past `maxlen` messages or `maxbytes` bytes (never the newest), and
/// publishes to the attached `node`. Returns the seq.
pub(super) const APPEND: &str = r#"
local function append(sid, payload, node, maxlen, maxbytes)
  local seq = redis.call('HINCRBY', KEYS[1], 'next_seq', 1) - 1
  redis.call('XADD', KEYS[2], seq .. '-0', 'm', payload)
  local bytes = redis.call('HINCRBY', KEYS[1], 'log_bytes', #payload)
  local len = redis.call('XLEN', KEYS[2])
  while len > 1 and (len > maxlen or bytes > maxbytes) do
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', KEYS[2], oldest[1])
    bytes = redis.call('HINCRBY', KEYS[1], 'log_bytes', -#oldest[2][2])
    len = len - 1
  end
  if node and node ~= '' then
    redis.call('PUBLISH', 'sb:node:' .. node, node_message(sid, seq, payload))
  end
  return seq
end
"#;

/// KEYS out, log. ARGV seq. Drops every logged message through seq.
pub(super) const TRIM: &str = r#"
local bound = ARGV[1] .. '-0'
while true do
  local oldest = redis.call('XRANGE', KEYS[2], '-', bound, 'COUNT', 1)[1]
  if not oldest then return 1 end
  redis.call('XDEL', KEYS[2], oldest[1])
  redis.call('HINCRBY', KEYS[1], 'log_bytes', -#oldest[2][2])
end
"#;

/// KEYS out. ARGV node. Detaches the session if it is attached to `node`;
/// returns the new generation, or false.
pub(super) const DETACH_FROM_NODE: &str = r#"
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'node', '')
return redis.call('HINCRBY', KEYS[1], 'gen', 1)
"#;

/// KEYS out, log, held. ARGV token, node, ttl. The session is not started:
/// deliveries are held until START.
pub(super) const OPEN: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'next_seq', 1, 'token', ARGV[1], 'node', ARGV[2], 'gen', 1, 'started', 0)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// KEYS out, log, held. ARGV sid, first payload, ttl, maxlen, maxbytes.
/// Logs the first message as seq 1, then every held one, publishing each.
pub(super) const START: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'started', 1)
local node = redis.call('HGET', KEYS[1], 'node')
local maxlen, maxbytes = tonumber(ARGV[4]), tonumber(ARGV[5])
append(ARGV[1], ARGV[2], node, maxlen, maxbytes)
for _, payload in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  append(ARGV[1], payload, node, maxlen, maxbytes)
end
redis.call('DEL', KEYS[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"#;

/// KEYS out, log, held. ARGV sid, payload, ttl, maxlen, origin sid ('' =
/// none), origin client seq, maxbytes. Returns the seq, 0 when held (not
/// started), -1 for a duplicate of what this origin already delivered, or
/// false.
pub(super) const DELIVER: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[5] ~= '' then
  local field = 'c:' .. ARGV[5]
  local last = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  if tonumber(ARGV[6]) <= last then return -1 end
  redis.call('HSET', KEYS[1], field, ARGV[6])
end
if redis.call('HGET', KEYS[1], 'started') == '0' then
  redis.call('RPUSH', KEYS[3], ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  return 0
end
local node = redis.call('HGET', KEYS[1], 'node')
local seq = append(ARGV[1], ARGV[2], node, tonumber(ARGV[4]), tonumber(ARGV[7]))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return seq
"#;

/// KEYS out. ARGV node, gen. Returns the new gen, or false.
pub(super) const DETACH: &str = r#"
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return false end
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[2] then return false end
redis.call('HSET', KEYS[1], 'node', '')
return redis.call('HINCRBY', KEYS[1], 'gen', 1)
"#;

/// KEYS out. ARGV token, new token, last_seq, node. Returns
/// {status, old node, old gen, new gen, next_seq}.
pub(super) const RESUME: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', '', 0, 0, 0} end
local v = redis.call('HMGET', KEYS[1], 'token', 'next_seq', 'node', 'gen')
if ARGV[1] == '' or v[1] ~= ARGV[1] then return {'badtoken', '', 0, 0, 0} end
if tonumber(ARGV[3]) >= tonumber(v[2]) then return {'future', '', 0, 0, 0} end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'node', ARGV[4])
return {'ok', v[3], tonumber(v[4]), gen, tonumber(v[2])}
"#;
