'use strict';
// Shared helpers for the official-SDK compatibility suite.
//
// `startServer()` spawns the pusher-local binary on an ephemeral port in a
// fresh temporary directory (no `.env`, no `PUSHER_*` variables) and returns a
// `TestServer` that hands out pusher-js clients and `pusher` (Node server SDK)
// instances pointed at it. Every wait is bounded; a timeout or a failing test
// prints the server's captured stdout/stderr and the client's recent frames.
//
// Synchronisation is always on SDK events (connection state changes, channel
// bindings, raw inbound frames), never on sleeps.
//
// TLS: every server gets `--tls-dir` = `tlsDir()`, one folder for the whole
// suite, so that nothing is written to the user's real data directory.
// `npm test` runs `run.js`, which creates that folder and its CA (`pusher-local
// tls --tls-dir DIR`) before Node starts the test files, and passes it down as
// PUSHER_LOCAL_SDK_TLS_DIR (not the binary's own PUSHER_LOCAL_TLS_DIR, which a
// developer may have set for real use) with NODE_EXTRA_CA_CERTS=DIR/ca.pem:
// Node reads that variable only at process start, so the CA has to exist
// first. A test file run directly (`node --test x.test.js`) without
// PUSHER_LOCAL_SDK_TLS_DIR gets a temporary folder of its own, removed at exit;
// the TLS tests then fail with a hint (`requireTrustedCa()`), the others do not
// care.

const { spawn, spawnSync } = require('node:child_process');
const net = require('node:net');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const PusherClient = require('pusher-js');
const PusherServer = require('pusher');

const APP = Object.freeze({ appId: '123456', key: 'sdk-key', secret: 'sdk-secret' });
const START_TIMEOUT_MS = 10_000;
const EVENT_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 5_000;
const READY_RE = /listening on (?:http:\/\/)?127\.0\.0\.1:(\d+)/;
const SOCKET_ID_RE = /^\d+\.\d+$/;
const MAX_CAPTURE_CHARS = 256 * 1024;

// pusher-js logs go to a ring buffer that is printed when a test fails.
const clientLog = [];
PusherClient.logToConsole = false;
PusherClient.log = (message) => {
  clientLog.push(`${new Date().toISOString()} ${message}`);
  if (clientLog.length > 400) clientLog.splice(0, clientLog.length - 400);
};

function binaryPath() {
  if (process.env.PUSHER_LOCAL_BIN) return path.resolve(process.env.PUSHER_LOCAL_BIN);
  return path.resolve(__dirname, '..', '..', 'target', 'debug', 'pusher-local');
}

let ownTlsDir = null;

/** The folder every server of this run keeps its local CA and certificate in (`--tls-dir`). */
function tlsDir() {
  if (process.env.PUSHER_LOCAL_SDK_TLS_DIR) return path.resolve(process.env.PUSHER_LOCAL_SDK_TLS_DIR);
  if (!ownTlsDir) {
    ownTlsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pusher-local-tls-'));
    process.on('exit', () => fs.rmSync(ownTlsDir, { recursive: true, force: true }));
  }
  return ownTlsDir;
}

/** Paths of the generated CA and server certificate in `tlsDir()`. */
function tlsFiles() {
  const dir = tlsDir();
  return {
    dir,
    ca: path.join(dir, 'ca.pem'),
    caKey: path.join(dir, 'ca-key.pem'),
    cert: path.join(dir, 'server.pem'),
    key: path.join(dir, 'server-key.pem'),
  };
}

/**
 * Throws unless this process trusts the suite's CA through NODE_EXTRA_CA_CERTS
 * (read by Node only at start-up, see the top of this file).
 */
function requireTrustedCa() {
  const { ca } = tlsFiles();
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (process.env.PUSHER_LOCAL_SDK_TLS_DIR && extra && path.resolve(extra) === ca && fs.existsSync(ca)) return ca;
  throw new Error(
    `this process does not trust the suite's local CA (PUSHER_LOCAL_SDK_TLS_DIR=${process.env.PUSHER_LOCAL_SDK_TLS_DIR || '(unset)'}, ` +
      `NODE_EXTRA_CA_CERTS=${extra || '(unset)'}, expected ${ca}). Run the TLS tests through run.js:\n` +
      `  cd tests/sdk && PUSHER_LOCAL_BIN=${binaryPath()} npm test -- ${path.basename(process.argv[1] || 'tls.test.js')}\n` +
      `or create a CA first and point both variables at it:\n` +
      `  DIR=$(mktemp -d) && ${binaryPath()} tls --tls-dir $DIR && PUSHER_LOCAL_SDK_TLS_DIR=$DIR NODE_EXTRA_CA_CERTS=$DIR/ca.pem node --test ...`,
  );
}

