'use strict';
// TLS on pusher-local's one port, through the official SDKs: pusher-js (Node build) with
// forceTLS over wss://, and the `pusher` Node SDK with useTLS over https://.
//
// How the CA is trusted: run.js (the `npm test` entry) makes one folder for the whole run, has
// `pusher-local tls --tls-dir DIR` create the local CA there, and starts the test files with
// NODE_EXTRA_CA_CERTS=DIR/ca.pem and PUSHER_LOCAL_SDK_TLS_DIR=DIR; every server gets `--tls-dir DIR`
// (support.js). So this process trusts the generated CA the way a user's Node app would, and
// needs no `ca` option anywhere. Run this file alone with `npm test -- tls.test.js`.
//
// Three servers:
//   - the generated certificate (server.pem, signed by DIR/ca.pem): public, private, presence
//     and encrypted channels, client events, plain and TLS clients side by side, the HTTP API;
//   - a user certificate (--tls-cert/--tls-key) made here with the openssl CLI from a CA of
//     our own; pusher-js trusts that CA in a child process (NODE_EXTRA_CA_CERTS is read only
//     at start-up: child-client.js), the Node SDK through an https.Agent with `ca`;
//   - --tls-only: plain ws:// gets pusher:error 4000 (pusher-js then switches to wss:// by
//     itself, as with real Pusher), the plain HTTP API a 4xx naming https.
//
// openssl is needed for the user-certificate cases: without it they skip loudly, except under
// CI=true, where they fail.

const assert = require('node:assert/strict');
const { describe, before, after } = require('node:test');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const tls = require('node:tls');

const {
  withServer,
  startServer,
  sdkTest,
  APP,
  EventLog,
  EVENT_TIMEOUT_MS,
  SOCKET_ID_RE,
  binaryPath,
  hermeticEnv,
  tlsFiles,
  requireTrustedCa,
  missingTools,
  withTimeout,
} = require('./support');

before(() => {
  requireTrustedCa();
});

/** The `pusher` Node SDK over https:// to `s` (trusting the CA through NODE_EXTRA_CA_CERTS). */
const httpsApi = (s, overrides = {}) => s.serverSdk({ useTLS: true, ...overrides });

function assertWss(client, port) {
  const url = client.socketUrl;
  assert.ok(url && url.startsWith(`wss://127.0.0.1:${port}/app/${APP.key}?`), `${client.name} is on wss:// (url: ${url})`);
}

const ALICE = { user_id: 'alice', user_info: { name: 'Alice' } };
const BOB = { user_id: 'bob', user_info: { name: 'Bob' } };

