'use strict';
// Presence channels with pusher-js: rosters count distinct users, member_added
// and member_removed fire only for a user's first and last socket, client
// events carry user_id, and the HTTP channel queries agree.

const assert = require('node:assert/strict');
const { withServer } = require('./support');

const it = withServer();

const ALICE = { user_id: 'alice', user_info: { name: 'Alice' } };
const BOB = { user_id: 'bob', user_info: { name: 'Bob', role: 'admin' } };

function roster(channel) {
  const members = [];
  channel.members.each((m) => members.push({ id: m.id, info: m.info }));
  return members.sort((x, y) => x.id.localeCompare(y.id));
}

it('presence rosters and member events count distinct users across sockets', async (s) => {
  const name = 'presence-room';

  // alice, first socket.
  const alice1 = await s.connect('alice1', { presence: ALICE });
  const chAlice1 = await alice1.subscribe(name);
  assert.equal(chAlice1.members.count, 1);
  assert.deepEqual(chAlice1.members.me, { id: 'alice', info: { name: 'Alice' } });
  const logAlice1 = alice1.record(chAlice1);

  // bob joins: alice1 hears member_added for bob, once.
  const bob = await s.connect('bob', { presence: BOB });
  const bobAdded = alice1.once(chAlice1, 'pusher:member_added');
  const chBob = await bob.subscribe(name);
  const logBob = bob.record(chBob);
  const [added] = await bobAdded;
  assert.deepEqual(added, { id: 'bob', info: { name: 'Bob', role: 'admin' } });
  assert.equal(chBob.members.count, 2);
  assert.deepEqual(chBob.members.me, { id: 'bob', info: { name: 'Bob', role: 'admin' } });
  assert.deepEqual(roster(chBob), [
    { id: 'alice', info: { name: 'Alice' } },
    { id: 'bob', info: { name: 'Bob', role: 'admin' } },
  ]);
  assert.equal(chAlice1.members.count, 2);

  // alice, second socket: the roster still has two distinct users, and nobody
  // hears a member_added for a user who was already present.
  const alice2 = await s.connect('alice2', { presence: ALICE });
  const chAlice2 = await alice2.subscribe(name);
  const logAlice2 = alice2.record(chAlice2);
  assert.equal(chAlice2.members.count, 2, 'count is distinct users, not sockets');
  assert.deepEqual(chAlice2.members.me, { id: 'alice', info: { name: 'Alice' } });
  assert.deepEqual(roster(chAlice2).map((m) => m.id), ['alice', 'bob']);

  await s.api.trigger(name, 'marker-1', {});
  await logAlice1.waitFor('marker-1');
  await logBob.waitFor('marker-1');
  await logAlice2.waitFor('marker-1');
  assert.equal(logAlice1.filter('pusher:member_added').length, 1, 'alice1 heard member_added only for bob');
  assert.deepEqual(logBob.filter('pusher:member_added'), [], "bob must not hear member_added for alice's second socket");
  assert.deepEqual(bob.frames.filter('pusher_internal:member_added'), []);
  assert.deepEqual(alice2.frames.filter('pusher_internal:member_added'), [], 'the joiner gets no member_added for itself');
  assert.equal(chBob.members.count, 2);

  // The HTTP API agrees: two distinct users, three connections.
  const channels = await s.api.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
  assert.equal(channels.status, 200);
  const channelsBody = await channels.json();
  assert.deepEqual(channelsBody.channels[name], { user_count: 2 }, JSON.stringify(channelsBody));
  for (const key of Object.keys(channelsBody.channels)) assert.ok(key.startsWith('presence-'), `${key} matches the prefix`);

  const info = await s.api.get({ path: `/channels/${name}`, params: { info: 'user_count,subscription_count' } });
  assert.equal(info.status, 200);
  assert.deepEqual(await info.json(), { occupied: true, user_count: 2, subscription_count: 3 });

  const users = await s.api.get({ path: `/channels/${name}/users` });
  assert.equal(users.status, 200);
  const usersBody = await users.json();
  assert.deepEqual(Object.keys(usersBody), ['users']);
  assert.deepEqual([...usersBody.users].sort((x, y) => x.id.localeCompare(y.id)), [{ id: 'alice' }, { id: 'bob' }]);

  // alice2 leaves: alice still has a socket, so nobody hears member_removed.
  alice2.pusher.unsubscribe(name);
  await alice2.roundTrip(); // the unsubscribe has been handled once the pong is back
  const afterLeave = await s.api.get({ path: `/channels/${name}`, params: { info: 'user_count,subscription_count' } });
  assert.deepEqual(await afterLeave.json(), { occupied: true, user_count: 2, subscription_count: 2 });
  await s.api.trigger(name, 'marker-2', {});
  await logBob.waitFor('marker-2');
  await logAlice1.waitFor('marker-2');
  assert.deepEqual(logBob.filter('pusher:member_removed'), [], "bob must not hear member_removed while alice has a socket left");
  assert.deepEqual(bob.frames.filter('pusher_internal:member_removed'), []);
  assert.deepEqual(alice1.frames.filter('pusher_internal:member_removed'), []);
  assert.equal(chBob.members.count, 2);

  // alice1 leaves too: now bob hears member_removed for alice, once.
  const removed = bob.once(chBob, 'pusher:member_removed');
  alice1.pusher.unsubscribe(name);
  const [gone] = await removed;
  assert.deepEqual(gone, { id: 'alice', info: { name: 'Alice' } });
  assert.equal(chBob.members.count, 1);
  assert.deepEqual(roster(chBob).map((m) => m.id), ['bob']);
  await s.api.trigger(name, 'marker-4', {});
  await logBob.waitFor('marker-4');
  assert.equal(logBob.filter('pusher:member_removed').length, 1);
});

it('a presence member disconnecting its last socket is removed for the others', async (s) => {
  const name = 'presence-disconnect';
  const alice = await s.connect('alice', { presence: ALICE });
  const bob = await s.connect('bob', { presence: BOB });
  await alice.subscribe(name);
  const chBob = await bob.subscribe(name);
  assert.equal(chBob.members.count, 2);

  const removed = bob.once(chBob, 'pusher:member_removed');
  alice.disconnect();
  const [gone] = await removed;
  assert.equal(gone.id, 'alice');
  assert.equal(chBob.members.count, 1);
});

it('client events on a presence channel carry the sender user_id and are not echoed', async (s) => {
  const name = 'presence-chat';
  const alice = await s.connect('alice', { presence: ALICE });
  const bob = await s.connect('bob', { presence: BOB });
  const chAlice = await alice.subscribe(name);
  const chBob = await bob.subscribe(name);
  const logAlice = alice.record(chAlice);

  const got = bob.once(chBob, 'client-move');
  assert.equal(chAlice.trigger('client-move', { x: 1, y: [2, 3] }), true);
  const [data, metadata] = await got;
  assert.deepEqual(data, { x: 1, y: [2, 3] });
  assert.equal(metadata.user_id, 'alice');

  await s.api.trigger(name, 'marker', {});
  await logAlice.waitFor('marker');
  assert.deepEqual(logAlice.filter('client-move'), [], 'client events are not echoed to the sender');
  assert.deepEqual(alice.frames.filter('pusher:error'), [], 'the client event was accepted without error');
});
