//! The Lua scripts that keep cluster state on Redis. Each runs atomically on the Redis server,
//! so "first socket of this user anywhere" or "last subscriber anywhere" is decided exactly once,
//! by the node whose change made the transition.
//!
//! Keys (`P` is the prefix plus `:`; `N` a node id):
//!
//! ```text
//! P nodes                      SET   node ids that registered
//! P node:N:alive               STR   heartbeat, expires ALIVE_TTL after the node's last beat
//! P node:N:index               SET   "s\napp" and "p\napp\nchannel": the keys below that N wrote
//! P node:N:subs:APP            HASH  channel -> N's local subscription count
//! P node:N:presence:APP:CH     HASH  user key -> member JSON, for users with a socket on N
//! P cache:APP:CH               STR   a cache channel's last event (PX 30 min)
//! P epoch                      STR   set once per Redis dataset (tells "reaped" from "Redis reset")
//! P events                     pub/sub channel every node subscribes to (envelopes)
//! P node:N:acks                pub/sub channel of node N: "your presence subscribe is in"
//! ```
//!
//! Only per-node keys are written, and cluster numbers are sums over live nodes (those whose
//! `alive` key exists; the caller always counts itself). So a node that comes back after Redis
//! lost everything rewrites just its own keys ([`RESYNC`]), and a dead node is removed by
//! deleting its keys ([`REAP`]), which also tells the reaper which members and channels that
//! removal emptied. Keys are computed inside the scripts, which is fine on a single Redis (not
//! on Redis Cluster, which pusher-local does not support).

use redis::Script;