describe('the generated local CA', () => {
  const it = withServer();

  it('ca.pem is a CA and server.pem is signed by it for localhost, 127.0.0.1 and ::1', async () => {
    const files = tlsFiles();
    const ca = new crypto.X509Certificate(fs.readFileSync(files.ca));
    const leaf = new crypto.X509Certificate(fs.readFileSync(files.cert));
    assert.equal(ca.ca, true, 'ca.pem has basicConstraints CA:TRUE');
    assert.equal(leaf.ca, false, 'server.pem is not a CA');
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), 'server.pem is signed by ca.pem');
    assert.equal(leaf.checkHost('localhost'), 'localhost');
    assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(leaf.checkIP('::1'), '::1');
    assert.ok(fs.existsSync(files.key), 'server-key.pem exists');
    assert.ok(fs.existsSync(files.caKey), 'ca-key.pem exists');
    const now = Date.now();
    assert.ok(Date.parse(leaf.validFrom) <= now && now < Date.parse(leaf.validTo), `server.pem is valid now (${leaf.validFrom} .. ${leaf.validTo})`);
  });

  it('ca.pem carries name constraints that keep it to loopback names (openssl x509 -text)', async (s, t) => {
    if (missingTools('the CA name-constraints check', { openssl: ['openssl', 'version'] }).length) return t.skip('openssl missing');
    const text = run('openssl', ['x509', '-in', tlsFiles().ca, '-noout', '-text']);
    const section = /X509v3 Name Constraints:[^\n]*\n((?:\s{16,}.*\n)+)/.exec(text);
    assert.ok(section, `ca.pem has a Name Constraints extension:\n${text}`);
    const constraints = section[1];
    assert.match(constraints, /Permitted:/);
    assert.match(constraints, /DNS:localhost/);
    assert.match(constraints, /IP:127\.0\.0\.0\/255\.0\.0\.0/);
    assert.match(constraints, /IP:0:0:0:0:0:0:0:1\/(?:FFFF:){7}FFFF/i);
  });

  it('`pusher-local tls` keeps the existing CA and prints where it is and its PEM', async () => {
    const files = tlsFiles();
    const before = fs.readFileSync(files.ca, 'utf8');
    const out = run(binaryPath(), ['tls', '--tls-dir', files.dir], { env: hermeticEnv() });
    assert.equal(fs.readFileSync(files.ca, 'utf8'), before, 'the CA is created once, never replaced');
    assert.ok(out.includes(files.dir), `the output names the folder ${files.dir}:\n${out}`);
    assert.ok(out.includes(before.trim()), `the output carries ca.pem's PEM:\n${out}`);
  });

  it('pusher-js with forceTLS connects over wss:// and receives a public event triggered over https', async (s) => {
    const a = await s.connect('a', { forceTLS: true });
    assertWss(a, s.port);
    assert.match(a.socketId, SOCKET_ID_RE);
    const channel = await a.subscribe('tls-public');
    const got = a.once(channel, 'greeting');
    const payload = { hello: 'wss', n: 1, text: 'héllo ✓' };
    const res = await httpsApi(s).trigger('tls-public', 'greeting', payload);
    assert.equal(res.status, 200);
    const [data] = await got;
    assert.deepEqual(data, payload);
  });

  it('plain ws:// and wss:// clients share the one port and its channels', async (s) => {
    const plain = await s.connect('plain');
    const secure = await s.connect('secure', { forceTLS: true });
    assert.ok(plain.socketUrl.startsWith(`ws://127.0.0.1:${s.port}/`), `plain is on ws:// (${plain.socketUrl})`);
    assertWss(secure, s.port);
    const plainChannel = await plain.subscribe('tls-mixed');
    const secureChannel = await secure.subscribe('tls-mixed');

    // One event over plain http, one over https: both clients get both.
    const plainLog = plain.record(plainChannel);
    const secureLog = secure.record(secureChannel);
    await s.api.trigger('tls-mixed', 'over-http', { via: 'http' });
    await httpsApi(s).trigger('tls-mixed', 'over-https', { via: 'https' });
    for (const log of [plainLog, secureLog]) {
      assert.deepEqual((await log.waitFor('over-http')).data, { via: 'http' });
      assert.deepEqual((await log.waitFor('over-https')).data, { via: 'https' });
    }

    const info = await httpsApi(s).get({ path: '/channels/tls-mixed', params: { info: 'subscription_count' } });
    assert.equal(info.status, 200);
    assert.deepEqual(await info.json(), { occupied: true, subscription_count: 2 });
  });

  it('a private channel over wss:// subscribes and receives events', async (s) => {
    const a = await s.connect('a', { forceTLS: true });
    const channel = await a.subscribe('private-tls-room');
    assert.equal(channel.subscribed, true);
    const got = a.once(channel, 'update');
    await httpsApi(s).trigger('private-tls-room', 'update', { version: 7 });
    const [data] = await got;
    assert.deepEqual(data, { version: 7 });
  });

  it('presence over wss:// keeps the roster, and the https API lists its users', async (s) => {
    const name = 'presence-tls';
    const alice = await s.connect('alice', { forceTLS: true, presence: ALICE });
    const chAlice = await alice.subscribe(name);
    assert.equal(chAlice.members.count, 1);
    assert.deepEqual(chAlice.members.me, { id: 'alice', info: { name: 'Alice' } });

    const bob = await s.connect('bob', { forceTLS: true, presence: BOB });
    const added = alice.once(chAlice, 'pusher:member_added');
    const chBob = await bob.subscribe(name);
    assert.deepEqual((await added)[0], { id: 'bob', info: { name: 'Bob' } });
    assert.equal(chBob.members.count, 2);

    const users = await httpsApi(s).get({ path: `/channels/${name}/users` });
    assert.equal(users.status, 200);
    const body = await users.json();
    assert.deepEqual(body.users.map((u) => u.id).sort(), ['alice', 'bob']);

    const removed = alice.once(chAlice, 'pusher:member_removed');
    bob.disconnect();
    assert.equal((await removed)[0].id, 'bob');
    assert.equal(chAlice.members.count, 1);
  });

  it('an encrypted channel over wss:// decrypts an event triggered over https', async (s) => {
    const a = await s.connect('a', { forceTLS: true });
    const channel = await a.subscribe('private-encrypted-tls');
    const payload = { pin: 'x-9876-y', list: [1, 2, 3] };
    const got = a.once(channel, 'secret');
    const res = await httpsApi(s).trigger('private-encrypted-tls', 'secret', payload);
    assert.equal(res.status, 200);
    assert.deepEqual((await got)[0], payload);
    const [frame] = a.frames.filter('secret');
    assert.deepEqual(Object.keys(frame.data).sort(), ['ciphertext', 'nonce']);
    assert.ok(!JSON.stringify(frame.data).includes('x-9876-y'), 'the frame must not carry the plaintext');
  });

  it('client events between two wss:// clients reach the other one and are not echoed', async (s) => {
    const sender = await s.connect('sender', { forceTLS: true });
    const receiver = await s.connect('receiver', { forceTLS: true });
    const senderChannel = await sender.subscribe('private-tls-chat');
    const receiverChannel = await receiver.subscribe('private-tls-chat');
    const senderLog = sender.record(senderChannel);

    const got = receiver.once(receiverChannel, 'client-typing');
    assert.equal(senderChannel.trigger('client-typing', { typing: true }), true);
    assert.deepEqual((await got)[0], { typing: true });

    await httpsApi(s).trigger('private-tls-chat', 'marker', {});
    await senderLog.waitFor('marker');
    assert.deepEqual(senderLog.filter('client-typing'), [], 'client events are not echoed to the sender');
    assert.deepEqual(sender.frames.filter('pusher:error'), []);
  });

  it('the Node SDK over https: trigger with info, triggerBatch and the channel queries', async (s) => {
    const api = httpsApi(s);
    const a = await s.connect('a', { forceTLS: true });
    const one = await a.subscribe('tls-batch-1');
    const two = await a.subscribe('tls-batch-2');
    const oneLog = a.record(one);
    const twoLog = a.record(two);

    const res = await api.trigger('tls-batch-1', 'single', { n: 0 }, { info: 'subscription_count' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { channels: { 'tls-batch-1': { subscription_count: 1 } } });

    const batch = await api.triggerBatch([
      { channel: 'tls-batch-1', name: 'batched', data: { n: 1 } },
      { channel: 'tls-batch-2', name: 'batched', data: { n: 2 } },
    ]);
    assert.equal(batch.status, 200);
    assert.deepEqual((await oneLog.waitFor('batched')).data, { n: 1 });
    assert.deepEqual((await twoLog.waitFor('batched')).data, { n: 2 });

    const listed = await api.get({ path: '/channels', params: { filter_by_prefix: 'tls-batch-' } });
    assert.equal(listed.status, 200);
    assert.deepEqual(await listed.json(), { channels: { 'tls-batch-1': {}, 'tls-batch-2': {} } });

    const info = await api.get({ path: '/channels/tls-batch-2', params: { info: 'subscription_count' } });
    assert.equal(info.status, 200);
    assert.deepEqual(await info.json(), { occupied: true, subscription_count: 1 });
  });
});

