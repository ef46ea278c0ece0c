'use strict';
// The debug console (/pusher-local/console) in a real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; no browser is downloaded), against the built binary: the page
// watches the pusher-js clients (Node) and server SDK calls of each test and drives the server
// through its buttons, and each test checks both sides (what the page shows, what the clients got).
//
// Each test opens the console in a fresh browser context (its own localStorage) and saves a
// screenshot as target/test-artifacts/console-<name>.png (…-failed.png when it fails). Without
// chromium the tests skip loudly, except under CI=true, where they fail.

const assert = require('node:assert/strict');
const { before, after, test } = require('node:test');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const { withServer, startServer, missingTools, expectStatus } = require('./support');

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(__dirname, '..', '..');
const ARTIFACTS = path.join(ROOT, 'target', 'test-artifacts');
const UI_TIMEOUT_MS = 10_000;
const LAUNCH_TIMEOUT_MS = 30_000;
const VIEWPORT = { width: 1440, height: 860 };

let missing = [];
let home;
let browser;
let chromiumVersion = '';

const it = withServer();

before(async () => {
  missing = missingTools('the debug console browser tests (headless Chromium)', { chromium: [CHROMIUM, '--version'] });
  if (missing.length) return;
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (err) {
    throw new Error(`playwright-core is not installed (${err.message}): run \`npm ci\` in tests/sdk`);
  }
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'pusher-local-console-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: LAUNCH_TIMEOUT_MS,
    env: { ...process.env, HOME: home },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  chromiumVersion = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout.trim();
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** Polls `check` (sync or async) until it returns something truthy; bounded. */
async function until(what, check, ms = UI_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last seen: ${seen})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A CSS selector for elements with `data-testid` and the given data-* attributes. */
function sel(testid, attrs = {}) {
  const parts = Object.entries(attrs).map(([name, value]) => `[data-${name}="${String(value).replace(/["\\]/g, '\\$&')}"]`);
  return `[data-testid="${testid}"]${parts.join('')}`;
}

/** Opens the console in a fresh context; returns helpers bound to that page. */
async function openConsole(s) {
  const context = await browser.newContext({ viewport: VIEWPORT, colorScheme: 'light' });
  const origin = `http://127.0.0.1:${s.port}`;
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  const page = await context.newPage();
  const log = [];
  const pageErrors = [];
  const requests = [];
  page.on('console', (m) => log.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => {
    pageErrors.push(e.message);
    log.push(`[pageerror] ${e.message}`);
  });
  page.on('request', (r) => requests.push(r.url()));
  const response = await page.goto(`${origin}/pusher-local/console`, { timeout: UI_TIMEOUT_MS });
  const ui = {
    page,
    context,
    origin,
    log,
    pageErrors,
    requests,
    response,
    $: (testid, attrs) => page.locator(sel(testid, attrs)),
    /** Stream rows with these data-* attributes (kind, channel, event, socket, source, app). */
    rows: (attrs) => page.locator(sel('stream-row', attrs)),
    tab: (name) => page.click(sel(`tab-${name}`)),
    text: (locator) => locator.textContent({ timeout: UI_TIMEOUT_MS }),
    async shot(name) {
      const file = path.join(ARTIFACTS, `console-${name}.png`);
      await page.screenshot({ path: file });
      process.stdout.write(`# screenshot: ${path.relative(ROOT, file)} (${chromiumVersion})\n`);
    },
    describe() {
      return `browser console:\n  ${log.slice(-40).join('\n  ') || '(empty)'}`;
    },
    async close() {
      await context.close();
    },
  };
  await page.waitForSelector(sel('stream-status', { state: 'live' }), { timeout: UI_TIMEOUT_MS });
  return ui;
}

/**
 * A test with the console open: skips (loudly, see before) without chromium outside CI; saves a
 * "-failed" screenshot and the page's console on failure; fails on any uncaught page error.
 */
function consoleTest(name, shot, fn) {
  it(name, async (s, t) => {
    if (missing.length) return t.skip(`${missing.join(', ')} missing`);
    const ui = await openConsole(s);
    try {
      await fn(s, ui, t);
      assert.deepEqual(ui.pageErrors, [], 'no uncaught errors in the page');
    } catch (err) {
      try {
        await ui.shot(`${shot}-failed`);
      } catch (_) {
        /* the page may be gone */
      }
      err.message += `\n${ui.describe()}`;
      throw err;
    } finally {
      await ui.close();
    }
    return undefined;
  });
}

/** Adds channels, event and data to the event creator (its tab must be open) and sends. */
async function sendFromConsole(ui, { channels, event, data, socketId }) {
  const { page } = ui;
  for (const name of channels) {
    await page.fill(sel('send-channel-input'), name);
    await page.press(sel('send-channel-input'), 'Enter');
  }
  await page.fill(sel('send-event'), event);
  await page.fill(sel('send-data'), data);
  if (socketId) await page.fill(sel('send-socket'), socketId);
  await page.click(sel('send-button'));
}

/** The control API from Node (no Origin: as curl). */
async function control(s, method, route, body) {
  const res = await fetch(`http://127.0.0.1:${s.port}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

// ---------------------------------------------------------------------------------------------

consoleTest('the console opens from the binary alone; a pusher-js client shows under Connections and Channels', 'open', async (s, ui) => {
  const { page } = ui;
  assert.equal(ui.response.status(), 200);
  assert.match(ui.response.headers()['content-type'], /^text\/html/);
  for (const asset of ['console.js', 'console.css']) {
    const res = await fetch(`${ui.origin}/pusher-local/console/${asset}`);
    assert.equal(res.status, 200, asset);
    assert.match(res.headers.get('content-type'), asset.endsWith('.js') ? /javascript/ : /^text\/css/, asset);
  }

  const alice = await s.connect('alice');
  await alice.subscribe('console-orders');

  await ui.tab('connections');
  const conn = ui.$('connection-row', { socket: alice.socketId });
  await conn.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await ui.text(conn.locator(sel('connection-transport'))), 'ws');
  assert.equal(await ui.text(conn.locator(sel('connection-app'))), '123456');
  assert.match(await ui.text(conn.locator(sel('connection-remote'))), /^127\.0\.0\.1:\d+$/);
  await until('the connection to list console-orders', async () => /console-orders/.test(await ui.text(conn.locator(sel('connection-channels')))));
  await ui.shot('open-connections');

  await ui.tab('channels');
  const card = ui.$('channel-row', { channel: 'console-orders' });
  await card.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await card.getAttribute('data-type'), 'public');
  await until('console-orders to count 1 subscriber', async () => (await card.locator(sel('channel-subscribers')).getAttribute('data-count')) === '1');

  // The stream saw the connection and the subscription, as structured rows.
  await ui.rows({ kind: 'connect', socket: alice.socketId }).first().waitFor({ timeout: UI_TIMEOUT_MS });
  await ui.rows({ kind: 'frame_out', socket: alice.socketId, event: 'pusher_internal:subscription_succeeded' }).first().waitFor({ timeout: UI_TIMEOUT_MS });

  // Clicking the channel filters the stream to it.
  await card.locator(sel('channel-filter')).click();
  assert.equal(await page.inputValue(sel('filter-channel')), 'console-orders');
  await until('the stream to show only console-orders rows', async () => {
    const channels = await ui.rows().evaluateAll((rows) => rows.map((r) => r.dataset.channel));
    return channels.length > 0 && channels.every((c) => c === 'console-orders');
  });
  assert.ok(await card.evaluate((node) => node.classList.contains('selected')));

  // Nothing was loaded from anywhere but the server itself.
  const foreign = ui.requests.filter((url) => !url.startsWith(`${ui.origin}/`));
  assert.deepEqual(foreign, [], 'the console loads nothing from the network');
  await ui.shot('open');
});

consoleTest('an event sent from the event creator reaches pusher-js exactly and shows in the stream with its socket count', 'send', async (s, ui) => {
  const { page } = ui;
  const bob = await s.connect('bob');
  const carol = await s.connect('carol');
  const bobLog = bob.record(await bob.subscribe('console-send'));
  const carolLog = carol.record(await carol.subscribe('console-send'));

  await ui.tab('send');
  // The occupied channel is suggested.
  await until('console-send among the suggestions', () => page.locator('#occupied-channels option[value="console-send"]').count());
  const payload = { id: 42, items: [{ sku: 'A-1', qty: 2 }], note: 'héllo ✓ "quoted" <b>not html</b>', nested: { ok: true, none: null, n: -1.5e3 } };
  await sendFromConsole(ui, { channels: ['console-send'], event: 'order-placed', data: JSON.stringify(payload, null, 2) });

  const got = await bobLog.waitFor('order-placed');
  assert.deepEqual(got.data, payload);
  assert.deepEqual((await carolLog.waitFor('order-placed')).data, payload);

  const result = ui.$('send-result-channel', { channel: 'console-send' });
  await result.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await result.getAttribute('data-delivered'), '2');

  // One publish row (source console, 2 sockets) and one fanned-out s→c row with its count.
  const pub = ui.rows({ kind: 'publish', channel: 'console-send', event: 'order-placed' });
  await pub.first().waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await pub.count(), 1);
  assert.equal(await pub.getAttribute('data-source'), 'console');
  assert.equal(await pub.locator(sel('row-count')).getAttribute('data-count'), '2');
  assert.match(await ui.text(pub.locator(sel('row-count'))), /→ 2 sockets/);
  // The server groups the identical frames written to many sockets in one burst into one record
  // with `sockets` (as the terminal's ×N line); a burst cut in two by the printer's drain gives
  // two records. Either way the rows account for both sockets, and a grouped row shows its count.
  const fan = ui.rows({ kind: 'frame_out', channel: 'console-send', event: 'order-placed' });
  await until('s→c rows covering both sockets', async () => {
    const counts = await fan.evaluateAll((rows) => rows.map((r) => {
      const count = r.querySelector('[data-testid="row-count"]');
      return count ? Number(count.dataset.count) : 1;
    }));
    return counts.reduce((a, b) => a + b, 0) === 2;
  });
  if ((await fan.count()) === 1) {
    assert.match(await ui.text(fan.locator(sel('row-count'))), /^×2 sockets$/);
    assert.equal(await ui.text(fan.locator('.c-sock')), '×2');
  }

  // Expanded: the payload as formatted JSON, and the copy button copies it.
  await pub.locator(sel('row-toggle')).click();
  const shown = await ui.text(pub.locator(sel('row-payload-json')));
  assert.deepEqual(JSON.parse(shown), payload);
  assert.match(shown, /\n {2}"id": 42,/, 'formatted with indentation');
  await pub.locator(sel('row-copy')).click();
  const copied = await until('the clipboard to hold the payload', () => page.evaluate(() => navigator.clipboard.readText()));
  assert.deepEqual(JSON.parse(copied), payload);
  await ui.shot('send');

  // Recent sends: send the same again.
  const recent = ui.$('recent-send').first();
  await recent.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.match(await ui.text(recent), /order-placed/);
  await recent.locator(sel('send-again')).click();
  await until('the second delivery', () => bobLog.filter('order-placed').length === 2);
  assert.deepEqual(bobLog.filter('order-placed')[1].data, payload);
  await until('a second publish row', async () => (await pub.count()) === 2);
});

consoleTest('invalid JSON is refused in the page with its line, column and what was expected', 'invalid-json', async (s, ui) => {
  const { page } = ui;
  await ui.tab('send');
  await page.fill(sel('send-channel-input'), 'console-invalid');
  await page.press(sel('send-channel-input'), 'Enter');
  await page.fill(sel('send-event'), 'never-sent');

  const cases = [
    ['{\n  "a": 1,\n  "b": \n}', /^Line 4, column 1 \(character 21\): expected a value .*found '}'/],
    ['{"a": 1,}', /^Line 1, column 9 \(character 9\): a property name was expected after ','/],
    ["{'a': 1}", /^Line 1, column 2 \(character 2\): property names need double quotes, not single quotes/],
    ['[1, 2', /^Line 1, column 6 \(character 6\): expected ',' or '\]' after the array element, found the end of the text/],
    ['{"a": "line\nbreak"}', /^Line 1, column 12 \(character 12\): a line break inside a string/],
    ['{"a": 1} x', /^Line 1, column 10 \(character 10\): unexpected 'x' after the end of the JSON value/],
  ];
  for (const [text, expected] of cases) {
    await page.fill(sel('send-data'), text);
    const error = ui.$('send-data-error');
    await error.waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
    await until(`the message for ${JSON.stringify(text)}`, async () => expected.test(await ui.text(error)));
    assert.ok(await ui.$('send-button').isDisabled(), 'Send is disabled while the data is not JSON');
  }

  // The message shows the line with a caret under the column.
  await page.fill(sel('send-data'), '{\n  "price": 12.5,\n  "currency" "EUR"\n}');
  await until('the excerpt', async () => (await ui.text(ui.$('send-data-error'))).includes('3 |   "currency" "EUR"\n  |              ^'));
  assert.match(await ui.text(ui.$('send-data-error')), /^Line 3, column 14 \(character 33\): expected ':' after the property name, found '"'/);
  assert.match(await ui.text(ui.$('send-data-status')), /not valid JSON: line 3, column 14/);
  await ui.shot('invalid-json');

  // Ctrl+Enter does not send either; the page says why.
  await page.press(sel('send-data'), 'Control+Enter');
  await until('the refusal', async () => /Not sent: the data is not valid JSON \(line 3, column 14\)/.test(await ui.text(ui.$('send-result'))));
  const history = await control(s, 'GET', '/pusher-local/events?channel=console-invalid');
  assert.deepEqual(history.body.events, [], 'nothing was published');

  // Fixed: valid again.
  await page.fill(sel('send-data'), '{"price": 12.5, "currency": "EUR"}');
  await until('the data to be valid', async () => /valid JSON/.test(await ui.text(ui.$('send-data-status'))) && !(await ui.$('send-button').isDisabled()));
  assert.ok(await ui.$('send-data-error').isHidden());
});

consoleTest('the presence roster updates live as a second member joins and leaves', 'presence', async (s, ui) => {
  const ada = await s.connect('ada', { presence: { user_id: 'ada', user_info: { name: 'Ada', role: 'admin' } } });
  await ada.subscribe('presence-console');
  await ui.tab('channels');
  const card = ui.$('channel-row', { channel: 'presence-console' });
  await card.locator(sel('member', { user: 'ada' })).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await card.getAttribute('data-type'), 'presence');
  assert.deepEqual(JSON.parse(await ui.text(card.locator(`${sel('member', { user: 'ada' })} ${sel('member-info')}`))), { name: 'Ada', role: 'admin' });

  const bob = await s.connect('bob', { presence: { user_id: 'bob', user_info: { name: 'Bob' } } });
  await bob.subscribe('presence-console');
  await card.locator(sel('member', { user: 'bob' })).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.deepEqual(JSON.parse(await ui.text(card.locator(`${sel('member', { user: 'bob' })} ${sel('member-info')}`))), { name: 'Bob' });
  assert.equal(await card.locator(sel('member')).count(), 2);
  assert.match(await ui.text(card.locator(sel('channel-users'))), /2 users/);
  assert.equal(await card.locator(sel('channel-subscribers')).getAttribute('data-count'), '2');
  // An event to the room: one publish row, one fanned-out row; its payload expanded.
  await s.api.trigger('presence-console', 'chat-message', { from: 'ada', text: 'Hi Bob ✓', at: '2026-12-03T16:45:00Z' });
  const pub = ui.rows({ kind: 'publish', channel: 'presence-console', event: 'chat-message' }).first();
  await pub.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await pub.locator(sel('row-count')).getAttribute('data-count'), '2');
  await pub.locator(sel('row-toggle')).click();
  await ui.shot('presence');
  await ui.page.emulateMedia({ colorScheme: 'dark' });
  await ui.shot('presence-dark');
  await ui.page.emulateMedia({ colorScheme: 'light' });

  bob.disconnect();
  await card.locator(sel('member', { user: 'bob' })).waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
  assert.equal(await card.locator(sel('member')).count(), 1);
  assert.match(await ui.text(card.locator(sel('channel-users'))), /1 user\b/);
  await ui.shot('presence-left');
});

consoleTest('a trigger signed with the wrong secret shows its diagnosis in full in the stream', 'signature', async (s, ui) => {
  await expectStatus(s.serverSdk({ secret: 'not-the-secret' }).trigger('console-signed', 'refused-event', { a: 1 }), 401);
  const row = ui.rows({ kind: 'signature' }).first();
  await row.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.match(await ui.text(row.locator(sel('row-summary'))), /signature refused for POST \/apps\/123456\/events/);
  const diag = (id) => ui.text(row.locator(sel(id)));
  assert.match(await diag('diag-cause'), /wrong secret/i);
  assert.match(await diag('diag-expected-string'), /^"POST\\n\/apps\/123456\/events\\nauth_key=sdk-key&auth_timestamp=\d+&auth_version=1\.0&body_md5=[0-9a-f]{32}"$/);
  const received = await diag('diag-received');
  const expected = await diag('diag-expected');
  assert.match(received, /^[0-9a-f]{64}$/);
  assert.match(expected, /^[0-9a-f]{64}$/);
  assert.notEqual(received, expected);
  assert.match(await diag('diag-body-md5'), /^[0-9a-f]{32}$/);
  assert.match(await diag('diag-skew'), /^[+-]\d+s \(signer minus server\)$/);
  // The API call itself: 401, with Pusher's hint.
  const api = ui.rows({ kind: 'api' }).filter({ hasText: '/apps/123456/events' }).first();
  await api.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.match(await ui.text(api), /→ 401/);
  await ui.shot('signature');
});

consoleTest('disconnecting a socket from the console with 4200 makes pusher-js reconnect at once', 'disconnect', async (s, ui) => {
  const { page } = ui;
  const dana = await s.connect('dana');
  await dana.subscribe('console-reconnect');
  const first = dana.socketId;

  await ui.tab('connections');
  const card = ui.$('connection-row', { socket: first });
  await card.waitFor({ timeout: UI_TIMEOUT_MS });
  await page.selectOption(sel('disconnect-code'), '4200');
  await page.fill(sel('disconnect-reason'), 'console test');
  await card.locator(sel('disconnect-button')).click();
  await until('the page to confirm', async () => (await ui.text(ui.$('disconnect-result'))) === `Closed ${first} with 4200.`);

  await until('pusher-js to reconnect with a new socket id', () => dana.state === 'connected' && dana.socketId && dana.socketId !== first);
  const second = dana.socketId;
  const states = dana.states.names();
  assert.deepEqual(states.slice(states.lastIndexOf('connected') - 1), ['connecting', 'connected'], states.join(' -> '));

  // The stream shows the close with its code; the new socket appears, subscribed again.
  const closed = ui.rows({ kind: 'disconnect', socket: first }).first();
  await closed.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.match(await ui.text(closed.locator(sel('row-summary'))), /^4200 /);
  const again = ui.$('connection-row', { socket: second });
  await again.waitFor({ timeout: UI_TIMEOUT_MS });
  await until('the new socket to be on console-reconnect again', async () => /console-reconnect/.test(await ui.text(again.locator(sel('connection-channels')))));
  await card.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
  await ui.shot('disconnect');
});

consoleTest('a fixture replayed from the console reaches a client; a looping replay shows its progress and stops', 'replay', async (s, ui) => {
  const { page } = ui;
  const erin = await s.connect('erin');
  const log = erin.record(await erin.subscribe('console-replayed'));
  const fixture = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'notifications.json'), 'utf8'));

  await ui.tab('replay');
  for (const name of ['notifications', 'stock_ticker', 'presence_chat']) {
    await ui.$('fixture-row', { name }).waitFor({ timeout: UI_TIMEOUT_MS });
  }
  await page.selectOption(sel('replay-fixture'), 'notifications');
  await page.fill(sel('replay-speed'), 'max');
  await page.fill(sel('replay-map'), 'notifications=console-replayed');
  await page.click(sel('replay-start'));
  await until('the page to confirm', async () => /^Replaying notifications \(8 events\) as #\d+\.$/.test(await ui.text(ui.$('replay-result'))));

  await until('the 8 notifications to arrive', () => log.filter('notification').length === fixture.events.length);
  assert.deepEqual(
    log.filter('notification').map((e) => e.data),
    fixture.events.map((e) => e.data),
  );
  const rows = ui.rows({ kind: 'publish', channel: 'console-replayed', source: 'replay' });
  await until('the replayed publish rows', async () => (await rows.count()) === fixture.events.length);

  // A looping replay at speed 1: its progress is shown; Stop ends it.
  await page.selectOption(sel('replay-fixture'), 'stock_ticker');
  await page.fill(sel('replay-speed'), '1');
  await page.check(sel('replay-loop'));
  await page.fill(sel('replay-map'), 'stock_ticker=console-ticker');
  await page.click(sel('replay-start'));
  const running = ui.$('replay-row', { fixture: 'stock_ticker', state: 'running' });
  await running.waitFor({ timeout: UI_TIMEOUT_MS });
  await until('progress', async () => /^\d+ \/ 30 events · pass 1 · .*speed 1× · looping$/.test(await ui.text(running.locator(sel('replay-progress')))));
  assert.equal(await ui.text(ui.$('tab-replay-count')), '1');
  await ui.shot('replay');

  await running.locator(sel('replay-stop')).click();
  await ui.$('replay-row', { fixture: 'stock_ticker', state: 'stopped' }).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.deepEqual((await control(s, 'GET', '/pusher-local/replays')).body.replays, []);
});

consoleTest('a publish that reaches nobody shows why in the stream', 'hint', async (s, ui) => {
  const { page } = ui;
  const finn = await s.connect('finn');
  await finn.subscribe('private-console-orders');

  await ui.tab('send');
  await sendFromConsole(ui, { channels: ['console-orders'], event: 'order-placed', data: '{"id": 7}' });
  const result = ui.$('send-result-channel', { channel: 'console-orders' });
  await result.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await result.getAttribute('data-delivered'), '0');

  const row = ui.rows({ kind: 'publish', channel: 'console-orders', event: 'order-placed' }).first();
  await row.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await row.locator(sel('row-count')).getAttribute('data-count'), '0');
  const hint = await ui.text(row.locator(sel('row-hint')));
  assert.match(hint, /^Why nobody got it: /);
  assert.match(hint, /private-console-orders/, 'the near miss is named');

  // A channel with nothing like it anywhere: the hint still says why.
  await page.click(`${sel('send-channel-chip', { channel: 'console-orders' })} .chip-x`);
  await sendFromConsole(ui, { channels: ['zzqv-nobody'], event: 'lonely', data: '{}' });
  const lonely = ui.rows({ kind: 'publish', channel: 'zzqv-nobody', event: 'lonely' }).first();
  await lonely.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.match(await ui.text(lonely.locator(sel('row-hint'))), /^Why nobody got it: .+/);
  await ui.shot('hint');
});

consoleTest('pause counts what arrives, resume shows it; order, kind filter, search and clear', 'controls', async (s, ui) => {
  const { page } = ui;
  await page.click(sel('pause-toggle'));
  await ui.$('paused-banner').waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
  for (const n of [0, 1, 2]) await s.api.trigger('console-paused', `tick-${n}`, { n });
  await until('the paused count', async () => Number(await ui.text(ui.$('paused-count'))) >= 6);
  assert.match(await ui.text(ui.$('pause-toggle')), /resume \(\d+ new\)/);
  assert.equal(await ui.rows({ kind: 'publish', channel: 'console-paused' }).count(), 0, 'nothing added while paused');
  await ui.shot('controls-paused');

  await page.click(sel('pause-toggle'));
  const ticks = ui.rows({ kind: 'publish', channel: 'console-paused' });
  await until('the ticks after resume', async () => (await ticks.count()) === 3);
  const order = () => ticks.evaluateAll((rows) => rows.map((r) => r.dataset.event));
  assert.deepEqual(await order(), ['tick-2', 'tick-1', 'tick-0'], 'newest first');
  await page.click(sel('order-toggle'));
  await until('newest last', async () => JSON.stringify(await order()) === JSON.stringify(['tick-0', 'tick-1', 'tick-2']));

  await page.selectOption(sel('filter-kind'), 'publish');
  await until('only publish rows', async () => {
    const kinds = await ui.rows().evaluateAll((rows) => rows.map((r) => r.dataset.kind));
    return kinds.length >= 3 && kinds.every((k) => k === 'publish');
  });
  await page.fill(sel('filter-search'), '"n":1');
  await until('only tick-1', async () => JSON.stringify(await ui.rows().evaluateAll((rows) => rows.map((r) => r.dataset.event))) === '["tick-1"]');
  await page.fill(sel('filter-search'), '');
  await page.fill(sel('filter-event'), 'tick-[02]');
  await until('brackets to match only themselves', async () => (await ui.rows().count()) === 0);
  await page.fill(sel('filter-event'), 'tick-?');
  await until('a glob', async () => (await ui.rows().count()) === 3);
  await ui.shot('controls');

  // The `missed` event (the server dropped records for a page that fell behind; a burst big
  // enough to overflow its queue is not deterministic here, so the handler is called directly).
  await page.evaluate(() => window.pusherLocalConsole.onMissed(1234));
  await ui.$('missed-banner').waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
  assert.match(await ui.text(ui.$('missed-text')), /^The console fell behind: 1234 records were not shown\./);
  assert.match(await ui.text(ui.rows({ kind: 'missed' }).first()), /1234 records missed here/);

  await page.click(sel('clear-stream'));
  await until('an empty list', async () => (await ui.rows().count()) === 0);
  assert.match(await ui.text(ui.$('stream-foot')), /^0 of \d+ records? shown/);
});

consoleTest('a burst of 3000 events keeps the list bounded to the last 2000 records', 'burst', async (s, ui) => {
  const { page } = ui;
  const batches = [];
  for (let b = 0; b < 300; b++) {
    batches.push(
      s.api.triggerBatch(Array.from({ length: 10 }, (_, i) => ({ channel: 'console-burst', name: `burst-${b * 10 + i}`, data: { n: b * 10 + i } }))),
    );
    if (batches.length >= 16) await Promise.all(batches.splice(0));
  }
  await Promise.all(batches);
  await until('the last event to be listed', async () => (await ui.rows({ kind: 'publish', event: 'burst-2999' }).count()) === 1, 30_000);
  const counts = await page.evaluate(() => ({
    records: window.pusherLocalConsole.state.records.length,
    rows: document.querySelectorAll('[data-testid="stream-row"]').length,
  }));
  assert.equal(counts.records, 2000, JSON.stringify(counts));
  assert.ok(counts.rows <= 2000, JSON.stringify(counts));
  // A filter redraws from the kept records, all of them.
  await page.fill(sel('filter-event'), 'burst-*');
  await until('the kept publish rows', async () => {
    const kept = await page.evaluate(() => window.pusherLocalConsole.state.records.filter((r) => r.kind === 'publish' && /^burst-/.test(r.event)).length);
    return kept > 1000 && (await ui.rows({ kind: 'publish' }).count()) === kept;
  });
  assert.equal(await ui.rows({ event: 'burst-0' }).count(), 0, 'the oldest were let go');
  await ui.shot('burst');
});

consoleTest("the webhook outbox shows a webhook's body and headers, and resends it to a URL", 'webhooks', async (s, ui) => {
  const received = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  try {
    const gina = await s.connect('gina');
    await gina.subscribe('console-hooked');
    await ui.tab('webhooks');
    const card = ui.$('webhook-row').filter({ hasText: 'channel_occupied console-hooked' }).first();
    await card.waitFor({ timeout: UI_TIMEOUT_MS });
    await card.locator('.webhook-head').click();
    const details = card.locator(sel('webhook-details'));
    await details.waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await ui.text(details), /X-Pusher-Signature/i);
    assert.match(await ui.text(details), /"channel": "console-hooked"/);
    const url = `http://127.0.0.1:${receiver.address().port}/pusher/webhook`;
    await details.locator(sel('webhook-resend-url')).fill(url);
    await details.locator(sel('webhook-resend')).click();
    await until('the resend to arrive', () => received.length === 1);
    const body = JSON.parse(received[0].body);
    assert.deepEqual(body.events.map((e) => [e.name, e.channel]), [['channel_occupied', 'console-hooked']]);
    assert.ok(received[0].headers['x-pusher-signature']);
    await until('the page to confirm', async () => (await ui.text(ui.$('webhook-resend-result'))) === `queued to ${url}`);
    await ui.shot('webhooks');
  } finally {
    await new Promise((resolve) => receiver.close(resolve));
  }
});

consoleTest('a page on another origin can neither start a replay or a recording nor resend a webhook', 'foreign-origin', async (s, ui) => {
  // A page served by another local server (another origin: other port) tries the control API.
  const foreign = http.createServer((req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));
  await new Promise((resolve) => foreign.listen(0, '127.0.0.1', resolve));
  try {
    const page = await ui.context.newPage();
    await page.goto(`http://127.0.0.1:${foreign.address().port}/`, { timeout: UI_TIMEOUT_MS });
    const outcome = await page.evaluate(async (base) => {
      const tries = {};
      const attempt = async (name, init, path) => {
        try {
          const res = await fetch(base + path, init);
          tries[name] = res.type === 'opaque' ? 'opaque' : res.status;
        } catch (err) {
          tries[name] = `blocked: ${err.name}`;
        }
      };
      const replay = JSON.stringify({ fixture: 'notifications', speed: 'max' });
      await attempt('json', { method: 'POST', headers: { 'content-type': 'application/json' }, body: replay }, '/pusher-local/replays');
      await attempt('simple', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: replay }, '/pusher-local/replays');
      await attempt('resend', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{}' }, '/pusher-local/webhooks/1/resend');
      await attempt('record', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{}' }, '/pusher-local/recording');
      return tries;
    }, ui.origin);
    assert.match(String(outcome.json), /^blocked: TypeError$/, JSON.stringify(outcome));
    const replays = await control(s, 'GET', '/pusher-local/replays');
    assert.deepEqual(replays.body.replays, [], 'no replay started');
    const events = await control(s, 'GET', '/pusher-local/events?source=replay&channel=notifications');
    assert.deepEqual(events.body.events, [], 'nothing was replayed');
    assert.equal((await control(s, 'GET', '/pusher-local/recordings')).body.recording, null, 'no recording started');
    await page.close();
    // The same requests from the console itself (same origin) are accepted.
    assert.equal((await control(s, 'GET', '/pusher-local/replays')).status, 200);
    await ui.shot('foreign-origin');
  } finally {
    await new Promise((resolve) => foreign.close(resolve));
  }
});

consoleTest('a recording started and stopped from the console exports as a fixture that replays to pusher-js', 'record', async (s, ui) => {
  const { page } = ui;
  await ui.tab('replay');
  assert.match(await page.getAttribute(sel('record-name'), 'placeholder'), /^rec-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$/);
  await page.fill(sel('record-name'), 'console-session');
  await page.click(sel('record-start'));
  const live = ui.$('recording-live', { name: 'console-session' });
  await live.waitFor({ timeout: UI_TIMEOUT_MS });
  await until('the page to confirm', async () => /^Recording console-session into .*pusher-local\.db\.$/.test(await ui.text(ui.$('record-result'))));
  assert.ok(await page.isDisabled(sel('record-start')), 'one recording at a time');

  // Two events through the server SDK, while a pusher-js client listens.
  const hana = await s.connect('hana');
  const heard = hana.record(await hana.subscribe('console-recorded'));
  await s.api.trigger('console-recorded', 'order-placed', { n: 1 });
  await s.api.trigger('console-recorded', 'order-placed', { n: 2, note: 'ünïcode ✓' });
  await until('the live count', async () => (await live.getAttribute('data-events')) === '2');
  assert.equal(await ui.text(ui.$('recording-live-text')), 'recording console-session — 2 events');
  assert.equal(await ui.text(ui.$('rec-indicator-text')), 'REC console-session · 2 events');
  await ui.shot('record');

  await page.click(sel('record-stop'));
  await until('the page to confirm the stop', async () => (await ui.text(ui.$('record-result'))) === 'Stopped console-session: 2 events saved.');
  await live.waitFor({ state: 'hidden', timeout: UI_TIMEOUT_MS });
  await ui.$('rec-indicator').waitFor({ state: 'hidden', timeout: UI_TIMEOUT_MS });
  const row = ui.$('recording-row', { name: 'console-session', running: 'false' });
  await row.waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal(await ui.text(row.locator(sel('recording-events'))), '2');

  // Export: the fixture is listed, and a second export says the file exists.
  await row.locator(sel('recording-export')).click();
  await until('the page to confirm the export', async () => /^Exported as .*console-session\.json \(2 events\)/.test(await ui.text(ui.$('record-result'))));
  const fixtureRow = ui.$('fixture-row', { name: 'console-session' });
  await fixtureRow.waitFor({ timeout: UI_TIMEOUT_MS });
  await row.locator(sel('recording-export')).click();
  await until('the conflict', async () => /^Not exported: 409: .*console-session\.json exists already/.test(await ui.text(ui.$('record-result'))));
  await ui.$('recording-overwrite').click();
  await until('the overwrite', async () => /^Exported as /.test(await ui.text(ui.$('record-result'))));

  // Replayed from the page, pusher-js receives the same events again.
  await page.fill(sel('replay-speed'), 'max');
  await fixtureRow.locator(sel('fixture-replay')).click();
  await until('the page to confirm the replay', async () => /^Replaying console-session \(2 events\) as #\d+\.$/.test(await ui.text(ui.$('replay-result'))));
  await until('the replayed events', () => heard.filter('order-placed').length === 4);
  assert.deepEqual(
    heard.filter('order-placed').map((e) => e.data),
    [{ n: 1 }, { n: 2, note: 'ünïcode ✓' }, { n: 1 }, { n: 2, note: 'ünïcode ✓' }],
  );
  await ui.rows({ kind: 'publish', channel: 'console-recorded', source: 'replay' }).nth(1).waitFor({ timeout: UI_TIMEOUT_MS });
  assert.equal((await control(s, 'GET', '/pusher-local/recordings')).body.recording, null);
  await row.scrollIntoViewIfNeeded();
  await ui.shot('record-exported');
});

/** A GET to 127.0.0.1:`port` with a `Host` header of our choosing (fetch() may not set one). */
function getWithHost(port, route, host) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: route, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.setTimeout(UI_TIMEOUT_MS, () => req.destroy(new Error('no answer')));
    req.end();
  });
}