/** Under CI=true a missing tool is an error; otherwise the caller skips loudly. */
function isCi() {
  return process.env.CI === 'true';
}

/** Whether `command` runs (`command args` exits 0). */
function hasTool(command, args = ['--version']) {
  const probe = spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 });
  return !probe.error && probe.status === 0;
}

/**
 * Returns the names in `tools` ({ name: [command, ...args] }) that do not run.
 * Under CI=true any missing tool throws; otherwise a loud SKIPPED banner is
 * written to stderr and the missing names are returned for the caller to skip.
 */
function missingTools(what, tools) {
  const missing = Object.entries(tools)
    .filter(([, [command, ...args]]) => !hasTool(command, args))
    .map(([name]) => name);
  if (missing.length === 0) return missing;
  const reason = `${missing.join(', ')} not found`;
  if (isCi()) throw new Error(`${what} cannot run: ${reason} (CI=true, so this is an error; .ci/run installs them)`);
  const banner = '*'.repeat(72);
  process.stderr.write(`\n${banner}\nSKIPPED: ${what} did NOT run: ${reason}.\n${banner}\n`);
  return missing;
}

function hermeticEnv() {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('PUSHER_') || name === 'NO_COLOR') continue;
    env[name] = value;
  }
  return env;
}

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

/** Rejects with `describe()`'s text if `promise` has not settled within `ms`. */
function withTimeout(promise, ms, what, describe) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const extra = describe ? `\n${describe()}` : '';
      reject(new Error(`timed out after ${ms} ms waiting for ${what}${extra}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * An append-only log of events with awaitable lookups. `waitFor` resolves with
 * the first entry (already logged or still to come) that matches.
 */
class EventLog {
  constructor(label, describe) {
    this.label = label;
    this.entries = [];
    this.waiters = [];
    this.describe = describe;
  }

  push(entry) {
    this.entries.push(entry);
    for (const waiter of [...this.waiters]) {
      if (waiter.match(entry)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(entry);
      }
    }
  }

  filter(name, predicate = () => true) {
    return this.entries.filter((e) => e.event === name && predicate(e));
  }

  names() {
    return this.entries.map((e) => e.event);
  }

  waitFor(name, predicate = () => true, ms = EVENT_TIMEOUT_MS) {
    const match = (e) => e.event === name && predicate(e);
    const found = this.entries.find(match);
    if (found) return Promise.resolve(found);
    let waiter;
    const promise = new Promise((resolve) => {
      waiter = { match, resolve };
      this.waiters.push(waiter);
    });
    return withTimeout(promise, ms, `"${name}" on ${this.label}`, () => {
      const seen = this.entries.map((e) => JSON.stringify(e)).slice(-30).join('\n  ');
      return `${this.label} has seen:\n  ${seen || '(nothing)'}${this.describe ? `\n${this.describe()}` : ''}`;
    }).finally(() => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) this.waiters.splice(i, 1);
    });
  }
}

/** One pusher-js client plus a log of every frame it received. */
class Client {
  constructor(server, name, options) {
    this.server = server;
    this.name = name;
    this.options = options;
    this.frames = new EventLog(`${name} (raw frames)`);
    this.states = new EventLog(`${name} (connection states)`);
    this.errors = new EventLog(`${name} (connection errors)`);

    const sdk = options.sdk || server.api;
    const presence = options.presence;
    const channelAuthorizer =
      options.channelAuthorizer ||
      (({ socketId, channelName }, callback) => {
        try {
          const data = channelName.startsWith('presence-') ? presence : undefined;
          callback(null, sdk.authorizeChannel(socketId, channelName, data));
        } catch (err) {
          callback(err, null);
        }
      });
    const userAuthenticator = ({ socketId }, callback) => {
      try {
        if (!options.user) throw new Error(`client ${name} was created without a user to sign in as`);
        callback(null, sdk.authenticateUser(socketId, options.user));
      } catch (err) {
        callback(err, null);
      }
    };

    this.pusher = new PusherClient(APP.key, {
      cluster: 'local',
      wsHost: '127.0.0.1',
      wsPort: server.port,
      wssPort: server.port,
      // `options.forceTLS`: wss:// (and https for the HTTP fallbacks) on the same port.
      forceTLS: Boolean(options.forceTLS),
      // `options.transport`: 'xhr_streaming' or 'xhr_polling' (pusher-js's HTTP fallbacks,
      // served by pusher-local at httpPath/app/{key}/…) instead of the WebSocket.
      enabledTransports: [options.transport || 'ws'],
      httpHost: '127.0.0.1',
      httpPort: server.port,
      httpsPort: server.port,
      httpPath: '/pusher',
      disableStats: true,
      channelAuthorization: { customHandler: channelAuthorizer },
      userAuthentication: { customHandler: userAuthenticator },
    });
    this.pusher.connection.bind('message', (frame) => {
      this.frames.push({ event: frame.event, channel: frame.channel, data: frame.data, user_id: frame.user_id });
    });
    this.pusher.connection.bind('state_change', ({ previous, current }) => {
      this.states.push({ event: current, previous });
    });
    this.pusher.connection.bind('error', (error) => {
      this.errors.push({ event: (error && error.type) || 'unknown', error });
    });
  }

  get socketId() {
    return this.pusher.connection.socket_id;
  }

  get state() {
    return this.pusher.connection.state;
  }

  /** The URL of the WebSocket pusher-js is connected through (ws:// or wss://), if any. */
  get socketUrl() {
    const connection = this.pusher.connection.connection;
    const socket = connection && connection.transport && connection.transport.socket;
    return socket ? socket.url : undefined;
  }

  async connected() {
    const failed = ['failed', 'unavailable'];
    await withTimeout(
      new Promise((resolve, reject) => {
        const check = () => {
          const state = this.pusher.connection.state;
          if (state === 'connected') {
            this.pusher.connection.unbind('state_change', check);
            resolve();
          } else if (failed.includes(state)) {
            this.pusher.connection.unbind('state_change', check);
            reject(new Error(`${this.name}: connection went to "${state}"`));
          }
        };
        this.pusher.connection.bind('state_change', check);
        check();
      }),
      START_TIMEOUT_MS,
      `${this.name} to connect`,
      () => this.describe(),
    );
    return this;
  }

  /**
   * Subscribes and resolves with the channel once `pusher:subscription_succeeded`
   * fires. Rejects early on `pusher:subscription_error` or on a `pusher:error`
   * frame naming no channel or this channel.
   */
  async subscribe(name, ms = EVENT_TIMEOUT_MS) {
    const channel = this.pusher.subscribe(name);
    let onError;
    try {
      await withTimeout(
        new Promise((resolve, reject) => {
          if (channel.subscribed) return resolve();
          channel.bind('pusher:subscription_succeeded', () => resolve());
          channel.bind('pusher:subscription_error', (err) =>
            reject(new Error(`${this.name}: pusher:subscription_error on ${name}: ${JSON.stringify(err)}`)),
          );
          onError = (error) => {
            if (error && error.type === 'PusherError') {
              reject(new Error(`${this.name}: pusher:error while subscribing to ${name}: ${JSON.stringify(error.data)}`));
            }
          };
          this.pusher.connection.bind('error', onError);
        }),
        ms,
        `${this.name} to subscribe to ${name}`,
        () => this.describe(),
      );
    } finally {
      if (onError) this.pusher.connection.unbind('error', onError);
    }
    return channel;
  }

  /**
   * Sends `pusher:ping` and waits for the `pusher:pong`. The server handles a
   * socket's frames in order, so everything sent before has been processed.
   */
  async roundTrip() {
    const pongs = this.frames.filter('pusher:pong').length;
    const pong = this.frames.waitFor('pusher:pong', () => this.frames.filter('pusher:pong').length > pongs);
    this.pusher.send_event('pusher:ping', {});
    await pong;
  }

  /** Records every event emitted on `channel` (bind_global: name + data, in order). */
  record(channel) {
    const log = new EventLog(`${this.name} on ${channel.name}`, () => this.describe());
    channel.bind_global((event, data) => log.push({ event, data }));
    return log;
  }

  /** Resolves with `[data, metadata]` the first time `event` fires on `dispatcher`. */
  once(dispatcher, event, ms = EVENT_TIMEOUT_MS) {
    let handler;
    const promise = new Promise((resolve) => {
      handler = (data, metadata) => resolve([data, metadata]);
      dispatcher.bind(event, handler);
    });
    return withTimeout(promise, ms, `"${event}" at ${this.name}`, () => this.describe()).finally(() =>
      dispatcher.unbind(event, handler),
    );
  }

  describe() {
    const frames = this.frames.entries.slice(-30).map((e) => JSON.stringify(e)).join('\n  ');
    return (
      `${this.name} (socket ${this.socketId}) connection states: ${this.states.names().join(' -> ') || '(none)'}\n` +
      `${this.name} last frames received:\n  ${frames || '(none)'}`
    );
  }

  disconnect() {
    this.pusher.disconnect();
  }
}

class TestServer {
  constructor(child, workdir) {
    this.child = child;
    this.workdir = workdir;
    this.port = null;
    this.captured = '';
    this.mark = 0;
    this.clients = [];
    this.outputWaiters = [];
    this.exit = null;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  capture(stream, chunk) {
    const text = chunk.toString('utf8');
    const prefix = stream === 'stderr' ? '[stderr] ' : '';
    this.captured += prefix ? text.replace(/^(?=.)/gm, prefix) : text;
    if (this.captured.length > MAX_CAPTURE_CHARS) {
      const cut = this.captured.length - MAX_CAPTURE_CHARS;
      this.captured = this.captured.slice(cut);
      this.mark = Math.max(0, this.mark - cut);
    }
    for (const waiter of [...this.outputWaiters]) waiter.check();
  }

  /** Complete output lines (ANSI stripped) since the current test began, or since `from`. */
  outputLines(from = this.mark) {
    const text = stripAnsi(this.captured.slice(from));
    const lines = text.split('\n');
    lines.pop(); // an unfinished line
    return lines;
  }

  /** Resolves with the first output line since the current test began that matches `re`. */
  waitForOutput(re, ms = EVENT_TIMEOUT_MS) {
    let waiter;
    const promise = new Promise((resolve) => {
      waiter = {
        check: () => {
          const line = this.outputLines().find((l) => re.test(l));
          if (line !== undefined) resolve(line);
        },
      };
      this.outputWaiters.push(waiter);
      waiter.check();
    });
    return withTimeout(promise, ms, `pusher-local to print a line matching ${re}`, () => this.output()).finally(() => {
      this.outputWaiters.splice(this.outputWaiters.indexOf(waiter), 1);
    });
  }

  /** The server's output (stdout and [stderr]) since the current test began. */
  output() {
    const status = this.exit ? ` (server exited: ${JSON.stringify(this.exit)})` : '';
    const text = stripAnsi(this.captured.slice(this.mark)).trimEnd();
    return `--- pusher-local output${status} ---\n${text || '(empty)'}\n--- end of pusher-local output ---`;
  }

  /** A `pusher` (Node server SDK) instance pointed at this server. */
  serverSdk(overrides = {}) {
    return new PusherServer({
      appId: APP.appId,
      key: APP.key,
      secret: APP.secret,
      host: '127.0.0.1',
      port: String(this.port),
      useTLS: false,
      encryptionMasterKeyBase64: this.masterKeyBase64,
      ...overrides,
    });
  }

  /** Creates a pusher-js client and waits until it is connected. */
  async connect(name, options = {}) {
    const client = new Client(this, name, options);
    this.clients.push(client);
    await client.connected();
    return client;
  }

  disconnectAll() {
    for (const client of this.clients.splice(0)) client.disconnect();
  }

  async stop() {
    this.disconnectAll();
    if (!this.exit) {
      this.child.kill('SIGTERM');
      let timer;
      const killed = await Promise.race([
        this.exited.then(() => false),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (killed) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    fs.rmSync(this.workdir, { recursive: true, force: true });
  }
}

/**
 * Starts pusher-local on 127.0.0.1 with an ephemeral port. `options.extraArgs`
 * are appended to the command line (e.g. `['--webhook', url]`).
 */
async function startServer(options = {}) {
  const bin = binaryPath();
  if (!fs.existsSync(bin)) {
    throw new Error(`pusher-local binary not found at ${bin}: run \`cargo build\` or set PUSHER_LOCAL_BIN`);
  }
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'pusher-local-sdk-'));
  const args = [
    '--no-config',
    '--port', '0',
    '--app-id', APP.appId,
    '--key', APP.key,
    '--secret', APP.secret,
    '--color', 'never',
    '--tls-dir', tlsDir(),
    ...(options.extraArgs || []),
  ];
  const child = spawn(bin, args, { cwd: workdir, env: hermeticEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const server = new TestServer(child, workdir);
  server.masterKeyBase64 = crypto.randomBytes(32).toString('base64');
  server.api = null;

  let pending = '';
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      server.capture('stdout', chunk);
      if (server.port !== null) return;
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) {
        const m = READY_RE.exec(stripAnsi(line));
        if (m) {
          server.port = Number(m[1]);
          resolve();
          return;
        }
      }
    });
    child.stderr.on('data', (chunk) => server.capture('stderr', chunk));
    child.once('error', (err) => reject(new Error(`failed to spawn ${bin}: ${err.message}`)));
    server.exited.then((exit) =>
      reject(new Error(`pusher-local exited before it was ready: ${JSON.stringify(exit)}\n${server.output()}`)),
    );
  });
  try {
    await withTimeout(ready, START_TIMEOUT_MS, `pusher-local to print "listening on 127.0.0.1:<port>"`, () =>
      server.output(),
    );
  } catch (err) {
    await server.stop();
    throw err;
  }
  server.api = server.serverSdk();
  return server;
}

