'use strict';
// --dev-auth: pusher-js authorizes a presence channel and signs in against pusher-local's own
// /pusher-local/auth and /pusher-local/user-auth endpoints, with no other backend.

const assert = require('node:assert/strict');
const PusherClient = require('pusher-js');
const { withServer, withTimeout, APP, EVENT_TIMEOUT_MS } = require('./support');

const it = withServer({ extraArgs: ['--dev-auth', '--dev-user', 'ada', '--dev-user-info', '{"name":"Ada"}'] });

/** A pusher-js client configured as the banner's --dev-auth snippet, as `user` when given. */
function client(s, user) {
  const base = `http://127.0.0.1:${s.port}/pusher-local`;
  const headers = user ? { 'X-Pusher-Local-User': user } : {};
  const pusher = new PusherClient(APP.key, {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: s.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: { endpoint: `${base}/auth`, headers },
    userAuthentication: { endpoint: `${base}/user-auth`, headers },
  });
  const frames = [];
  pusher.connection.bind('message', (frame) => frames.push(frame));
  return { pusher, frames };
}

function subscribed(pusher, name) {
  const channel = pusher.subscribe(name);
  return withTimeout(
    new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', () => resolve(channel));
      channel.bind('pusher:subscription_error', (e) => reject(new Error(`subscription_error ${JSON.stringify(e)}`)));
    }),
    EVENT_TIMEOUT_MS,
    `${name} to be subscribed`,
  );
}

function frame(frames, event) {
  return withTimeout(
    new Promise((resolve) => {
      const poll = () => {
        const found = frames.find((f) => f.event === event);
        if (found) resolve(found);
        else setTimeout(poll, 20);
      };
      poll();
    }),
    EVENT_TIMEOUT_MS,
    event,
  );
}

it('pusher-js joins a presence channel and signs in through --dev-auth alone', async (s) => {
  const ada = client(s);
  const bob = client(s, 'bob');
  try {
    const room = await subscribed(ada.pusher, 'presence-room');
    assert.deepEqual(room.members.me, { id: 'ada', info: { name: 'Ada' } });
    const added = new Promise((resolve) => room.bind('pusher:member_added', resolve));
    const bobRoom = await subscribed(bob.pusher, 'presence-room');
    assert.deepEqual(bobRoom.members.me, { id: 'bob', info: { name: 'bob' } });
    assert.equal(bobRoom.members.count, 2);
    assert.deepEqual(await withTimeout(added, EVENT_TIMEOUT_MS, 'member_added'), { id: 'bob', info: { name: 'bob' } });

    await subscribed(ada.pusher, 'private-notes');

    ada.pusher.signin();
    const success = await frame(ada.frames, 'pusher:signin_success');
    assert.deepEqual(JSON.parse(success.data.user_data), { id: 'ada', user_info: { name: 'Ada' } });
  } finally {
    ada.pusher.disconnect();
    bob.pusher.disconnect();
  }
});
