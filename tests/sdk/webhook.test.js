'use strict';
// Webhooks with the official Node server SDK: what pusher-local POSTs to
// `--webhook URL` passes `pusher.webhook({ headers, rawBody }).isValid()`, with
// the header names in the exact case PHP needs, and the kinds arrive when
// pusher-js clients subscribe, send client events and leave.

const assert = require('node:assert/strict');
const http = require('node:http');
const { before, after } = require('node:test');
const { startServer, sdkTest, EventLog, withTimeout } = require('./support');

// member_removed and channel_vacated wait 3 s (as real Pusher does).
const LEAVE_WAIT_MS = 10_000;

let server;
let receiver;
let hooks;

/** A webhook endpoint on 127.0.0.1:0 that logs every request by its event name. */
function startReceiver(log) {
  const http_server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const body = JSON.parse(rawBody);
      for (const event of body.events) {
        const request = { headers: req.headers, rawHeaders: req.rawHeaders, rawBody, url: req.url };
        // `event` is the log's key (the kind); `hook` is the events[] item as sent.
        log.push({ event: event.name, channel: event.channel, user_id: event.user_id, hook: event, request });
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  return new Promise((resolve) => http_server.listen(0, '127.0.0.1', () => resolve(http_server)));
}

before(async () => {
  hooks = new EventLog('webhook endpoint');
  receiver = await startReceiver(hooks);
  const url = `http://127.0.0.1:${receiver.address().port}/pusher/webhook`;
  server = await startServer({ extraArgs: ['--webhook', url] });
});
after(async () => {
  if (server) await server.stop();
  if (receiver) await new Promise((resolve) => receiver.close(resolve));
});
const it = (name, fn) => sdkTest(() => server, name, fn);

function assertValid(s, hook) {
  const { headers, rawHeaders, rawBody, url } = hook.request;
  assert.equal(url, '/pusher/webhook');
  const webhook = s.api.webhook({ headers, rawBody });
  assert.ok(webhook.isValid(), `the SDK accepts ${rawBody} with ${JSON.stringify(headers)}`);
  assert.ok(Math.abs(webhook.getTime().getTime() - Date.now()) < 60_000, 'time_ms is now');
  assert.equal(s.serverSdk({ secret: 'not-the-secret' }).webhook({ headers, rawBody }).isValid(), false);
  for (const name of ['Content-Type', 'X-Pusher-Key', 'X-Pusher-Signature']) {
    assert.ok(rawHeaders.includes(name), `header ${name} sent in exactly that case: ${rawHeaders}`);
  }
  assert.equal(headers['content-type'], 'application/json');
  return webhook;
}

it('presence join, client event and leave produce webhooks the Node SDK validates', async (s) => {
  const room = 'presence-webhooks';
  const alice = await s.connect('alice', { presence: { user_id: 'alice', user_info: { name: 'Alice' } } });
  const bob = await s.connect('bob', { presence: { user_id: 'bob' } });
  const aliceRoom = await alice.subscribe(room);

  const occupied = await hooks.waitFor('channel_occupied', (e) => e.channel === room);
  const webhook = assertValid(s, occupied);
  assert.deepEqual(webhook.getEvents(), [{ name: 'channel_occupied', channel: room }]);
  assertValid(s, await hooks.waitFor('member_added', (e) => e.channel === room && e.user_id === 'alice'));

  const bobRoom = await bob.subscribe(room);
  assertValid(s, await hooks.waitFor('member_added', (e) => e.channel === room && e.user_id === 'bob'));

  const heard = bob.once(bobRoom, 'client-wave');
  aliceRoom.trigger('client-wave', { hello: 'bob' });
  await heard;
  const clientEvent = await hooks.waitFor('client_event', (e) => e.channel === room);
  assertValid(s, clientEvent);
  assert.deepEqual(clientEvent.hook, {
    name: 'client_event',
    channel: room,
    event: 'client-wave',
    data: JSON.stringify({ hello: 'bob' }),
    socket_id: alice.socketId,
    user_id: 'alice',
  });

  // bob leaves: member_removed arrives after the leave delay; alice stays, so no vacated.
  bob.disconnect();
  const removed = await hooks.waitFor('member_removed', (e) => e.channel === room, LEAVE_WAIT_MS);
  assertValid(s, removed);
  assert.equal(removed.user_id, 'bob');
  assert.equal(hooks.filter('channel_vacated', (e) => e.channel === room).length, 0);
  assert.equal(hooks.filter('member_removed', (e) => e.user_id === 'alice').length, 0);

  // The same webhooks are in the outbox, reachable over the control API.
  const res = await withTimeout(fetch(`http://127.0.0.1:${s.port}/pusher-local/webhooks`), 5_000, 'the control API');
  assert.equal(res.status, 200);
  const { webhooks } = await res.json();
  const kept = webhooks.find((w) => w.events.some((e) => e.name === 'member_removed' && e.user_id === 'bob'));
  assert.ok(kept, 'member_removed is in the outbox');
  assert.equal(kept.body, removed.request.rawBody);
  // channel_occupied was answered seconds ago (its 200 may still be in flight for the newest).
  const first = webhooks.find((w) => w.body === occupied.request.rawBody);
  assert.equal(first.deliveries[0].state, 'delivered');
  assert.equal(first.deliveries[0].attempts[0].status, 200);
});