describe('a user certificate (--tls-cert / --tls-key)', () => {
  let server;
  let certs;
  let missing = [];
  before(async () => {
    missing = missingTools('the --tls-cert/--tls-key tests', { openssl: ['openssl', 'version'] });
    if (missing.length) return;
    certs = makeUserCertificate();
    server = await startServer({ extraArgs: ['--tls-cert', certs.cert, '--tls-key', certs.key] });
  });
  after(async () => {
    if (server) await server.stop();
    if (certs) fs.rmSync(certs.dir, { recursive: true, force: true });
  });
  const it = (name, fn) =>
    sdkTest(
      () => server || (missing.length ? { clients: [], captured: '', output: () => '', disconnectAll() {} } : null),
      name,
      async (s, t) => (missing.length ? t.skip(`${missing.join(', ')} missing`) : fn(s, t)),
    );

  it('the server presents the user certificate: not trusted through the generated CA, trusted with the user CA', async (s) => {
    // This process trusts only the generated CA (NODE_EXTRA_CA_CERTS) besides the system roots.
    const refused = await tlsHandshake(s.port, {});
    assert.ok(refused.error, `the user certificate must not verify against the generated CA (got ${JSON.stringify(refused)})`);
    assert.match(refused.error.code || '', /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT/);

    const trusted = await tlsHandshake(s.port, { ca: fs.readFileSync(certs.ca) });
    assert.equal(trusted.error, undefined, `handshake with the user CA: ${trusted.error && trusted.error.message}`);
    const expected = new crypto.X509Certificate(fs.readFileSync(certs.cert)).fingerprint256;
    assert.equal(trusted.fingerprint256, expected, 'the server presents the --tls-cert certificate');
  });

  it('pusher-js trusting the user CA connects over wss:// and receives an event triggered over https', async (s) => {
    const child = startChildClient({ key: APP.key, port: s.port, forceTLS: true, channels: ['user-cert'] }, certs.ca);
    try {
      const connected = await child.log.waitFor('state', (e) => e.current === 'connected', 10_000);
      assert.match(connected.socketId, SOCKET_ID_RE);
      assert.ok(connected.url.startsWith(`wss://127.0.0.1:${s.port}/`), `child is on wss:// (${connected.url})`);
      await child.log.waitFor('subscribed', (e) => e.channel === 'user-cert');

      const api = s.serverSdk({ useTLS: true, agent: new https.Agent({ ca: fs.readFileSync(certs.ca) }) });
      const res = await api.trigger('user-cert', 'greeting', { cert: 'user' });
      assert.equal(res.status, 200);
      const got = await child.log.waitFor('message', (e) => e.name === 'greeting');
      assert.deepEqual(got.data, { cert: 'user' });
    } finally {
      await child.stop();
    }
  });
});