// A server that asks for a control token: what one bound beyond loopback does (it makes one up
// and prints it). Tests bind loopback only, so this one is given its token with --control-token,
// which takes the same path through the server.
test('with a control token the console opens only from the banner link; a foreign Host is refused', async (t) => {
  if (missing.length) return t.skip(`${missing.join(', ')} missing`);
  const token = 'console-test-token-5d1f';
  const server = await startServer({ extraArgs: ['--control-token', token] });
  const context = await browser.newContext({ viewport: VIEWPORT, colorScheme: 'light' });
  const page = await context.newPage();
  const origin = `http://127.0.0.1:${server.port}`;
  const shot = async (name) => {
    const file = path.join(ARTIFACTS, `console-${name}.png`);
    await page.screenshot({ path: file });
    process.stdout.write(`# screenshot: ${path.relative(ROOT, file)} (${chromiumVersion})\n`);
  };
  try {
    server.mark = 0;
    await server.waitForOutput(new RegExp(`console http://127\\.0\\.0\\.1:${server.port}/pusher-local/console\\?token=${token} `));

    const refused = await page.goto(`${origin}/pusher-local/console`, { timeout: UI_TIMEOUT_MS });
    assert.equal(refused.status(), 401);
    assert.match(await page.locator(sel('token-help')).textContent({ timeout: UI_TIMEOUT_MS }), /link printed in pusher-local's banner/);
    await shot('token-refused');
    const apps = await fetch(`${origin}/pusher-local/apps`);
    assert.equal(apps.status, 401, 'the control API asks too');
    const signed = await server.api.trigger('token-open', 'still', { n: 1 });
    assert.equal(signed.status, 200, 'the signed HTTP API does not');

    // The banner's link: the cookie is set, the token leaves the address bar, the page works.
    await page.goto(`${origin}/pusher-local/console?token=${token}`, { timeout: UI_TIMEOUT_MS });
    assert.equal(page.url(), `${origin}/pusher-local/console`);
    await page.waitForSelector(sel('stream-status', { state: 'live' }), { timeout: UI_TIMEOUT_MS });
    const alice = await server.connect('alice');
    await alice.subscribe('token-orders');
    await page.click(sel('tab-channels'));
    await page.locator(sel('channel-row', { channel: 'token-orders' })).waitFor({ timeout: UI_TIMEOUT_MS });
    await shot('token');

    // DNS rebinding: a page on another name that resolves here sends its own Host.
    const rebound = await getWithHost(server.port, '/pusher-local/console', `evil.example:${server.port}`);
    assert.equal(rebound.status, 403);
    assert.match(JSON.parse(rebound.body).error, /only requests addressed to this machine, not Host "evil\.example:\d+"/);
    assert.equal((await getWithHost(server.port, '/pusher-local/health', `localhost:${server.port}`)).status, 200);
  } catch (err) {
    await shot('token-failed').catch(() => {});
    throw err;
  } finally {
    await context.close();
    await server.stop();
  }
  return undefined;
});
