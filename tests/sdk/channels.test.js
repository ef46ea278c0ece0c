'use strict';
// Connection, public channels, triggers, batches, socket_id exclusion and cache
// channels, driven by pusher-js 8 and the `pusher` Node server SDK 5.

const assert = require('node:assert/strict');
const { SOCKET_ID_RE, withServer } = require('./support');

const it = withServer();

it('pusher-js connects and gets a socket id of the form digits.digits', async (s) => {
  const a = await s.connect('a');
  const b = await s.connect('b');
  assert.equal(a.state, 'connected');
  assert.match(a.socketId, SOCKET_ID_RE);
  assert.match(b.socketId, SOCKET_ID_RE);
  assert.notEqual(a.socketId, b.socketId, 'every connection gets its own socket id');
  assert.deepEqual(a.states.names().slice(-1), ['connected']);
  // pusher-js took activity_timeout (seconds) from connection_established.
  const activity = a.pusher.connection.activityTimeout;
  assert.ok(Number.isFinite(activity) && activity > 0, `activity timeout from the handshake: ${activity}`);
});

it('a public channel subscription succeeds and trigger delivers object data exactly', async (s) => {
  const a = await s.connect('a');
  const channel = await a.subscribe('public-objects');
  assert.equal(channel.subscribed, true);

  const payload = {
    message: 'hello',
    n: 42,
    pi: 3.25,
    nested: { list: [1, 'two', null, true, false], empty: {} },
    unicode: 'héllo ✓ 🚀 "quoted" \\ back',
  };
  const got = a.once(channel, 'greeting');
  const res = await s.api.trigger('public-objects', 'greeting', payload);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {}, 'a trigger without info answers {}');
  const [data] = await got;
  assert.deepEqual(data, payload);
});

it('trigger relays string data verbatim, JSON or not', async (s) => {
  const a = await s.connect('a');
  const channel = await a.subscribe('public-strings');
  const log = a.record(channel);

  // Not valid JSON: pusher-js keeps the raw string, so any re-encoding shows.
  const raw = '  hello "world" \\ \n ✓ tab\there  ';
  await s.api.trigger('public-strings', 'raw', raw);
  const rawEvent = await log.waitFor('raw');
  assert.equal(rawEvent.data, raw);

  // A JSON string is delivered as that JSON (pusher-js parses it).
  await s.api.trigger('public-strings', 'json', '{"a":1,"b":[true,null]}');
  const jsonEvent = await log.waitFor('json');
  assert.deepEqual(jsonEvent.data, { a: 1, b: [true, null] });
});

it('one trigger to several channels delivers to each of them', async (s) => {
  const a = await s.connect('a');
  const b = await s.connect('b');
  const one = await a.subscribe('multi-one');
  const two = await a.subscribe('multi-two');
  const three = await b.subscribe('multi-three');
  const logOne = a.record(one);
  const logTwo = a.record(two);
  const logThree = b.record(three);

  const res = await s.api.trigger(['multi-one', 'multi-two', 'multi-three'], 'fanout', { k: 'v' });
  assert.equal(res.status, 200);
  for (const log of [logOne, logTwo, logThree]) {
    const event = await log.waitFor('fanout');
    assert.deepEqual(event.data, { k: 'v' });
  }
  // Marker: nothing is delivered twice.
  await s.api.trigger(['multi-one', 'multi-two', 'multi-three'], 'marker', {});
  for (const log of [logOne, logTwo, logThree]) {
    await log.waitFor('marker');
    assert.equal(log.filter('fanout').length, 1, `${log.label} got "fanout" exactly once`);
  }
});

it('triggerBatch delivers every event of the batch to its channel', async (s) => {
  const a = await s.connect('a');
  const first = await a.subscribe('batch-one');
  const second = await a.subscribe('batch-two');
  const logFirst = a.record(first);
  const logSecond = a.record(second);

  const res = await s.api.triggerBatch([
    { channel: 'batch-one', name: 'b1', data: { i: 1 } },
    { channel: 'batch-two', name: 'b2', data: 'plain string' },
    { channel: 'batch-one', name: 'b3', data: { i: 3 } },
  ]);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {}, 'a batch without info answers {}');

  assert.deepEqual((await logFirst.waitFor('b1')).data, { i: 1 });
  assert.equal((await logSecond.waitFor('b2')).data, 'plain string');
  assert.deepEqual((await logFirst.waitFor('b3')).data, { i: 3 });
  assert.deepEqual(logFirst.names().filter((n) => !n.startsWith('pusher')), ['b1', 'b3'], 'batch order is kept');
});

it('trigger with socket_id skips that connection and reaches the others', async (s) => {
  const excluded = await s.connect('excluded');
  const other = await s.connect('other');
  const channelX = await excluded.subscribe('exclusion');
  const channelO = await other.subscribe('exclusion');
  const logX = excluded.record(channelX);
  const logO = other.record(channelO);

  await s.api.trigger('exclusion', 'not-for-you', { n: 1 }, { socket_id: excluded.socketId });
  assert.deepEqual((await logO.waitFor('not-for-you')).data, { n: 1 });

  // Marker: once it arrives, the excluded event would have arrived before it.
  await s.api.trigger('exclusion', 'marker', {});
  await logX.waitFor('marker');
  await logO.waitFor('marker');
  assert.deepEqual(logX.filter('not-for-you'), [], 'the excluded socket must not receive the event');
});

it('trigger with info=subscription_count reports the number of connections', async (s) => {
  const a = await s.connect('a');
  const b = await s.connect('b');
  await a.subscribe('counted');
  await b.subscribe('counted');

  const res = await s.api.trigger('counted', 'evt', {}, { info: 'subscription_count' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { channels: { counted: { subscription_count: 2 } } });
});

it('a cache channel sends pusher:cache_miss when empty and the last event to new subscribers', async (s) => {
  const first = await s.connect('first');
  const channel = first.pusher.subscribe('cache-news');
  const log = first.record(channel);
  await log.waitFor('pusher:subscription_succeeded');
  await log.waitFor('pusher:cache_miss');
  // pusher:subscription_count (an optional per-app feature) may be interleaved; it is not a channel event.
  const order = (l) => l.names().filter((n) => n !== 'pusher:subscription_count');
  assert.deepEqual(order(log), ['pusher:subscription_succeeded', 'pusher:cache_miss'],
    'cache_miss comes right after subscription_succeeded');

  await s.api.trigger('cache-news', 'headline', { title: 'first' });
  await s.api.trigger('cache-news', 'headline', { title: 'latest' });
  await log.waitFor('headline', (e) => e.data.title === 'latest');

  const second = await s.connect('second');
  const channel2 = second.pusher.subscribe('cache-news');
  const log2 = second.record(channel2);
  const cached = await log2.waitFor('headline');
  assert.deepEqual(cached.data, { title: 'latest' }, 'the cached event is the last one triggered');
  assert.deepEqual(order(log2), ['pusher:subscription_succeeded', 'headline'],
    'the cached event comes immediately after subscription_succeeded, with no cache_miss');
});
