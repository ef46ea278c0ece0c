'use strict';
// `npm test`: runs Node's test runner over the SDK suite with one local CA for the whole run.
//
//   npm test                     every *.test.js file
//   npm test -- tls.test.js      one file (any argument is passed on to `node --test`)
//
// pusher-local's TLS (wss:// and https:// on its one port) is signed by a local CA that the
// binary creates in its --tls-dir. Node trusts an extra CA only through NODE_EXTRA_CA_CERTS,
// which it reads once at process start, so the CA must exist before any test file starts:
//
//   1. a fresh temporary folder DIR is made (never the user's own PUSHER_LOCAL_TLS_DIR);
//   2. `pusher-local tls --tls-dir DIR` creates DIR/ca.pem (bounded; exit status and file checked);
//   3. `node --test ARGS` runs with PUSHER_LOCAL_SDK_TLS_DIR=DIR and NODE_EXTRA_CA_CERTS=DIR/ca.pem
//      (replacing any NODE_EXTRA_CA_CERTS already set: the tests talk to 127.0.0.1 only);
//      support.js passes `--tls-dir DIR` to every server it starts (its hermeticEnv() drops
//      PUSHER_* variables), so nothing lands in the user's real data directory;
//   4. the folder is removed and the runner's exit code is returned.
//
// The binary is PUSHER_LOCAL_BIN, or ../../target/debug/pusher-local (as in support.js).

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const TLS_SETUP_TIMEOUT_MS = 30_000;

const bin = process.env.PUSHER_LOCAL_BIN
  ? path.resolve(process.env.PUSHER_LOCAL_BIN)
  : path.resolve(__dirname, '..', '..', 'target', 'debug', 'pusher-local');

function fail(message) {
  process.stderr.write(`run.js: ${message}\n`);
  process.exit(1);
}

if (!fs.existsSync(bin)) fail(`pusher-local binary not found at ${bin}: run \`cargo build\` or set PUSHER_LOCAL_BIN`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pusher-local-sdk-tls-'));
const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });

// The binary's environment without PUSHER_* (like support.js's hermeticEnv()).
const env = {};
for (const [name, value] of Object.entries(process.env)) {
  if (!name.startsWith('PUSHER_') && name !== 'NO_COLOR') env[name] = value;
}
const setup = spawnSync(bin, ['tls', '--tls-dir', dir], {
  env,
  cwd: dir,
  encoding: 'utf8',
  timeout: TLS_SETUP_TIMEOUT_MS,
  stdio: ['ignore', 'pipe', 'pipe'],
});
const ca = path.join(dir, 'ca.pem');
if (setup.error || setup.status !== 0 || !fs.existsSync(ca)) {
  cleanup();
  const why = setup.error ? setup.error.message : `exit status ${setup.status}, signal ${setup.signal}`;
  fail(
    `\`${bin} tls --tls-dir ${dir}\` did not create ${ca} (${why}).\n` +
      `--- its stdout ---\n${setup.stdout || ''}\n--- its stderr ---\n${setup.stderr || ''}\n---`,
  );
}

const runner = spawn(process.execPath, ['--test', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, PUSHER_LOCAL_SDK_TLS_DIR: dir, NODE_EXTRA_CA_CERTS: ca },
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => runner.kill(signal));
}
runner.on('error', (err) => {
  cleanup();
  fail(`could not start ${process.execPath} --test: ${err.message}`);
});
runner.on('exit', (code, signal) => {
  cleanup();
  if (code === null) fail(`node --test was killed by ${signal}`);
  process.exit(code);
});
