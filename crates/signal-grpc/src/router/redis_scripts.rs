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

/// Lua: appends `payload` to the log (`log`) as the session's next seq,
/// keeping `log_bytes` in the outbox (`out`), trims the oldest entries
/// past `maxlen` messages or `maxbytes` bytes (never the newest), and
/// publishes to the attached `node`. Returns the seq. `append` does it on
/// KEYS[1] and KEYS[2].
pub(super) const APPEND: &str = r#"
local function append_to(out, log, sid, payload, node, maxlen, maxbytes)
  local seq = redis.call('HINCRBY', out, 'next_seq', 1) - 1
  redis.call('XADD', log, seq .. '-0', 'm', payload)
  local bytes = redis.call('HINCRBY', out, 'log_bytes', #payload)
  local len = redis.call('XLEN', log)
  while len > 1 and (len > maxlen or bytes > maxbytes) do
    local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', log, oldest[1])
    bytes = redis.call('HINCRBY', out, 'log_bytes', -#oldest[2][2])
    len = len - 1
  end
  if node and node ~= '' then
    redis.call('PUBLISH', 'sb:node:' .. node, node_message(sid, seq, payload))
  end
  return seq
end
local function append(sid, payload, node, maxlen, maxbytes)
  return append_to(KEYS[1], KEYS[2], sid, payload, node, maxlen, maxbytes)
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

/// Lua: delivers `payload` to one session (keys `out`, `log`, `held`):
/// the seq, 0 when held (not started), -1 for a duplicate of what the
/// origin (`osid` '' = none, `oseq`) already delivered, or false when the
/// session does not exist.
pub(super) const DELIVER_TO: &str = r#"
local function deliver(out, log, held, sid, payload, ttl, maxlen, osid, oseq, maxbytes)
  if redis.call('EXISTS', out) == 0 then return false end
  if osid ~= '' then
    local field = 'c:' .. osid
    local last = tonumber(redis.call('HGET', out, field) or '0')
    if tonumber(oseq) <= last then return -1 end
    redis.call('HSET', out, field, oseq)
  end
  if redis.call('HGET', out, 'started') == '0' then
    redis.call('RPUSH', held, payload)
    redis.call('EXPIRE', held, ttl)
    return 0
  end
  local node = redis.call('HGET', out, 'node')
  local seq = append_to(out, log, sid, payload, node, tonumber(maxlen), tonumber(maxbytes))
  redis.call('EXPIRE', out, ttl)
  redis.call('EXPIRE', log, ttl)
  return seq
end
"#;

/// KEYS out, log, held. ARGV sid, payload, ttl, maxlen, origin sid ('' =
/// none), origin client seq, maxbytes. See [`DELIVER_TO`].
pub(super) const DELIVER: &str = r#"
return deliver(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
"#;

/// Several deliveries in one call, in order (standalone Redis only: the
/// sessions' keys are in different slots). KEYS out, log, held of each.
/// ARGV ttl, maxlen, maxbytes, then sid, payload, origin sid, origin seq of
/// each. Returns each one's result as [`DELIVER_TO`] does.
pub(super) const DELIVER_MANY: &str = r#"
local results = {}
for i = 0, #KEYS / 3 - 1 do
  local a = 4 + 4 * i
  results[i + 1] = deliver(KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3],
    ARGV[a], ARGV[a + 1], ARGV[1], ARGV[2], ARGV[a + 2], ARGV[a + 3], ARGV[3])
end
return results
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
