'use strict';
// pusher-js's HTTP fallback transports (xhr_streaming and xhr_polling, used when WebSockets
// fail or are disabled) against pusher-local: the same protocol as over a WebSocket, and
// clients on either transport see each other.

const assert = require('node:assert/strict');
const { SOCKET_ID_RE, withServer } = require('./support');

const it = withServer();

const ALICE = { user_id: 'alice', user_info: { name: 'Alice' } };
const BOB = { user_id: 'bob', user_info: { name: 'Bob' } };
// A disconnected HTTP client is noticed when its receive request ends (a few seconds at most).
const GONE_TIMEOUT_MS = 15_000;

for (const transport of ['xhr_streaming', 'xhr_polling']) {
  it(`${transport}: connects, subscribes and receives triggered events`, async (s) => {
    const a = await s.connect('a', { transport });
    assert.match(a.socketId, SOCKET_ID_RE);
    assert.equal(a.pusher.connection.connection.transport.name, transport, 'the fallback transport is in use');

    const channel = await a.subscribe(`public-${transport}`);
    const payload = { message: 'hé "x" \\ ✓', list: [1, null, true] };
    const got = a.once(channel, 'greeting');
    const res = await s.api.trigger(`public-${transport}`, 'greeting', payload);
    assert.equal(res.status, 200);
    assert.deepEqual((await got)[0], payload);

    // Several events in a row arrive in order (batched into one a[…] line or not).
    const log = a.record(channel);
    await s.api.triggerBatch(
      [1, 2, 3, 4, 5].map((n) => ({ channel: `public-${transport}`, name: `n${n}`, data: { n } })),
    );
    await log.waitFor('n5');
    assert.deepEqual(log.names(), ['n1', 'n2', 'n3', 'n4', 'n5']);
  });

  it(`${transport}: presence and client events between a fallback client and a WebSocket client`, async (s) => {
    const name = `presence-${transport}`;
    const alice = await s.connect('alice', { transport, presence: ALICE });
    const bob = await s.connect('bob', { presence: BOB });
    const chAlice = await alice.subscribe(name);
    const added = alice.once(chAlice, 'pusher:member_added');
    const chBob = await bob.subscribe(name);
    assert.equal((await added)[0].id, 'bob');
    assert.equal(chBob.members.count, 2);
    assert.equal(chAlice.members.count, 2);

    const toBob = bob.once(chBob, 'client-move');
    assert.equal(chAlice.trigger('client-move', { x: 1 }), true);
    const [moved, meta] = await toBob;
    assert.deepEqual(moved, { x: 1 });
    assert.equal(meta.user_id, 'alice');

    const toAlice = alice.once(chAlice, 'client-reply');
    assert.equal(chBob.trigger('client-reply', { ok: true }), true);
    assert.deepEqual((await toAlice)[0], { ok: true });

    // Closing the fallback client removes its member for the others.
    const removed = bob.once(chBob, 'pusher:member_removed', GONE_TIMEOUT_MS);
    alice.disconnect();
    assert.equal((await removed)[0].id, 'alice');
    assert.equal(chBob.members.count, 1);
  });

  it(`${transport}: terminateUserConnections closes the fallback client with 4009 and it stays closed`, async (s) => {
    const victim = await s.connect('victim', { transport, user: { id: `u-${transport}` } });
    const signedIn = victim.frames.waitFor('pusher:signin_success');
    victim.pusher.signin();
    await signedIn;

    const closed = victim.states.waitFor('disconnected');
    const res = await s.api.terminateUserConnections(`u-${transport}`);
    assert.equal(res.status, 200);
    await closed;
    assert.equal(victim.state, 'disconnected', 'pusher-js does not reconnect after 4009');
  });
}
