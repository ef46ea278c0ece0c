'use strict';
// The test-suite control API (issue 13) as a JavaScript suite drives it: pusher-js subscribes,
// the `pusher` Node SDK triggers, and plain fetch() calls /pusher-local/wait/event, /events,
// /wait/subscribers, /wait/member (presence through --dev-auth), /wait/client-event,
// /connections, /channels, /faults (latency, refuse_connections) and /metrics. Last, two
// pusher-local instances side by side on --port 0, each found through its --ready-file.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const PusherClient = require('pusher-js');
const PusherServer = require('pusher');
const { withServer, withTimeout, binaryPath, hermeticEnv, APP, EVENT_TIMEOUT_MS } = require('./support');

const it = withServer({ extraArgs: ['--dev-auth'] });

// The latency fault's delay, and how much later than that a delivery may still arrive.
const LATENCY_MS = 600;
const LATENCY_SLACK_MS = 5_000;
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

/** Calls /pusher-local/{route}; `body` is sent as JSON. Resolves with { status, body, text, headers }. */
async function control(port, method, route, body) {
  const init = { method, signal: AbortSignal.timeout(((body && body.timeout_ms) || 5_000) + 5_000) };
  if (body !== undefined) {
    init.headers = { 'content-type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`http://127.0.0.1:${port}/pusher-local/${route}`, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, body: json, text, headers: res.headers };
}

/** The JSON body of a control call that must answer `status`. */
async function ok(call, status = 200) {
  const res = await call;
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  return res.body;
}

// pusher-js clients made with devClient(), disconnected after each test.
const opened = [];

/** A test that starts from a reset server and disconnects its --dev-auth clients afterwards. */
function test(name, fn) {
  it(name, async (s, t) => {
    await ok(control(s.port, 'POST', 'reset', {}));
    try {
      await fn(s, t);
    } finally {
      for (const pusher of opened.splice(0)) pusher.disconnect();
    }
  });
}

/** pusher-js on the WebSocket of server `s`, as the banner's snippet configures it. */
function clientOptions(s) {
  return { cluster: 'local', wsHost: '127.0.0.1', wsPort: s.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true };
}

/** pusher-js authorizing through --dev-auth's endpoints as `user` (as in dev-auth.test.js). */
function devClient(s, user) {
  const base = `http://127.0.0.1:${s.port}/pusher-local`;
  const headers = { 'X-Pusher-Local-User': user };
  const pusher = new PusherClient(APP.key, {
    ...clientOptions(s),
    channelAuthorization: { endpoint: `${base}/auth`, headers },
    userAuthentication: { endpoint: `${base}/user-auth`, headers },
  });
  opened.push(pusher);
  return pusher;
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

/** The value of the Prometheus sample `name{labels…}` (labels in any order), or undefined. */
function sample(text, name, labels) {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line.trim());
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return undefined;
}

test('pusher-js subscribes, the SDK triggers, and wait/subscribers, wait/event and /events see it', async (s) => {
  const a = await s.connect('a');
  const channel = await a.subscribe('harness-news');
  const waited = await ok(control(s.port, 'POST', 'wait/subscribers', { channel: 'harness-news', timeout_ms: 5_000 }));
  assert.deepEqual(waited, { channel: 'harness-news', subscription_count: 1 });

  const got = a.once(channel, 'headline');
  await s.api.trigger('harness-news', 'headline', { id: 1, title: 'Hello' });
  const { event } = await ok(
    control(s.port, 'POST', 'wait/event', { channel: 'harness-*', event: 'headline', data: { id: 1 }, timeout_ms: 5_000 }),
  );
  assert.equal(event.app_id, APP.appId);
  assert.equal(event.channel, 'harness-news');
  assert.equal(event.event, 'headline');
  assert.equal(event.source, 'api');
  assert.deepEqual(JSON.parse(event.data), { id: 1, title: 'Hello' });
  assert.equal(event.socket_id, null);
  assert.ok(Number.isInteger(event.seq), `seq ${event.seq}`);
  assert.ok(event.delivered, 'one subscriber got it');
  assert.deepEqual((await got)[0], { id: 1, title: 'Hello' });

  const { events } = await ok(control(s.port, 'GET', 'events?channel=harness-*&event=headline'));
  assert.deepEqual(events, [event]);

  const missing = await control(s.port, 'POST', 'wait/event', { channel: 'harness-news', data: { id: 2 }, timeout_ms: 200 });
  assert.equal(missing.status, 408, missing.text);
  assert.deepEqual(missing.body.seen.events.map((e) => e.seq), [event.seq]);
});

test('wait/member and /channels follow a presence channel joined through --dev-auth', async (s) => {
  const ada = devClient(s, 'ada');
  const bob = devClient(s, 'bob');
  await subscribed(ada, 'presence-harness');
  let member = await ok(control(s.port, 'POST', 'wait/member', { channel: 'presence-harness', user_id: 'ada' }));
  assert.deepEqual(member, { channel: 'presence-harness', user_id: 'ada', present: true, members: ['ada'] });

  await subscribed(bob, 'presence-harness');
  member = await ok(control(s.port, 'POST', 'wait/member', { channel: 'presence-harness', user_id: 'bob' }));
  assert.deepEqual([...member.members].sort(), ['ada', 'bob']);

  const { channels } = await ok(control(s.port, 'GET', 'channels?prefix=presence-'));
  assert.equal(channels.length, 1);
  const [room] = channels;
  assert.equal(room.name, 'presence-harness');
  assert.equal(room.type, 'presence');
  assert.equal(room.subscription_count, 2);
  assert.equal(room.user_count, 2);
  assert.deepEqual(
    [...room.members].sort((x, y) => x.user_id.localeCompare(y.user_id)),
    [
      { user_id: 'ada', user_info: { name: 'ada' } },
      { user_id: 'bob', user_info: { name: 'bob' } },
    ],
  );

  bob.disconnect();
  member = await ok(
    control(s.port, 'POST', 'wait/member', { channel: 'presence-harness', user_id: 'bob', present: false, timeout_ms: 5_000 }),
  );
  assert.deepEqual(member, { channel: 'presence-harness', user_id: 'bob', present: false, members: ['ada'] });

  const absent = await control(s.port, 'POST', 'wait/member', { channel: 'presence-harness', user_id: 'carol', timeout_ms: 200 });
  assert.equal(absent.status, 408, absent.text);
  assert.deepEqual(absent.body.seen, { members: ['ada'] });
});

test('wait/client-event sees a client event that pusher-js sent', async (s) => {
  const ada = devClient(s, 'ada');
  const bob = devClient(s, 'bob');
  const adaChat = await subscribed(ada, 'private-harness-chat');
  const bobChat = await subscribed(bob, 'private-harness-chat');
  const got = new Promise((resolve) => bobChat.bind('client-typing', resolve));
  assert.equal(adaChat.trigger('client-typing', { who: 'ada' }), true);

  const { event } = await ok(
    control(s.port, 'POST', 'wait/client-event', {
      channel: 'private-harness-*',
      event: 'client-typing',
      data: { who: 'ada' },
    }),
  );
  assert.equal(event.source, 'client');
  assert.equal(event.channel, 'private-harness-chat');
  assert.equal(event.socket_id, ada.connection.socket_id);
  assert.equal(event.user_id, null, 'not signed in');
  assert.deepEqual(JSON.parse(event.data), { who: 'ada' });
  assert.deepEqual(await withTimeout(got, EVENT_TIMEOUT_MS, 'client-typing at bob'), { who: 'ada' });
});

test('/connections lists a pusher-js socket on the ws transport, with its channels and user', async (s) => {
  const a = await s.connect('a', { user: { id: 'ada', user_info: { name: 'Ada' } } });
  await a.subscribe('harness-b');
  await a.subscribe('harness-a');
  const signedIn = a.frames.waitFor('pusher:signin_success');
  a.pusher.signin();
  await signedIn;
  // After signin pusher-js subscribes to the user's own channel: wait for it, so the list below
  // does not race that subscription.
  await ok(control(s.port, 'POST', 'wait/subscribers', { channel: '#server-to-user-ada', count: 1 }));

  const { connections } = await ok(control(s.port, 'GET', 'connections?channel=harness-a'));
  assert.equal(connections.length, 1, JSON.stringify(connections));
  const [c] = connections;
  assert.equal(c.socket_id, a.socketId);
  assert.equal(c.app_id, APP.appId);
  assert.equal(c.transport, 'ws');
  assert.deepEqual(c.channels, ['#server-to-user-ada', 'harness-a', 'harness-b']);
  assert.equal(c.user_id, 'ada');
  assert.match(c.remote_addr, /^127\.0\.0\.1:\d+$/);
  assert.ok(c.frames_in >= 3, `frames_in ${c.frames_in}: two subscribes and a signin`);
  assert.ok(c.frames_out >= 4, `frames_out ${c.frames_out}`);
  assert.ok(c.age_ms >= 0);

  const byUser = await ok(control(s.port, 'GET', 'connections?user_id=ada'));
  assert.deepEqual(byUser.connections.map((x) => x.socket_id), [a.socketId]);
});

test('a latency fault delays deliveries on matching channels by at least its ms', async (s) => {
  const a = await s.connect('a');
  const slow = await a.subscribe('slow-feed');
  const fast = await a.subscribe('fast-feed');
  const { fault } = await ok(control(s.port, 'POST', 'faults', { kind: 'latency', channel: 'slow-*', ms: LATENCY_MS }), 201);
  assert.equal(fault.kind, 'latency');
  assert.equal(fault.ms, LATENCY_MS);
  assert.equal(fault.expires_in_ms, null);

  const arrivals = [];
  const slowGot = a.once(slow, 'tick', LATENCY_MS + LATENCY_SLACK_MS).then(() => arrivals.push('slow'));
  const fastGot = a.once(fast, 'tick').then(() => arrivals.push('fast'));
  const started = performance.now();
  await s.api.trigger('slow-feed', 'tick', { n: 1 });
  await s.api.trigger('fast-feed', 'tick', { n: 2 });
  await slowGot;
  const elapsed = performance.now() - started;
  await fastGot;
  assert.ok(elapsed >= LATENCY_MS, `the slow-feed event arrived after ${elapsed.toFixed(0)} ms, before ${LATENCY_MS} ms`);
  assert.ok(elapsed < LATENCY_MS + LATENCY_SLACK_MS, `arrived after ${elapsed.toFixed(0)} ms`);
  assert.deepEqual(arrivals, ['fast', 'slow'], 'the channel that does not match is not delayed');
});

test('a refuse_connections fault gives pusher-js a 4004 error', async (s) => {
  const { fault } = await ok(control(s.port, 'POST', 'faults', { kind: 'refuse_connections', code: 4004 }), 201);
  const listed = await ok(control(s.port, 'GET', 'faults'));
  assert.deepEqual(listed.faults.map((f) => [f.id, f.kind, f.code]), [[fault.id, 'refuse_connections', 4004]]);

  const pusher = new PusherClient(APP.key, clientOptions(s));
  opened.push(pusher);
  // pusher-js reports a refusal in the handshake as a WebSocketError wrapping the PusherError.
  const codeOf = (e) => (e && e.data && e.data.code) || (e && e.error && e.error.data && e.error.data.code);
  const error = await withTimeout(
    new Promise((resolve) => pusher.connection.bind('error', (e) => codeOf(e) === 4004 && resolve(e))),
    EVENT_TIMEOUT_MS,
    'pusher-js to report error 4004',
  );
  assert.equal(codeOf(error), 4004);
  assert.notEqual(pusher.connection.state, 'connected');

  assert.deepEqual(await ok(control(s.port, 'DELETE', 'faults')), { cleared: 1 });
  const after = await s.connect('after the fault');
  assert.equal(after.state, 'connected');
});

test('/metrics counts API calls, connections and published events', async (s) => {
  const a = await s.connect('a');
  const channel = await a.subscribe('metered');
  const got = a.once(channel, 'tick');
  await s.api.trigger('metered', 'tick', {});
  await got;
  const res = await control(s.port, 'GET', 'metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  const labels = { app_id: APP.appId };
  assert.ok(sample(res.text, 'pusher_local_api_calls_total', { ...labels, status: '200' }) >= 1, res.text);
  assert.ok(sample(res.text, 'pusher_local_events_published_total', { ...labels, source: 'api' }) >= 1, res.text);
  assert.ok(sample(res.text, 'pusher_local_connections', labels) >= 1, res.text);
  assert.ok(sample(res.text, 'pusher_local_messages_out_total', labels) >= 1, res.text);
});

/** Starts pusher-local with --port 0 --ready-file in a fresh folder. */
function startWithReadyFile() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pusher-local-ready-'));
  const readyFile = path.join(dir, 'ready.json');
  const args = ['--port', '0', '--ready-file', readyFile, '--no-config', '-q'];
  args.push('--app-id', APP.appId, '--key', APP.key, '--secret', APP.secret, '--tls-dir', path.join(dir, 'tls'));
  const child = spawn(binaryPath(), args, { cwd: dir, env: hermeticEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  let exit = null;
  const exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    }),
  );
  return { dir, readyFile, child, exited, exit: () => exit, output: () => output };
}

/** The ready file's JSON, once it exists (it is written whole, by a rename). */
async function readyInfo(instance) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!fs.existsSync(instance.readyFile)) {
    if (instance.exit()) throw new Error(`pusher-local exited early: ${JSON.stringify(instance.exit())}\n${instance.output()}`);
    if (Date.now() > deadline) throw new Error(`no ready file within ${READY_TIMEOUT_MS} ms\n${instance.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return JSON.parse(fs.readFileSync(instance.readyFile, 'utf8'));
}

it('two pusher-local instances on --port 0 get their own ports and both serve', async () => {
  const instances = [startWithReadyFile(), startWithReadyFile()];
  const clients = [];
  try {
    const readies = await Promise.all(instances.map(readyInfo));
    assert.notEqual(readies[0].http_port, readies[1].http_port);
    for (const [i, ready] of readies.entries()) {
      assert.equal(ready.pid, instances[i].child.pid);
      assert.equal(ready.url, `http://127.0.0.1:${ready.http_port}`);
      assert.deepEqual(await ok(control(ready.http_port, 'GET', 'health')), { status: 'serving' });

      const pusher = new PusherClient(ready.key, {
        cluster: 'local',
        wsHost: ready.host,
        wsPort: ready.ws_port,
        forceTLS: false,
        enabledTransports: ['ws'],
        disableStats: true,
      });
      clients.push(pusher);
      const channel = pusher.subscribe('parallel');
      await withTimeout(
        new Promise((resolve) => channel.bind('pusher:subscription_succeeded', resolve)),
        EVENT_TIMEOUT_MS,
        `a subscription on instance ${i}`,
      );
      const got = withTimeout(
        new Promise((resolve) => channel.bind('ping', resolve)),
        EVENT_TIMEOUT_MS,
        `the event on instance ${i}`,
      );
      const api = new PusherServer({
        appId: ready.app_id,
        key: ready.key,
        secret: ready.secret,
        host: ready.host,
        port: String(ready.http_port),
        useTLS: false,
      });
      await api.trigger('parallel', 'ping', { instance: i });
      assert.deepEqual(await got, { instance: i });
    }
  } finally {
    for (const pusher of clients) pusher.disconnect();
    for (const instance of instances) instance.child.kill('SIGTERM');
    // Each must exit within STOP_TIMEOUT_MS of SIGTERM; one that does not is killed (and fails below).
    await Promise.all(
      instances.map(async (instance) => {
        let timer;
        const late = new Promise((resolve) => {
          timer = setTimeout(resolve, STOP_TIMEOUT_MS);
        });
        await Promise.race([instance.exited, late]);
        clearTimeout(timer);
        if (!instance.exit()) {
          instance.killed = true;
          instance.child.kill('SIGKILL');
          await instance.exited;
        }
      }),
    );
  }
  for (const instance of instances) {
    assert.ok(!instance.killed, `pusher-local did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`);
    assert.deepEqual(instance.exit(), { code: 0, signal: null }, instance.output());
    assert.equal(fs.existsSync(instance.readyFile), false, 'the ready file is removed at shutdown');
    fs.rmSync(instance.dir, { recursive: true, force: true });
  }
});
