'use strict';
// Private and encrypted channels authorized through pusher-js's customHandler
// (signed by the `pusher` Node SDK), and client events on private channels.

const assert = require('node:assert/strict');
const { withServer } = require('./support');

const it = withServer();

it('a private channel authorized by the server SDK subscribes and receives events', async (s) => {
  const a = await s.connect('a');
  const channel = await a.subscribe('private-room');
  assert.equal(channel.subscribed, true);

  const got = a.once(channel, 'update');
  await s.api.trigger('private-room', 'update', { version: 7 });
  const [data] = await got;
  assert.deepEqual(data, { version: 7 });
});

it('a private subscription signed with the wrong secret gets pusher:error "Invalid signature" and is not subscribed', async (s) => {
  const wrongSecret = s.serverSdk({ secret: 'not-the-sdk-secret' });
  const a = await s.connect('a', { sdk: wrongSecret });
  const error = a.errors.waitFor('PusherError');
  const channel = a.pusher.subscribe('private-badsig');
  const log = a.record(channel);

  const { error: pusherError } = await error;
  assert.equal(pusherError.data.code, null, 'real Pusher sends code null for subscription errors');
  assert.match(String(pusherError.data.message), /^Invalid signature/);

  // Marker: a later subscription on the same connection completes, and the
  // connection stays open.
  const marker = await a.subscribe('public-after-badsig');
  assert.equal(a.state, 'connected');
  assert.equal(channel.subscribed, false);
  assert.deepEqual(log.filter('pusher:subscription_succeeded'), []);

  // The server did not register the subscription either: an event on the
  // private channel, followed by a marker, only delivers the marker.
  const markerLog = a.record(marker);
  await s.api.trigger('private-badsig', 'leak', { secret: true });
  await s.api.trigger('public-after-badsig', 'marker', {});
  await markerLog.waitFor('marker');
  assert.deepEqual(a.frames.filter('leak'), [], 'an unauthorized socket must not receive private events');
});

it('an encrypted channel event triggered by the server SDK is decrypted by pusher-js', async (s) => {
  const a = await s.connect('a');
  const channel = await a.subscribe('private-encrypted-vault');
  const payload = { pin: 'x-1234-y', list: [1, 2, 3], text: 'ünïcödé' };

  const got = a.once(channel, 'secret');
  const res = await s.api.trigger('private-encrypted-vault', 'secret', payload);
  assert.equal(res.status, 200);
  const [data] = await got;
  assert.deepEqual(data, payload);

  // On the wire the server relayed the ciphertext untouched.
  const [frame] = a.frames.filter('secret');
  assert.deepEqual(Object.keys(frame.data).sort(), ['ciphertext', 'nonce']);
  assert.ok(!JSON.stringify(frame.data).includes('x-1234-y'), 'the frame must not carry the plaintext');
});

it('client events on a private channel reach the other subscriber but not the sender', async (s) => {
  const sender = await s.connect('sender');
  const receiver = await s.connect('receiver');
  const senderChannel = await sender.subscribe('private-chat');
  const receiverChannel = await receiver.subscribe('private-chat');
  const senderLog = sender.record(senderChannel);

  const got = receiver.once(receiverChannel, 'client-typing');
  assert.equal(senderChannel.trigger('client-typing', { typing: true, text: 'hé "x"' }), true);
  const [data, metadata] = await got;
  assert.deepEqual(data, { typing: true, text: 'hé "x"' });
  assert.equal(metadata.user_id, undefined, 'user_id is only added on presence channels');

  // Marker: the sender sees a later server event but never its own client event.
  await s.api.trigger('private-chat', 'marker', {});
  await senderLog.waitFor('marker');
  assert.deepEqual(senderLog.filter('client-typing'), [], 'client events are not echoed to the sender');
  assert.deepEqual(sender.frames.filter('pusher:error'), [], 'the client event was accepted without error');
});
