'use strict';
// One pusher-js client in a Node process of its own, for tests that need it to trust a CA the
// test process does not: Node takes extra CAs only from NODE_EXTRA_CA_CERTS, read at process
// start, so a CA made during a test can only be trusted by a new process (see
// `startChildClient()` in tls.test.js, which sets NODE_EXTRA_CA_CERTS for this one).
//
// Usage: node child-client.js '{"key":"…","port":1234,"forceTLS":true,"channels":["a"]}'
//
// Writes one JSON object per line on stdout:
//   {"event":"state","current":"connected","previous":"connecting","socketId":"1.2","url":"wss://…"}
//   {"event":"error","error":{…}}
//   {"event":"subscribed","channel":"a"}
//   {"event":"message","channel":"a","name":"greeting","data":{…}}
// and exits, disconnecting first, when its stdin closes.

const PusherClient = require('pusher-js');

const config = JSON.parse(process.argv[2]);
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

PusherClient.logToConsole = false;
PusherClient.log = (message) => process.stderr.write(`[pusher-js] ${message}\n`);

const pusher = new PusherClient(config.key, {
  cluster: 'local',
  wsHost: '127.0.0.1',
  wsPort: config.port,
  wssPort: config.port,
  forceTLS: Boolean(config.forceTLS),
  enabledTransports: ['ws'],
  disableStats: true,
});

function socketUrl() {
  const connection = pusher.connection.connection;
  const socket = connection && connection.transport && connection.transport.socket;
  return socket ? socket.url : undefined;
}

pusher.connection.bind('state_change', ({ previous, current }) => {
  emit({ event: 'state', current, previous, socketId: pusher.connection.socket_id, url: socketUrl() });
});
pusher.connection.bind('error', (error) => {
  emit({ event: 'error', error: JSON.parse(JSON.stringify(error, (k, v) => (v instanceof Error ? String(v) : v))) });
});
for (const name of config.channels || []) {
  const channel = pusher.subscribe(name);
  channel.bind('pusher:subscription_succeeded', () => emit({ event: 'subscribed', channel: name }));
  channel.bind('pusher:subscription_error', (err) => emit({ event: 'subscription_error', channel: name, err }));
  channel.bind_global((event, data) => {
    if (!event.startsWith('pusher:')) emit({ event: 'message', channel: name, name: event, data });
  });
}

process.stdin.on('end', () => {
  pusher.disconnect();
  process.exit(0);
});
process.stdin.resume();
