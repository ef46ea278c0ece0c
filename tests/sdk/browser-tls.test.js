'use strict';
// pusher-js's browser build in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded), on an https:// page, against pusher-local's wss://.
//
// Trust is set up the way a Linux user does it, with no certificate-error switches: a temporary
// HOME whose NSS database (~/.pki/nssdb, made with certutil from libnss3-tools) trusts the
// suite's generated CA (run.js / support.js tlsDir()), and Chromium started with that HOME. The
// page is served by an https server in this file that uses the server certificate pusher-local
// generated (server.pem, signed by that CA), together with node_modules' pusher.min.js.
//
//   0. control: a Chromium with an empty NSS database refuses that page (ERR_CERT_AUTHORITY_INVALID).
//   1. forceTLS:true: the page connects to wss://127.0.0.1:PORT, subscribes, and shows an event
//      that the test triggers over https with the Node SDK.
//   2. forceTLS:false on the https page: pusher-js still dials wss:// (it always uses TLS when
//      the page itself is https), so this connects too.
//   3. A ws:// endpoint from the https page is blocked as mixed content: pusher-js is made to dial
//      ws:// (its https-page upgrade switched off, as a client without it would do) and never
//      reaches "connected"; pusher-local sees no WebSocket at all. Chromium exempts 127.0.0.1 and
//      localhost from mixed-content blocking (they are "potentially trustworthy"), so the ws://
//      URL names pusher-local.test, which --host-resolver-rules maps to 127.0.0.1: no traffic
//      leaves the loopback either way.
//
// Screenshots of each page go to target/test-artifacts/. Without chromium or certutil the tests
// skip loudly, except under CI=true, where they fail.

const assert = require('node:assert/strict');
const { before, after } = require('node:test');
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');

const { withServer, APP, tlsFiles, requireTrustedCa, missingTools, withTimeout } = require('./support');

const CHROMIUM = '/usr/bin/chromium';
const MAPPED_HOST = 'pusher-local.test';
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'target', 'test-artifacts');
const PAGE_TIMEOUT_MS = 10_000;
const LAUNCH_TIMEOUT_MS = 30_000;
const PUSHER_MIN_JS = require.resolve('pusher-js/dist/web/pusher.min.js');
// A WebSocket connection line in pusher-local's output ("12:34:56.789 +ws 1.2  connected from …").
const WS_CONNECTED_RE = /^\S+\s+\+wss?\s+\S+\s.*\bconnected\b/;

let missing = [];
let home;
let pageServer;
let pagePort;
let context;
let chromiumVersion;

const it = withServer();

