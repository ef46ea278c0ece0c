//! pusher-local: a local stand-in for Pusher Channels. It serves the WebSocket protocol (v7) at
//! `/app/{key}` and the signed HTTP API at `/apps/{app_id}/...` on one port, so pusher-js,
//! Laravel Echo and the official server SDKs work against it unchanged.
//!
//! # Layout
//!
//! The rooms from the ground up; each imports only rooms above it in this list
//! (`tests/layers.rs` checks it, with the order written down):
//!
//! - [`protocol`]: wire types: `ClientMessage`, server frame encoders, `ChannelName`,
//!   `SocketId`, codes. [`shutdown`]: the shutdown token. [`port_owner`]: which process holds a
//!   port in use (Linux `/proc`). [`tls`]: the local certificate authority, the server's
//!   certificate, what outgoing TLS trusts (a leaf: it imports nothing of ours). [`faults`]:
//!   the faults a test injects (late or lost deliveries, refusals, HTTP errors, clock skew, a
//!   node playing dead). [`changes`]: wakes the control API's waiters.
//! - [`apps`]: the app table (id, key, secret, features, limits, webhook endpoints).
//! - [`auth`]: HMAC signatures for subscriptions, signin and HTTP requests, and the diagnosis
//!   of a bad one.
//! - [`error`]: what a client can do wrong, with its Pusher code.
//! - [`event`]: a published event and its source (API, client, replay).
//! - [`metrics`]: per-app counters for `GET /pusher-local/metrics`. [`history`]: the last N
//!   events of each app, for the control API's history and waits.
//! - [`printer`]: the terminal traffic log: typed lines, filters, text and JSON renderers.
//! - [`registry`]: this node's sockets, channels and presence rosters; fan-out to per-socket
//!   outboxes.
//! - [`broker`]: the multi-node seam, five methods (`publish`, `query`, `join`, `leave`,
//!   `close`): the embedded `LocalBroker` and `RedisBroker` (several nodes as one).
//!   [`unreached`]: why an event reached no socket, from the registry.
//! - [`webhook`]: leave delays, batching, signed bodies, the local outbox, the retrying sender.
//! - [`recorder`]: `--record` (SQLite, group commit), fixtures and the watched folder, replay
//!   timing, the server's running replays, capture, the URL forms of remote servers.
//! - [`config`]: the resolved settings, read as layers: defaults < `.env` < `--config` file <
//!   environment < flags.
//! - [`state`]: `AppState`, holding all of the above: [`state::AppState::publish`], the one
//!   choke point of every event, and `join`/`leave`, through the one function every
//!   membership change (and each webhook kind) goes through. Only `state` holds the broker.
//! - [`session`]: one socket's protocol state machine, shared by both transports.
//! - [`accept`]: the accept loop: one HTTP/1.1 connection per socket, plain or TLS by its first
//!   byte; the peer address for each request.
//! - The edges: [`ws`] (upgrade, reads, the per-socket task), [`xhr`] (pusher-js's HTTP
//!   fallbacks), [`rest`] (the signed HTTP API), [`control`] (pusher-local's own
//!   `/pusher-local/…` API and its guard).
//! - [`server`]: listeners, routes, the graceful drain, and the start-up [`Error`].
//!   [`banner`]: what a start prints.
//! - [`cli`]: the command line (a settings layer for `config`); [`commands`]: the server and
//!   the tool commands, with the control API's HTTP client. `main.rs` dispatches to them.
//!
//! ```text
//! WS:   ws::connection (frame) ─▶ ClientMessage ─▶ session ─▶ state.join/leave/publish
//! XHR:  xhr (xhr_send body) ─▶ ClientMessage ─▶ session (same) ; outbox ─▶ xhr (a[…] lines)
//! REST: rest::handlers::answer (signature) ─▶ rest::handlers ─▶ state.publish
//! state.publish(event): record ─▶ encode once ─▶ broker.publish(envelope) ─▶ registry.fan_out
//!                       ─▶ Outbox ─▶ socket   (Redis: then PUBLISH ─▶ other nodes' registry)
//! state.join/leave: broker.join/leave (cluster view; the registry takes or lets go of the
//!                   socket; member_added/removed announced) ─▶ state.membership ─▶ webhooks,
//!                   subscription_count
//! webhooks: state.membership + state.publish (client events) ─▶ webhook::Webhooks
//!           ─▶ webhook::Outbox (kept) ─▶ bounded queue ─▶ webhook::sender ─▶ POST, retries
//! record:   state.publish ─▶ recorder::Recorder (queue) ─▶ writer thread ─▶ SQLite, group commit
//!           ─▶ ack ─▶ the REST trigger answers
//! replay:   control ─▶ state.start_replay ─▶ recorder::replays ─▶ recorder::replay::run
//!           (timing) ─▶ state.publish (Source::Replay)
//!           `pusher-local replay` ─▶ recorder::replay::HttpPublisher ─▶ signed POST /events
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::too_many_lines)]

pub mod accept;
pub mod apps;
pub mod auth;
pub mod banner;
pub mod broker;
pub mod changes;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod error;
pub mod event;
pub mod faults;
pub mod history;
pub mod metrics;
pub mod port_owner;
pub mod printer;
pub mod protocol;
pub mod recorder;
pub mod registry;
pub mod rest;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod state;
pub mod tls;
pub mod unreached;
pub mod webhook;
pub mod ws;
pub mod xhr;

pub use config::Config;
pub use server::{run, serve, Listeners};
pub use server::{Error, Result};
pub use shutdown::Shutdown;