/** A free loopback port (bound, read, released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Resolves once something answers PING with +PONG on `port`, or rejects after `ms`. */
function redisAnswers(port, ms) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = net.connect(port, '127.0.0.1');
      let reply = '';
      const retry = () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`redis-server did not answer on port ${port}`));
        else setTimeout(attempt, 20);
      };
      socket.once('error', retry);
      socket.on('data', (chunk) => {
        reply += chunk.toString('utf8');
        if (reply.startsWith('+PONG')) {
          socket.destroy();
          resolve();
        }
      });
      socket.once('connect', () => socket.write('PING\r\n'));
    };
    attempt();
  });
}

/**
 * Starts a `redis-server` on a random loopback port (no persistence) for the
 * cluster tests. Returns `null` when redis-server is not installed and CI is
 * unset (the caller skips loudly); under CI its absence is an error.
 */
async function startRedis() {
  const probe = spawnSync('redis-server', ['--version']);
  if (probe.error || probe.status !== 0) {
    if (process.env.CI) throw new Error('redis-server is not installed and CI is set: the cluster tests must run');
    return null;
  }
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  await redisAnswers(port, START_TIMEOUT_MS);
  return {
    url: `redis://127.0.0.1:${port}`,
    stop() {
      child.kill('SIGKILL');
    },
  };
}