before(async () => {
  requireTrustedCa();
  missing = missingTools('the browser TLS tests (headless Chromium)', {
    chromium: [CHROMIUM, '--version'],
    certutil: ['sh', '-c', 'command -v certutil'],
  });
  if (missing.length) return;

  // A fresh HOME with an NSS database that trusts the local CA, as `certutil` would do it for
  // a user (what pusher-local's banner suggests), and a fresh profile inside it.
  const files = tlsFiles();
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'pusher-local-chromium-'));
  const nssdb = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(nssdb, { recursive: true });
  certutil(['-d', `sql:${nssdb}`, '-N', '--empty-password']);
  certutil(['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'pusher-local', '-i', files.ca]);

  pageServer = await startPageServer(files);
  pagePort = pageServer.address().port;

  context = await launchChromium(home);
  chromiumVersion = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout.trim();
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (context) await context.close();
  if (pageServer) await new Promise((resolve) => pageServer.close(resolve));
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

/** `it` that skips (loudly, see before) when chromium or certutil is missing outside CI. */
const browserTest = (name, fn) =>
  it(name, async (s, t) => {
    if (missing.length) return t.skip(`${missing.join(', ')} missing`);
    return fn(s, t);
  });

browserTest('control: a Chromium whose NSS database lacks the local CA refuses the page (the trust comes from certutil alone)', async () => {
  const bareHome = fs.mkdtempSync(path.join(os.tmpdir(), 'pusher-local-chromium-bare-'));
  const bare = await launchChromium(bareHome);
  try {
    const page = await bare.newPage();
    await assert.rejects(page.goto(`https://127.0.0.1:${pagePort}/`, { timeout: PAGE_TIMEOUT_MS }), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await bare.close();
    fs.rmSync(bareHome, { recursive: true, force: true });
  }
});

browserTest('forceTLS:true: the https page connects to wss://, subscribes and shows an event triggered over https', async (s) => {
  const { page, response, report } = await openPage(s, { forceTLS: true, channel: 'browser-tls', title: '1. forceTLS: true' });
  try {
    assert.equal(response.status(), 200);
    const security = await response.securityDetails();
    const caName = new crypto.X509Certificate(fs.readFileSync(tlsFiles().ca)).subject.match(/CN=(.*)/)[1];
    assert.equal(security.issuer, caName, `the page's certificate was issued by the local CA: ${JSON.stringify(security)}`);

    await waitInPage(page, (r) => r.subscribed === 'browser-tls', 'the page to subscribe to browser-tls', report);
    const payload = { hello: 'browser', over: 'wss', text: 'héllo ✓ "quoted"' };
    const res = await s.serverSdk({ useTLS: true }).trigger('browser-tls', 'greeting', payload);
    assert.equal(res.status, 200);
    const got = await waitInPage(page, (r) => r.received.length > 0, 'the event to reach the page', report);

    assert.deepEqual(got.received, [{ channel: 'browser-tls', event: 'greeting', data: payload }]);
    assert.ok(got.states.includes('connected'), JSON.stringify(got.states));
    assert.match(got.socketId, /^\d+\.\d+$/);
    assert.ok(got.sockets.length >= 1);
    for (const socket of got.sockets) {
      assert.ok(socket.url.startsWith(`wss://127.0.0.1:${s.port}/app/${APP.key}?`), `the page dialled wss:// (${socket.url})`);
    }
    assert.match(await page.textContent('#state'), /connected/);
    assert.match(await page.textContent('#received'), /"hello": "browser"/);
    await screenshot(page, 'browser-tls-1-forcetls-true.png');
  } finally {
    await page.close();
  }
});

browserTest('forceTLS:false on the https page: pusher-js still dials wss:// and connects', async (s) => {
  const { page, report } = await openPage(s, { forceTLS: false, channel: 'browser-tls-2', title: '2. forceTLS: false' });
  try {
    const got = await waitInPage(page, (r) => r.subscribed === 'browser-tls-2', 'the page to subscribe to browser-tls-2', report);
    assert.equal(got.config.forceTLS, false);
    for (const socket of got.sockets) {
      assert.ok(socket.url.startsWith(`wss://127.0.0.1:${s.port}/`), `pusher-js upgraded to wss:// on an https page (${socket.url})`);
    }
    await screenshot(page, 'browser-tls-2-forcetls-false.png');
  } finally {
    await page.close();
  }
});

browserTest('a ws:// endpoint is blocked as mixed content: the page never connects and pusher-local sees no WebSocket', async (s) => {
  const { page, report } = await openPage(s, {
    forceTLS: false,
    pretendHttp: true,
    wsHost: MAPPED_HOST,
    unavailableMs: 3000,
    channel: 'browser-mixed',
    title: '3. ws:// from an https page (mixed content)',
  });
  try {
    // pusher-js gives up ("unavailable") after unavailableTimeout when no transport connects.
    const got = await waitInPage(page, (r) => r.states.includes('unavailable'), 'pusher-js to give up ("unavailable")', report, 15_000);
    assert.ok(!got.states.includes('connected'), `never connected: ${got.states.join(' -> ')}`);
    assert.ok(got.sockets.length >= 1, 'pusher-js tried to open a WebSocket');
    for (const socket of got.sockets) {
      assert.ok(socket.url.startsWith(`ws://${MAPPED_HOST}:${s.port}/`), `a plain ws:// URL: ${socket.url}`);
      assert.match(socket.outcome, /^blocked: SecurityError/, `Chromium refused it: ${JSON.stringify(socket)}`);
    }
    assert.match(await page.textContent('#state'), /unavailable/);
    await screenshot(page, 'browser-tls-3-mixed-content-blocked.png');

    // Marker: a wss:// socket from the same page reaches pusher-local and is logged; it must be
    // the only WebSocket pusher-local saw during this test.
    const markerUrl = `wss://127.0.0.1:${s.port}/app/${APP.key}?protocol=7&client=js&version=8.6.0`;
    const opened = await withTimeout(page.evaluate((url) => window.openMarker(url), markerUrl), PAGE_TIMEOUT_MS, 'the marker wss:// socket');
    assert.equal(opened.event, 'pusher:connection_established', JSON.stringify(opened));
    const markerSocket = JSON.parse(opened.data).socket_id;
    await s.waitForOutput(new RegExp(`\\+wss?\\s+${markerSocket.replace('.', '\\.')}\\s.*\\bconnected\\b`));
    const seen = s.outputLines().filter((line) => WS_CONNECTED_RE.test(line));
    assert.equal(seen.length, 1, `pusher-local saw only the marker's WebSocket:\n${seen.join('\n')}`);
    assert.ok(seen[0].includes(markerSocket), seen[0]);
  } finally {
    await page.close();
  }
});

// ---------------------------------------------------------------------------------------------

/** Headless Chromium with `home` as HOME (so its NSS database) and a fresh profile in it. */
async function launchChromium(homeDir) {
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (err) {
    throw new Error(`playwright-core is not installed (${err.message}): run \`npm ci\` in tests/sdk`);
  }
  return chromium.launchPersistentContext(path.join(homeDir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    timeout: LAUNCH_TIMEOUT_MS,
    env: { ...process.env, HOME: homeDir },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--host-resolver-rules=MAP ${MAPPED_HOST} 127.0.0.1`,
    ],
    viewport: { width: 1000, height: 640 },
  });
}

function certutil(args) {
  const out = spawnSync('certutil', args, { encoding: 'utf8', timeout: 30_000 });
  if (out.error || out.status !== 0) {
    throw new Error(`certutil ${args.join(' ')} failed (${out.error ? out.error.message : out.status}):\n${out.stdout}${out.stderr}`);
  }
}

async function screenshot(page, name) {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  process.stdout.write(`# screenshot: ${path.relative(path.resolve(__dirname, '..', '..'), file)} (${chromiumVersion})\n`);
}

/** Opens the test page with `options` and returns it with a `report()` reader for diagnostics. */
async function openPage(s, options) {
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  const query = new URLSearchParams({
    key: APP.key,
    port: String(s.port),
    forceTLS: options.forceTLS ? '1' : '0',
    wsHost: options.wsHost || '127.0.0.1',
    channel: options.channel,
    title: options.title,
    pretendHttp: options.pretendHttp ? '1' : '0',
    unavailableMs: String(options.unavailableMs || 10000),
  });
  const response = await page.goto(`https://127.0.0.1:${pagePort}/?${query}`, { timeout: PAGE_TIMEOUT_MS });
  const report = async () => {
    let state = '(unreadable)';
    try {
      state = JSON.stringify(await page.evaluate(() => window.__report), null, 2);
    } catch (err) {
      state = `(unreadable: ${err.message})`;
    }
    return `page report: ${state}\nbrowser console:\n  ${consoleLines.join('\n  ') || '(empty)'}`;
  };
  return { page, response, report };
}

/** Waits (bounded) until `predicate(window.__report)` holds in the page; returns the report. */
async function waitInPage(page, predicate, what, report, ms = PAGE_TIMEOUT_MS) {
  try {
    await page.waitForFunction(`(${predicate})(window.__report)`, null, { timeout: ms });
  } catch (err) {
    throw new Error(`timed out after ${ms} ms waiting for ${what}: ${err.message}\n${await report()}`);
  }
  return page.evaluate(() => window.__report);
}

/** The https server for the page: server.pem/server-key.pem from the tls dir (local CA). */
async function startPageServer(files) {
  const server = https.createServer({ cert: fs.readFileSync(files.cert), key: fs.readFileSync(files.key) }, (req, res) => {
    const url = new URL(req.url, 'https://127.0.0.1');
    const send = (type, body) => {
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url.pathname === '/') return send('text/html; charset=utf-8', PAGE_HTML);
    if (url.pathname === '/pusher.min.js') return send('text/javascript', fs.readFileSync(PUSHER_MIN_JS));
    if (url.pathname === '/page.js') return send('text/javascript', PAGE_JS);
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  await withTimeout(
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    }),
    5_000,
    'the page server to listen',
  );
  return server;
}

const PAGE_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>pusher-local TLS</title>
<style>
  body { font: 15px/1.4 monospace; margin: 16px; color: #111; }
  h1 { font-size: 20px; margin: 0 0 8px; }
  #state { font-size: 30px; font-weight: bold; margin: 10px 0; }
  .connected { color: #0a7d22; } .failed, .unavailable { color: #b00020; } .other { color: #8a6d00; }
  pre { background: #f2f2f2; padding: 6px; margin: 4px 0; white-space: pre-wrap; }
  td { padding: 1px 8px 1px 0; vertical-align: top; }
</style></head>
<body>
  <h1 id="title">pusher-local over TLS</h1>
  <table>
    <tr><td>page</td><td id="origin"></td></tr>
    <tr><td>options</td><td id="options"></td></tr>
    <tr><td>socket_id</td><td id="socket">-</td></tr>
    <tr><td>subscribed</td><td id="subscribed">-</td></tr>
  </table>
  <div id="state" class="other">state: loading</div>
  <div>states: <span id="states"></span></div>
  <div>WebSockets opened by the page:</div><pre id="sockets">(none)</pre>
  <div>received:</div><pre id="received">(nothing yet)</pre>
  <div>errors:</div><pre id="errors">(none)</pre>
  <script src="/pusher.min.js"></script>
  <script src="/page.js"></script>
</body></html>
`;

const PAGE_JS = `(function () {
  'use strict';
  var q = new URLSearchParams(location.search);
  var config = {
    key: q.get('key'),
    port: Number(q.get('port')),
    forceTLS: q.get('forceTLS') === '1',
    wsHost: q.get('wsHost'),
    channel: q.get('channel'),
    pretendHttp: q.get('pretendHttp') === '1',
    unavailableTimeout: Number(q.get('unavailableMs')),
  };
  var report = (window.__report = { config: config, states: [], socketId: null, subscribed: null, sockets: [], received: [], errors: [] });
  var $ = function (id) { return document.getElementById(id); };
  function render() {
    var state = report.states[report.states.length - 1] || 'initialized';
    $('title').textContent = q.get('title');
    $('origin').textContent = location.origin;
    $('options').textContent = JSON.stringify({ wsHost: config.wsHost, wsPort: config.port, wssPort: config.port, forceTLS: config.forceTLS })
      + (config.pretendHttp ? '  + https-page upgrade switched off (dials ws://)' : '');
    $('state').textContent = 'state: ' + state;
    $('state').className = /^(connected|failed|unavailable)$/.test(state) ? state : 'other';
    $('states').textContent = report.states.join(' -> ');
    $('socket').textContent = report.socketId || '-';
    $('subscribed').textContent = report.subscribed || '-';
    $('sockets').textContent = report.sockets.map(function (s) { return s.url + '\\n   -> ' + s.outcome; }).join('\\n') || '(none)';
    $('received').textContent = report.received.map(function (r) { return r.channel + ' / ' + r.event + ': ' + JSON.stringify(r.data, null, 1); }).join('\\n') || '(nothing yet)';
    $('errors').textContent = report.errors.join('\\n') || '(none)';
  }

  // Record every WebSocket the page opens: its URL and what became of it.
  var NativeWebSocket = window.WebSocket;
  function RecordedWebSocket(url, protocols) {
    var entry = { url: String(url), outcome: 'opening' };
    report.sockets.push(entry);
    render();
    var ws;
    try {
      ws = protocols === undefined ? new NativeWebSocket(url) : new NativeWebSocket(url, protocols);
    } catch (e) {
      entry.outcome = 'blocked: ' + e.name + ': ' + e.message;
      render();
      throw e;
    }
    ws.addEventListener('open', function () { entry.outcome = 'open'; render(); });
    ws.addEventListener('error', function () { entry.outcome += ', error'; render(); });
    ws.addEventListener('close', function (e) { entry.outcome += ', closed ' + e.code; render(); });
    return ws;
  }
  RecordedWebSocket.prototype = NativeWebSocket.prototype;
  ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'].forEach(function (k) { RecordedWebSocket[k] = NativeWebSocket[k]; });
  window.WebSocket = RecordedWebSocket;

  // Test 3: behave like a client without pusher-js's https-page upgrade, which would dial ws://.
  if (config.pretendHttp) Pusher.Runtime.getProtocol = function () { return 'http:'; };

  var pusher = new Pusher(config.key, {
    cluster: 'local',
    wsHost: config.wsHost,
    wsPort: config.port,
    wssPort: config.port,
    forceTLS: config.forceTLS,
    enabledTransports: ['ws'],
    disableStats: true,
    unavailableTimeout: config.unavailableTimeout,
  });
  report.states.push(pusher.connection.state); // the constructor has already started connecting
  pusher.connection.bind('state_change', function (change) {
    report.states.push(change.current);
    report.socketId = pusher.connection.socket_id || null;
    render();
  });
  pusher.connection.bind('error', function (err) {
    report.errors.push(JSON.stringify(err, function (k, v) { return v instanceof Error ? String(v) : v; }));
    render();
  });
  var channel = pusher.subscribe(config.channel);
  channel.bind('pusher:subscription_succeeded', function () { report.subscribed = config.channel; render(); });
  channel.bind_global(function (event, data) {
    if (event.indexOf('pusher:') === 0) return;
    report.received.push({ channel: config.channel, event: event, data: data });
    render();
  });

  // A raw wss:// socket (test 3's marker): resolves with its first message.
  window.openMarker = function (url) {
    return new Promise(function (resolve, reject) {
      var ws = new NativeWebSocket(url);
      ws.onmessage = function (m) { resolve(JSON.parse(m.data)); };
      ws.onerror = function () { reject(new Error('marker WebSocket failed: ' + url)); };
      window.__marker = ws;
    });
  };
  render();
})();
`;
