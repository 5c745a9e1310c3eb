//! The Lua scripts that keep cluster-wide state. Every script is idempotent: it sets this
//! node's value and moves the cluster totals by the difference, so a value sent twice (after a
//! reconnect, a resync) changes nothing, and a cluster-wide edge (first node with a member, last
//! subscriber gone) is seen by exactly one script run.

use std::sync::LazyLock;

use redis::Script;

/// Netstring-like field, as in `wire.rs`.
const NS: &str = r#"
local function ns(s) return tostring(#s) .. ':' .. s end
"#;

/// Records a node-level presence change of a channel: adds `node\x1fuser` to `P:pn:<ch>` (or
/// removes it), bumps the channel's version `P:pv:<ch>` and publishes the change with it on the
/// channel (`N` node app name user present info version), for the other nodes' mirrors.
const NODE_CHANGE: &str = r#"
local function node_change(p, node, app, name, user, present, info)
  local suffix = app .. ':' .. name
  if present == '1' then
    redis.call('SADD', p .. ':pn:' .. suffix, node .. '\31' .. user)
  else
    redis.call('SREM', p .. ':pn:' .. suffix, node .. '\31' .. user)
  end
  local v = redis.call('INCR', p .. ':pv:' .. suffix)
  redis.call('PEXPIRE', p .. ':pv:' .. suffix, 86400000)
  redis.call('SPUBLISH', p .. ':ch:' .. suffix,
    'N' .. ns(node) .. ns(app) .. ns(name) .. ns(user) .. ns(present) .. ns(info) .. ns(tostring(v)))
end
"#;

/// ARGV: prefix, node, app, name, user, present (1/0), info JSON ('' for none).
/// Returns 1 when the user joined the cluster, -1 when it left it, 0 otherwise.
pub(crate) static PRESENCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NS}{NODE_CHANGE}{}",
        r#"
local p, node, app, name, user, present, info = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local field = app .. '\31' .. name .. '\31' .. user
local nodeset = p .. ':node:' .. node .. ':p'
local members = p .. ':p:' .. app .. ':' .. name
local infos = p .. ':pi:' .. app .. ':' .. name
if present == '1' then
  if redis.call('SADD', nodeset, field) == 1 then
    local n = redis.call('HINCRBY', members, user, 1)
    if n == 1 then redis.call('HSET', infos, user, info) end
    node_change(p, node, app, name, user, '1', info)
    if n == 1 then return 1 end
  end
else
  if redis.call('SREM', nodeset, field) == 1 then
    local n = redis.call('HINCRBY', members, user, -1)
    if n <= 0 then
      redis.call('HDEL', members, user)
      redis.call('HDEL', infos, user)
    end
    node_change(p, node, app, name, user, '0', '')
    if n <= 0 then return -1 end
  end
end
return 0
"#
    ))
});

/// ARGV: prefix, node, table (s, u, i or t), field, value. Sets this node's count and moves
/// the cluster total; returns {cluster total before, cluster total after}.
pub(crate) static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local p, node, t, field, value = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local mine = p .. ':node:' .. node .. ':' .. t
local all = p .. ':' .. t
local old = tonumber(redis.call('HGET', mine, field) or '0')
if value <= 0 then redis.call('HDEL', mine, field) else redis.call('HSET', mine, field, value) end
local before = tonumber(redis.call('HGET', all, field) or '0')
local d = value - old
if d == 0 then return {before, before} end
local after = redis.call('HINCRBY', all, field, d)
if after <= 0 then redis.call('HDEL', all, field) end
return {before, after}
"#,
    )
});

/// ARGV: prefix, dead node. Claims the node (one reaper wins), removes its members (publishing
/// a leave for each user gone from the cluster) and its counts. Returns a flat list of
/// `'m', app, name, user` (member removed) and `'v', app, name` (channel vacated); nil when
/// another reaper got there first.
pub(crate) static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NS}{NODE_CHANGE}{}",
        r#"
local p, node = ARGV[1], ARGV[2]
if redis.call('HDEL', p .. ':nodes', node) == 0 then return false end
local out = {}
local nodeset = p .. ':node:' .. node .. ':p'
for _, field in ipairs(redis.call('SMEMBERS', nodeset)) do
  local a, b = string.find(field, '\31', 1, true)
  local c, d = string.find(field, '\31', b + 1, true)
  if a and c then
    local app, name, user = string.sub(field, 1, a - 1), string.sub(field, b + 1, c - 1), string.sub(field, d + 1)
    local members = p .. ':p:' .. app .. ':' .. name
    local n = redis.call('HINCRBY', members, user, -1)
    if n <= 0 then
      redis.call('HDEL', members, user)
      redis.call('HDEL', p .. ':pi:' .. app .. ':' .. name, user)
      table.insert(out, 'm'); table.insert(out, app); table.insert(out, name); table.insert(out, user)
    end
    node_change(p, node, app, name, user, '0', '')
  end
end
redis.call('DEL', nodeset)
for _, t in ipairs({'s', 'u', 'i', 't'}) do
  local mine = p .. ':node:' .. node .. ':' .. t
  local all = p .. ':' .. t
  local kv = redis.call('HGETALL', mine)
  for i = 1, #kv, 2 do
    local after = redis.call('HINCRBY', all, kv[i], -tonumber(kv[i + 1]))
    if after <= 0 then
      redis.call('HDEL', all, kv[i])
      if t == 's' then
        local a = string.find(kv[i], '\31', 1, true)
        if a then
          table.insert(out, 'v'); table.insert(out, string.sub(kv[i], 1, a - 1)); table.insert(out, string.sub(kv[i], a + 1))
        end
      end
    end
  end
  redis.call('DEL', mine)
end
redis.call('DEL', p .. ':alive:' .. node)
return out
"#
    ))
});

/// ARGV: prefix, app, name. A presence channel as one read: `{version, {node\x1fuser...},
/// {user, info, ...}}` (the version is that of the last change these reflect).
pub(crate) static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local p, app, name = ARGV[1], ARGV[2], ARGV[3]
local suffix = app .. ':' .. name
local v = tonumber(redis.call('GET', p .. ':pv:' .. suffix) or '0')
return {v, redis.call('SMEMBERS', p .. ':pn:' .. suffix), redis.call('HGETALL', p .. ':pi:' .. suffix)}
"#,
    )
});
