//! The one integration-test binary. Where new tests go:
//! - protocol behaviour over a real socket (handshake, channels, presence, client events,
//!   signin, keepalive, bad frames, shutdown): `ws.rs`;
//! - pusher-js's HTTP fallback transports (`xhr_streaming`, `xhr` polling, `xhr_send`): `xhr.rs`;
//! - the HTTP API (signatures, endpoints, status codes, bodies): `rest.rs`;
//! - the binary itself (flags, config layering, banner, exit codes, signals): `cli.rs`;
//! - behaviour that must be the same on every broker, embedded and Redis (cross-node events,
//!   cluster-wide presence and queries, a killed node, Redis restarting): `broker.rs`;
//! - webhooks (kinds, delays, signing, retries, outbox, control API, `webhooks` commands):
//!   `webhook.rs`;
//! - recording, fixtures, replay and capture (the store, the fixtures folder, replay timing,
//!   the replay control endpoints): `recorder.rs`; the commands and `kill -9`: `cli.rs`;
//! - recording from the console (start, stop, list, export through the control API):
//!   `recordings.rs`;
//! - the test-suite controls under `/pusher-local/` (health, and what issue 13 adds): `control.rs`;
//! - TLS on the one port (wss/https, certificates, TLS-only apps): `tls.rs`;
//! - the README's banner and log-line examples against what the binary renders: `readme.rs`.
//!
//! Servers run in-process on port 0 (`support::TestServer`). Don't add a `misc.rs`.
//! The official-SDK suite is a separate binary, `tests/sdk.rs`.

mod broker;
mod cli;
mod console;
mod control;
mod readme;
mod recorder;
mod recordings;
mod rest;
mod support;
mod tls;
mod webhook;
mod ws;
mod xhr;
