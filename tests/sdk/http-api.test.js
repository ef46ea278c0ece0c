'use strict';
// The signed HTTP API through the `pusher` Node SDK: channel queries, trigger
// info, and a rejected signature that leaves the server working.

const assert = require('node:assert/strict');
const { withServer, expectStatus } = require('./support');

const it = withServer();

async function json(res) {
  assert.equal(res.status, 200);
  assert.match(String(res.headers.get('content-type')), /^application\/json/);
  return res.json();
}

it('channel queries report occupied public channels and their subscription counts', async (s) => {
  const a = await s.connect('a');
  const b = await s.connect('b');
  await a.subscribe('lobby-main');
  await b.subscribe('lobby-main');
  await b.subscribe('lobby-side');

  const listed = await json(await s.api.get({ path: '/channels', params: { filter_by_prefix: 'lobby-' } }));
  assert.deepEqual(listed, { channels: { 'lobby-main': {}, 'lobby-side': {} } });

  const main = await json(await s.api.get({ path: '/channels/lobby-main', params: { info: 'subscription_count' } }));
  assert.deepEqual(main, { occupied: true, subscription_count: 2 });

  const side = await json(await s.api.get({ path: '/channels/lobby-side' }));
  assert.deepEqual(side, { occupied: true });

  const empty = await json(await s.api.get({ path: '/channels', params: { filter_by_prefix: 'nothing-here-' } }));
  assert.deepEqual(empty, { channels: {} }, 'channels is an object even when empty');
});

it('presence channel queries count distinct users and list them', async (s) => {
  const name = 'presence-http';
  const carol1 = await s.connect('carol1', { presence: { user_id: 'carol', user_info: { n: 1 } } });
  const carol2 = await s.connect('carol2', { presence: { user_id: 'carol', user_info: { n: 1 } } });
  const dave = await s.connect('dave', { presence: { user_id: 'dave' } });
  await carol1.subscribe(name);
  await carol2.subscribe(name);
  await dave.subscribe(name);

  const listed = await json(
    await s.api.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }),
  );
  assert.deepEqual(listed.channels[name], { user_count: 2 }, JSON.stringify(listed));

  const info = await json(
    await s.api.get({ path: `/channels/${name}`, params: { info: 'user_count,subscription_count' } }),
  );
  assert.deepEqual(info, { occupied: true, user_count: 2, subscription_count: 3 });

  const users = await json(await s.api.get({ path: `/channels/${name}/users` }));
  assert.deepEqual(
    [...users.users].sort((x, y) => x.id.localeCompare(y.id)),
    [{ id: 'carol' }, { id: 'dave' }],
  );

  const triggered = await json(
    await s.api.trigger(name, 'evt', {}, { info: 'user_count,subscription_count' }),
  );
  assert.deepEqual(triggered, { channels: { [name]: { user_count: 2, subscription_count: 3 } } });
});

it('trigger with info=subscription_count covers every channel triggered to', async (s) => {
  const a = await s.connect('a');
  const b = await s.connect('b');
  await a.subscribe('info-one');
  await b.subscribe('info-one');
  await b.subscribe('info-two');

  const res = await json(await s.api.trigger(['info-one', 'info-two'], 'evt', 'x', { info: 'subscription_count' }));
  assert.deepEqual(res, {
    channels: { 'info-one': { subscription_count: 2 }, 'info-two': { subscription_count: 1 } },
  });
});

it('a trigger signed with the wrong secret is rejected with 401 and the server keeps working', async (s) => {
  const a = await s.connect('a');
  const channel = await a.subscribe('after-401');
  const log = a.record(channel);

  const wrong = s.serverSdk({ secret: 'definitely-wrong' });
  const err = await expectStatus(wrong.trigger('after-401', 'forged', { bad: true }), 401);
  assert.equal(err.name, 'PusherRequestError');
  assert.match(String(err.body), /Invalid signature/);

  const ok = await s.api.trigger('after-401', 'genuine', { good: true });
  assert.equal(ok.status, 200);
  assert.deepEqual((await log.waitFor('genuine')).data, { good: true });
  assert.deepEqual(log.filter('forged'), [], 'the rejected event was not delivered');
});
