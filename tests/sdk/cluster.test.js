'use strict';
// Two pusher-local nodes on one Redis behave, to pusher-js and the `pusher` SDK,
// as one server (issue 5): an event triggered on node A reaches a client on
// node B, presence is one roster across nodes, the channel queries answer for
// both, and killing node A with SIGKILL leaves no ghost member on node B.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { before, after } = require('node:test');
const { startServer, startRedis, sdkTest, withTimeout } = require('./support');

let redis;
let a;
let b;
before(async () => {
  redis = await startRedis();
  if (!redis) {
    process.stderr.write('SKIPPED: redis-server is not installed; the cluster SDK tests did not run\n');
    return;
  }
  const extraArgs = ['--redis-url', redis.url, '--redis-prefix', `sdk-${crypto.randomBytes(4).toString('hex')}`];
  a = await startServer({ extraArgs });
  b = await startServer({ extraArgs });
});
after(async () => {
  if (a) await a.stop();
  if (b) await b.stop();
  if (redis) redis.stop();
});

const it = (name, fn) =>
  sdkTest(
    () => b || { clients: [], captured: '', output: () => '', disconnectAll() {} },
    name,
    async (server, t) => {
      if (!redis) return t.skip('redis-server is not installed');
      try {
        await fn(t);
      } finally {
        a.disconnectAll();
      }
    },
  );

const ALICE = { user_id: 'alice', user_info: { name: 'Alice' } };
const BOB = { user_id: 'bob', user_info: { name: 'Bob' } };

it('two nodes on one Redis are one server, and a killed node leaves no ghost member', async () => {
  // An event triggered through node A reaches a pusher-js client on node B.
  const far = await b.connect('far');
  const news = await far.subscribe('news');
  const got = far.once(news, 'flash');
  await a.api.trigger('news', 'flash', { n: 1 });
  const [data] = await got;
  assert.deepEqual(data, { n: 1 });

  // Presence: alice on A, bob on B, one roster; member_added crosses nodes.
  const alice = await a.connect('alice', { presence: ALICE });
  const chAlice = await alice.subscribe('presence-team');
  const bobAdded = alice.once(chAlice, 'pusher:member_added');
  const bob = await b.connect('bob', { presence: BOB });
  const chBob = await bob.subscribe('presence-team');
  assert.equal(chBob.members.count, 2, 'the roster lists members of both nodes');
  const [added] = await bobAdded;
  assert.deepEqual(added, { id: 'bob', info: { name: 'Bob' } });

  // The channel queries answer for the whole cluster, from either node.
  for (const server of [a, b]) {
    const users = await (await server.api.get({ path: '/channels/presence-team/users' })).json();
    assert.deepEqual(users, { users: [{ id: 'alice' }, { id: 'bob' }] });
    const info = await (
      await server.api.get({ path: '/channels/presence-team', params: { info: 'user_count,subscription_count' } })
    ).json();
    assert.deepEqual(info, { occupied: true, user_count: 2, subscription_count: 2 });
  }

  // Node A dies without a word: bob hears member_removed for alice within 10 s.
  const removed = bob.once(chBob, 'pusher:member_removed', 10_000);
  a.child.kill('SIGKILL');
  const [gone] = await removed;
  assert.equal(gone.id, 'alice');
  assert.equal(chBob.members.count, 1);
  const users = await withTimeout(
    b.api.get({ path: '/channels/presence-team/users' }).then((r) => r.json()),
    5_000,
    'the users query on node B',
  );
  assert.deepEqual(users, { users: [{ id: 'bob' }] }, 'no ghost member');
});