describe('--tls-only', () => {
  const it = withServer({ extraArgs: ['--tls-only'] });

  it('pusher-js with forceTLS connects and receives an event triggered over https', async (s) => {
    const a = await s.connect('a', { forceTLS: true });
    assertWss(a, s.port);
    const channel = await a.subscribe('tls-only');
    const got = a.once(channel, 'hello');
    await httpsApi(s).trigger('tls-only', 'hello', { only: 'tls' });
    assert.deepEqual((await got)[0], { only: 'tls' });
  });

  it('a plain ws:// handshake gets pusher:error 4000 and is closed', async (s) => {
    const result = await plainWebSocket(s.port, `/app/${APP.key}?protocol=7&client=js&version=8.6.0`);
    assert.match(result.status, /^HTTP\/1\.1 101 /, `the upgrade itself is accepted: ${result.status}`);
    const [first] = result.frames;
    assert.ok(first && first.type === 'text', `the first frame is a text frame: ${JSON.stringify(result.frames)}`);
    const message = JSON.parse(first.text);
    assert.equal(message.event, 'pusher:error');
    const data = typeof message.data === 'string' ? JSON.parse(message.data) : message.data;
    assert.equal(data.code, 4000, JSON.stringify(message));
    assert.equal(result.frames.filter((f) => f.type === 'text').length, 1, 'no connection_established after the error');
    assert.ok(result.closed, 'the server closes the connection');
  });

  it('pusher-js with forceTLS:false is refused on ws:// with 4000 and, as with real Pusher, moves to wss:// by itself', async (s) => {
    const a = await s.connect('a', { forceTLS: false });
    const refused = a.errors.entries.find((e) => e.error && e.error.error && e.error.error.data && e.error.error.data.code === 4000);
    assert.ok(refused, `pusher-js saw pusher:error 4000 first; errors: ${JSON.stringify(a.errors.entries)}`);
    assert.equal(a.pusher.connection.usingTLS, true, 'pusher-js switched to TLS on 4000 (its tls_only action)');
    assertWss(a, s.port);
    const channel = await a.subscribe('tls-only-upgraded');
    const got = a.once(channel, 'hello');
    await httpsApi(s).trigger('tls-only-upgraded', 'hello', {});
    await got;
  });

  it('the Node SDK over plain http gets a 4xx naming https; over https it works', async (s) => {
    let err;
    try {
      const res = await s.serverSdk({ useTLS: false }).trigger('tls-only', 'plain', {});
      assert.fail(`a plain-http trigger must be refused, got ${res.status} ${await res.text()}`);
    } catch (e) {
      err = e;
    }
    assert.ok(err.status >= 400 && err.status < 500, `a 4xx status (got ${err.status}: ${err.message})`);
    assert.match(String(err.body), /https/i, `the body names https: ${err.body}`);

    const res = await httpsApi(s).trigger('tls-only', 'secure', {});
    assert.equal(res.status, 200);
  });
});

// ---------------------------------------------------------------------------------------------

