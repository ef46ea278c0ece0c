'use strict';
// User authentication: pusher-js signin() with a customHandler signed by the
// `pusher` Node SDK, sendToUser delivery, and terminateUserConnections.

const assert = require('node:assert/strict');
const { withServer } = require('./support');

const it = withServer();

/** Signs `client` in and waits until its #server-to-user channel is subscribed. */
async function signIn(client) {
  const success = client.frames.waitFor('pusher:signin_success');
  let signinError;
  const failed = new Promise((_, reject) => {
    signinError = (err) => reject(new Error(`${client.name}: pusher:signin_error ${JSON.stringify(err)}`));
    client.pusher.user.bind('pusher:signin_error', signinError);
  });
  client.pusher.signin();
  const frame = await Promise.race([success, failed]);
  client.pusher.user.unbind('pusher:signin_error', signinError);
  failed.catch(() => {});

  assert.equal(typeof frame.data.user_data, 'string', 'signin_success carries user_data as a string');
  assert.deepEqual(JSON.parse(frame.data.user_data), client.options.user);
  // pusher-js handled signin_success synchronously: it is signed in and has
  // sent the subscribe for #server-to-user-<id>.
  assert.deepEqual(client.pusher.user.user_data, client.options.user);
  const channel = client.pusher.user.serverToUserChannel;
  assert.equal(channel.name, `#server-to-user-${client.options.user.id}`);
  if (!channel.subscribed) await client.once(channel, 'pusher:subscription_succeeded');
  return channel;
}

it('a signed-in pusher-js client receives sendToUser events', async (s) => {
  const user = { id: 'u1', user_info: { name: 'User One' } };
  const a = await s.connect('a', { user });
  await signIn(a);
  const other = await s.connect('other', { user: { id: 'u2' } });
  await signIn(other);

  const got = a.once(a.pusher.user, 'evt');
  const res = await s.api.sendToUser('u1', 'evt', { hello: 'u1', n: [1, 2] });
  assert.equal(res.status, 200);
  const [data] = await got;
  assert.deepEqual(data, { hello: 'u1', n: [1, 2] });

  // Marker: u2 gets its own event but never u1's.
  const marker = other.once(other.pusher.user, 'marker');
  await s.api.sendToUser('u2', 'marker', {});
  await marker;
  assert.deepEqual(other.frames.filter('evt'), [], "another user's connection must not receive u1's event");
});

it('sendToUser reaches every connection signed in as that user', async (s) => {
  const user = { id: 'multi', user_info: {} };
  const first = await s.connect('first', { user });
  const second = await s.connect('second', { user });
  await signIn(first);
  await signIn(second);

  const got1 = first.once(first.pusher.user, 'ping-all');
  const got2 = second.once(second.pusher.user, 'ping-all');
  await s.api.sendToUser('multi', 'ping-all', 'text');
  assert.equal((await got1)[0], 'text');
  assert.equal((await got2)[0], 'text');
});

it('terminateUserConnections closes the user connections with 4009 and pusher-js does not reconnect', async (s) => {
  const victim = await s.connect('victim', { user: { id: 'u1' } });
  const bystander = await s.connect('bystander', { user: { id: 'u2' } });
  await signIn(victim);
  await signIn(bystander);

  const left = victim.states.waitFor('disconnected');
  const leftAny = new Promise((resolve) => {
    const onChange = ({ previous, current }) => {
      if (previous === 'connected' && current !== 'connected') {
        victim.pusher.connection.unbind('state_change', onChange);
        resolve(current);
      }
    };
    victim.pusher.connection.bind('state_change', onChange);
  });
  const res = await s.api.terminateUserConnections('u1');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});

  const next = await leftAny;
  assert.equal(next, 'disconnected',
    `after a 4009 close pusher-js goes straight to "disconnected"; it went to "${next}" (states: ${victim.states.names().join(' -> ')})`);
  await left;
  // pusher-js reports the close code as a WebSocketError wrapping {code, message}.
  const closes = victim.errors.filter('WebSocketError').map((e) => e.error.error && e.error.error.data);
  assert.ok(closes.some((d) => d && d.code === 4009), `close code 4009 expected, saw ${JSON.stringify(closes)}`);

  // The other user is unaffected and still receives events.
  assert.equal(bystander.state, 'connected');
  const still = bystander.once(bystander.pusher.user, 'still-here');
  await s.api.sendToUser('u2', 'still-here', {});
  await still;
  assert.equal(victim.state, 'disconnected', 'the terminated client stays disconnected');
});

it('a signed-in user joins a presence channel whose auth has no channel_data, as its signin identity', async (s) => {
  // The channel authorizer signs socket_id:channel only (no channel_data): pusher-js then
  // waits for signin and takes its own member id from user_data.id.
  const noChannelData = ({ socketId, channelName }, callback) => {
    try {
      callback(null, s.api.authorizeChannel(socketId, channelName));
    } catch (err) {
      callback(err, null);
    }
  };
  const user = { id: 'signed-1', user_info: { name: 'Signed One' } };
  const member = await s.connect('member', { user, channelAuthorizer: noChannelData });
  const watcher = await s.connect('watcher', { presence: { user_id: 'w', user_info: { name: 'W' } } });
  const chWatcher = await watcher.subscribe('presence-signed');

  await signIn(member);
  const added = watcher.once(chWatcher, 'pusher:member_added');
  const ch = await member.subscribe('presence-signed');
  assert.deepEqual(ch.members.me, { id: 'signed-1', info: { name: 'Signed One' } });
  assert.equal(ch.members.count, 2);
  const [joined] = await added;
  assert.deepEqual(joined, { id: 'signed-1', info: { name: 'Signed One' } });

  // Client events carry the signin id as user_id.
  const heard = watcher.once(chWatcher, 'client-wave');
  ch.trigger('client-wave', { hi: true });
  const [data, metadata] = await heard;
  assert.deepEqual(data, { hi: true });
  assert.equal(metadata.user_id, 'signed-1');
});

it('pusher-js watchlist bindings get the initial offline status, then online and offline changes', async (s) => {
  const watcher = await s.connect('watcher', { user: { id: 'watcher', watchlist: ['friend'] } });
  const watchlist = watcher.pusher.user.watchlist;
  const initial = watcher.once(watchlist, 'offline');
  await signIn(watcher);
  assert.deepEqual((await initial)[0], { name: 'offline', user_ids: ['friend'] });

  const online = watcher.once(watchlist, 'online');
  const friend = await s.connect('friend', { user: { id: 'friend' } });
  await signIn(friend);
  assert.deepEqual((await online)[0], { name: 'online', user_ids: ['friend'] });

  const offline = watcher.once(watchlist, 'offline');
  friend.disconnect();
  assert.deepEqual((await offline)[0], { name: 'offline', user_ids: ['friend'] });
});