/// Shared by every script. `ARGV[1]` is always `P`, `ARGV[2]` the calling node.
pub const COMMON: &str = r#"
local P, me = ARGV[1], ARGV[2]
local function subs_key(n, app) return P .. 'node:' .. n .. ':subs:' .. app end
local function presence_key(n, app, ch) return P .. 'node:' .. n .. ':presence:' .. app .. ':' .. ch end
local function index_key(n) return P .. 'node:' .. n .. ':index' end
local function alive_key(n) return P .. 'node:' .. n .. ':alive' end
local function live_nodes()
  local out = {me}
  for _, n in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
    if n ~= me and redis.call('EXISTS', alive_key(n)) == 1 then out[#out + 1] = n end
  end
  return out
end
local function cluster_subs(nodes, app, ch)
  local total = 0
  for _, n in ipairs(nodes) do total = total + tonumber(redis.call('HGET', subs_key(n, app), ch) or 0) end
  return total
end
local function present_elsewhere(nodes, skip, app, ch, user)
  for _, n in ipairs(nodes) do
    if n ~= skip and redis.call('HEXISTS', presence_key(n, app, ch), user) == 1 then return true end
  end
  return false
end
local function roster(nodes, app, ch)
  local seen, out = {}, {}
  for _, n in ipairs(nodes) do
    local kv = redis.call('HGETALL', presence_key(n, app, ch))
    for i = 1, #kv, 2 do
      if not seen[kv[i]] then
        seen[kv[i]] = true
        out[#out + 1] = kv[i]
        out[#out + 1] = kv[i + 1]
      end
    end
  end
  return out
end
local function parse_index(e)
  local rest = string.sub(e, 3)
  if string.sub(e, 1, 1) == 's' then return 's', rest, nil end
  local nl = string.find(rest, '\n', 1, true)
  return 'p', string.sub(rest, 1, nl - 1), string.sub(rest, nl + 1)
end
"#;

/// One local subscribe. ARGV: P, me, app, channel, user key ('' if not presence), member JSON,
/// max members, '1' when this is the user's first socket on this node, request id, this node's
/// acks channel, the member_added envelope, the events channel.
/// Returns `{cluster subscriptions, first member anywhere (1/0, or -1: presence full), roster}`.
///
/// On presence channels it also PUBLISHes, in this order and atomically with the roster change:
/// the member_added envelope (when the user is new to the cluster) on the events channel, then
/// `{"id": request id, "roster": [key, member JSON, ...]}` on the node's acks channel. Every
/// node's subscriber sees announcements in the order the scripts ran, so the subscribing node
/// registers the socket exactly between the announcements its roster includes and the ones
/// it does not: no member twice, none missed.
pub const JOIN: &str = r#"
local app, ch, user, member, max, local_first = ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local nodes = live_nodes()
local first = 0
if user ~= '' and local_first == '1' then
  if not present_elsewhere(nodes, me, app, ch, user) then
    if #roster(nodes, app, ch) / 2 >= max then return {-1, -1, {}} end
    first = 1
  end
  redis.call('HSET', presence_key(me, app, ch), user, member)
  redis.call('SADD', index_key(me), 'p\n' .. app .. '\n' .. ch)
end
redis.call('HINCRBY', subs_key(me, app), ch, 1)
redis.call('SADD', index_key(me), 's\n' .. app)
local members = {}
if user ~= '' then
  members = roster(nodes, app, ch)
  if first == 1 and ARGV[11] ~= '' then redis.call('PUBLISH', ARGV[12], ARGV[11]) end
  redis.call('PUBLISH', ARGV[10], cjson.encode({id = ARGV[9], roster = members}))
end
return {cluster_subs(nodes, app, ch), first, members}
"#;

/// One local unsubscribe. ARGV: P, me, app, channel, user key (''), '1' when it was the user's
/// last socket on this node, the member_removed envelope, the events channel. Returns
/// `{cluster subscriptions, last member anywhere (1/0)}`; on the user's last socket anywhere it
/// PUBLISHes the member_removed envelope, ordered with the roster change as in [`JOIN`].
pub const LEAVE: &str = r#"
local app, ch, user, local_last = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local nodes = live_nodes()
local last = 0
if user ~= '' and local_last == '1' then
  redis.call('HDEL', presence_key(me, app, ch), user)
  if not present_elsewhere(nodes, me, app, ch, user) then
    last = 1
    if ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[7]) end
  end
end
if redis.call('HINCRBY', subs_key(me, app), ch, -1) <= 0 then redis.call('HDEL', subs_key(me, app), ch) end
local total = cluster_subs(nodes, app, ch)
if total < 0 then total = 0 end
return {total, last}
"#;

/// Channels of an app. ARGV: P, me, app, name prefix. Returns flat `{name, subscriptions,
/// users, ...}` (users counted for presence channels only).
pub const CHANNELS: &str = r#"
local app, prefix = ARGV[3], ARGV[4]
local nodes = live_nodes()
local totals, names = {}, {}
for _, n in ipairs(nodes) do
  local kv = redis.call('HGETALL', subs_key(n, app))
  for i = 1, #kv, 2 do
    local ch = kv[i]
    if string.sub(ch, 1, #prefix) == prefix then
      if totals[ch] == nil then totals[ch] = 0; names[#names + 1] = ch end
      totals[ch] = totals[ch] + tonumber(kv[i + 1])
    end
  end
end
local out = {}
for _, ch in ipairs(names) do
  if totals[ch] > 0 then
    local users = 0
    if string.sub(ch, 1, 9) == 'presence-' then users = #roster(nodes, app, ch) / 2 end
    out[#out + 1] = ch
    out[#out + 1] = tostring(totals[ch])
    out[#out + 1] = tostring(users)
  end
end
return out
"#;

/// One channel. ARGV: P, me, app, channel. Returns `{subscriptions, roster}`.
pub const CHANNEL: &str = r#"
local app, ch = ARGV[3], ARGV[4]
local nodes = live_nodes()
return {cluster_subs(nodes, app, ch), roster(nodes, app, ch)}
"#;

/// Writes this node's whole state again (at start, after Redis lost it, or after other nodes
/// took this one for dead). ARGV: P, me, alive TTL in ms, JSON `{"subs": [[app, channel, n]...],
/// "presence": [[app, channel, user, member]...]}`, a fresh epoch, the epoch this node last saw
/// ('' at start), '1' when its heartbeat key had expired.
///
/// `P epoch` is set once per Redis dataset; the same epoch with an expired heartbeat means the
/// node was reaped (it stalled past the TTL) rather than Redis starting empty. Returns `{epoch,
/// {{app, channel, member JSON}...}}`: the epoch, and when reaped the members this node brings
/// back that no other node has (they were announced removed: the caller announces them again).
pub const RESYNC: &str = r#"
local epoch = redis.call('GET', P .. 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('SET', P .. 'epoch', epoch)
end
local reaped = ARGV[7] == '1' and epoch == ARGV[6]
local nodes = live_nodes()
local idx = index_key(me)
for _, e in ipairs(redis.call('SMEMBERS', idx)) do
  local kind, app, ch = parse_index(e)
  if kind == 's' then redis.call('DEL', subs_key(me, app)) else redis.call('DEL', presence_key(me, app, ch)) end
end
redis.call('DEL', idx)
local data = cjson.decode(ARGV[4])
for _, s in ipairs(data.subs) do
  redis.call('HSET', subs_key(me, s[1]), s[2], s[3])
  redis.call('SADD', idx, 's\n' .. s[1])
end
local back = {}
for _, p in ipairs(data.presence) do
  if reaped and not present_elsewhere(nodes, me, p[1], p[2], p[3]) then back[#back + 1] = {p[1], p[2], p[4]} end
  redis.call('HSET', presence_key(me, p[1], p[2]), p[3], p[4])
  redis.call('SADD', idx, 'p\n' .. p[1] .. '\n' .. p[2])
end
redis.call('SADD', P .. 'nodes', me)
redis.call('SET', alive_key(me), '1', 'PX', ARGV[3])
return {epoch, back}
"#;

/// Removes nodes and everything they wrote. ARGV: P, me, mode: 'dead' removes every
/// registered node whose heartbeat expired; 'self' removes the caller (clean shutdown).
/// Returns `{{'n', node}, {'m', app, channel, member JSON}, {'v', app, channel},
/// {'c', app, channel, subscriptions}...}`: gone nodes, members whose last socket was there,
/// channels now vacated, and channels still occupied with their new count.
pub const REAP: &str = r#"
local gone = {}
if ARGV[3] == 'self' then
  gone[1] = me
else
  for _, n in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
    if n ~= me and redis.call('EXISTS', alive_key(n)) == 0 then gone[#gone + 1] = n end
  end
end
local out = {}
for _, dead in ipairs(gone) do
  redis.call('SREM', P .. 'nodes', dead)
  redis.call('DEL', alive_key(dead))
  local nodes = {}
  for _, n in ipairs(live_nodes()) do if n ~= dead then nodes[#nodes + 1] = n end end
  local entries = redis.call('SMEMBERS', index_key(dead))
  for _, e in ipairs(entries) do
    local kind, app, ch = parse_index(e)
    if kind == 'p' then
      local key = presence_key(dead, app, ch)
      local kv = redis.call('HGETALL', key)
      redis.call('DEL', key)
      for i = 1, #kv, 2 do
        if not present_elsewhere(nodes, dead, app, ch, kv[i]) then out[#out + 1] = {'m', app, ch, kv[i + 1]} end
      end
    end
  end
  for _, e in ipairs(entries) do
    local kind, app = parse_index(e)
    if kind == 's' then
      local key = subs_key(dead, app)
      local kv = redis.call('HGETALL', key)
      redis.call('DEL', key)
      for i = 1, #kv, 2 do
        if tonumber(kv[i + 1]) > 0 then
          local total = cluster_subs(nodes, app, kv[i])
          if total <= 0 then out[#out + 1] = {'v', app, kv[i]} else out[#out + 1] = {'c', app, kv[i], tostring(total)} end
        end
      end
    end
  end
  redis.call('DEL', index_key(dead))
  out[#out + 1] = {'n', dead}
end
return out
"#;

/// The scripts, compiled once (the client sends EVALSHA and falls back to EVAL when a
/// restarted Redis no longer has them).
#[derive(Debug)]
pub struct Scripts {
    /// See [`JOIN`].
    pub join: Script,
    /// See [`LEAVE`].
    pub leave: Script,
    /// See [`CHANNELS`].
    pub channels: Script,
    /// See [`CHANNEL`].
    pub channel: Script,
    /// See [`RESYNC`].
    pub resync: Script,
    /// See [`REAP`].
    pub reap: Script,
}

impl Scripts {
    /// Compiles every script with the shared prelude.
    pub fn new() -> Self {
        let with = |body: &str| Script::new(&format!("{COMMON}{body}"));
        Scripts {
            join: with(JOIN),
            leave: with(LEAVE),
            channels: with(CHANNELS),
            channel: with(CHANNEL),
            resync: with(RESYNC),
            reap: with(REAP),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