/** Runs a command to completion (bounded) and returns its stdout, or throws with its output. */
function run(command, args, options = {}) {
  const out = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000, ...options });
  if (out.error || out.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed (${out.error ? out.error.message : `status ${out.status}`})\n` +
        `stdout:\n${out.stdout}\nstderr:\n${out.stderr}`,
    );
  }
  return out.stdout;
}

/**
 * A CA and a server certificate for 127.0.0.1 and localhost, made with the openssl CLI the
 * way a user would (RSA, not the ECDSA the generated ones use).
 */
function makeUserCertificate() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pusher-local-user-cert-'));
  const f = (name) => path.join(dir, name);
  fs.writeFileSync(
    f('leaf.ext'),
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n'),
  );
  run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-keyout', f('user-ca-key.pem'), '-out', f('user-ca.pem'), '-subj', '/CN=pusher-local SDK test user CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-sha256',
    '-keyout', f('user-key.pem'), '-out', f('user.csr'), '-subj', '/CN=127.0.0.1']);
  run('openssl', ['x509', '-req', '-sha256', '-days', '2', '-in', f('user.csr'),
    '-CA', f('user-ca.pem'), '-CAkey', f('user-ca-key.pem'), '-CAcreateserial',
    '-extfile', f('leaf.ext'), '-out', f('user.pem')]);
  return { dir, ca: f('user-ca.pem'), cert: f('user.pem'), key: f('user-key.pem') };
}

/** One TLS handshake to 127.0.0.1:port; resolves with { fingerprint256 } or { error }. */
function tlsHandshake(port, options) {
  return withTimeout(
    new Promise((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ...options });
      socket.once('secureConnect', () => {
        const { fingerprint256 } = socket.getPeerCertificate();
        socket.destroy();
        resolve({ fingerprint256 });
      });
      socket.once('error', (error) => {
        socket.destroy();
        resolve({ error });
      });
    }),
    EVENT_TIMEOUT_MS,
    `a TLS handshake with 127.0.0.1:${port}`,
  );
}

/**
 * A plain (no TLS) WebSocket handshake to `target`, without pusher-js: resolves with the
 * status line and every frame the server sent, once it sent a close frame or closed the socket.
 */
function plainWebSocket(port, target) {
  let socket;
  const result = { status: null, frames: [], closed: false };
  const done = new Promise((resolve, reject) => {
    socket = net.connect(port, '127.0.0.1');
    let buffer = Buffer.alloc(0);
    let headerDone = false;
    const finish = () => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => {
      socket.write(
        `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!headerDone) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        result.status = buffer.subarray(0, buffer.indexOf('\r\n')).toString('latin1');
        buffer = buffer.subarray(end + 4);
        headerDone = true;
      }
      for (;;) {
        if (buffer.length < 2) return;
        const opcode = buffer[0] & 0x0f;
        let len = buffer[1] & 0x7f;
        let offset = 2;
        if (len === 126) {
          if (buffer.length < 4) return;
          len = buffer.readUInt16BE(2);
          offset = 4;
        } else if (len === 127) {
          if (buffer.length < 10) return;
          len = Number(buffer.readBigUInt64BE(2));
          offset = 10;
        }
        if (buffer.length < offset + len) return;
        const payload = buffer.subarray(offset, offset + len);
        buffer = buffer.subarray(offset + len);
        if (opcode === 0x1) result.frames.push({ type: 'text', text: payload.toString('utf8') });
        else if (opcode === 0x8) {
          result.frames.push({ type: 'close', code: len >= 2 ? payload.readUInt16BE(0) : null, reason: payload.subarray(2).toString('utf8') });
          result.closed = true;
          return finish();
        } else result.frames.push({ type: `opcode ${opcode}`, length: len });
      }
    });
    socket.once('end', () => {
      result.closed = true;
      finish();
    });
    socket.once('close', () => {
      result.closed = true;
      resolve(result);
    });
    socket.once('error', reject);
  });
  return withTimeout(done, EVENT_TIMEOUT_MS, `the plain WebSocket on port ${port} to be closed`, () => JSON.stringify(result)).finally(
    () => socket.destroy(),
  );
}

/**
 * child-client.js in a Node process of its own that trusts `caFile` (NODE_EXTRA_CA_CERTS).
 * Its JSON lines land in `log`; `stop()` closes its stdin and waits (bounded) for it to exit.
 */
function startChildClient(config, caFile) {
  let stderr = '';
  const child = spawn(process.execPath, [path.join(__dirname, 'child-client.js'), JSON.stringify(config)], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const log = new EventLog('the child pusher-js client', () => `its stderr:\n${stderr.slice(-4000) || '(empty)'}`);
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      log.push(JSON.parse(line));
    } catch {
      log.push({ event: 'unparsed', line });
    }
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk.toString('utf8');
  });
  return {
    log,
    async stop() {
      child.stdin.end();
      let timer;
      const killed = await Promise.race([
        exited.then(() => false),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(true), 5_000);
        }),
      ]);
      clearTimeout(timer);
      if (killed) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