/**
 * Declares a `node:test` test that runs against `getServer()`. Clients created
 * during the test are disconnected afterwards, and a failure prints the
 * server's output since the test began.
 */
function sdkTest(getServer, name, fn) {
  test(name, async (t) => {
    const server = getServer();
    if (!server) throw new Error('the pusher-local server did not start (see the before hook)');
    server.mark = server.captured.length;
    clientLog.length = 0;
    try {
      await fn(server, t);
    } catch (err) {
      const clients = server.clients.map((c) => c.describe()).join('\n');
      process.stderr.write(
        `\n=== "${name}" failed ===\n${clients}\n${server.output()}\n` +
          `--- pusher-js log ---\n${clientLog.join('\n') || '(empty)'}\n=== end of "${name}" ===\n`,
      );
      throw err;
    } finally {
      server.disconnectAll();
    }
  });
}

/**
 * One server for the whole file: started before its tests, stopped after them. Returns the
 * file's `it(name, fn)`, an `sdkTest` against that server.
 */
function withServer(options = {}) {
  const { before, after } = require('node:test');
  let server;
  before(async () => {
    server = await startServer(options);
  });
  after(async () => {
    if (server) await server.stop();
  });
  return (name, fn) => sdkTest(() => server, name, fn);
}

/** Asserts that `promise` (from the `pusher` SDK) rejects with the given HTTP status. */
async function expectStatus(promise, status) {
  try {
    const res = await promise;
    const body = await res.text();
    throw new Error(`expected HTTP ${status}, got ${res.status} with body ${body}`);
  } catch (err) {
    if (err && err.status === status) return err;
    throw err;
  }
}

module.exports = {
  withServer,
  binaryPath,
  hermeticEnv,
  tlsDir,
  tlsFiles,
  requireTrustedCa,
  isCi,
  missingTools,
  APP,
  EVENT_TIMEOUT_MS,
  SOCKET_ID_RE,
  EventLog,
  startServer,
  startRedis,
  sdkTest,
  withTimeout,
  expectStatus,
};
