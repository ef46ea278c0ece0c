//! pusher-local: a local stand-in for Pusher Channels. It serves the WebSocket protocol (v7) at
//! `/app/{key}` and the signed HTTP API at `/apps/{app_id}/...` on one port, so pusher-js,
//! Laravel Echo and the official server SDKs work against it unchanged.
//!
//! # Layout
//!
//! In data-path order:
//!
//! - [`cli`], [`config`]: the command line and the resolved settings (defaults < `.env` <
//!   `--config` < environment < flags).
//! - [`apps`]: the app table (id, key, secret, features, limits).
//! - [`accept`]: the accept loop: one HTTP/1.1 connection (hyper, with upgrades) per socket,
//!   plain or TLS by its first byte, serving the routes; the peer address for each request.
//! - [`ws`]: the WebSocket edge: upgrade, reads ([`ws::read_ahead`]), per-socket task
//!   ([`ws::connection`]), protocol state machine ([`ws::session`]).
//! - [`xhr`]: pusher-js's HTTP fallback transports (`xhr_streaming`, `xhr` polling, `xhr_send`):
//!   the same session, registry entry and outbox as a WebSocket, framed as lines.
//! - [`rest`]: the HTTP API edge: request parts, signature check, handlers, replies.
//! - [`protocol`]: wire types: `ClientMessage`, server frame encoders, `ChannelName`, `SocketId`,
//!   codes.
//! - [`auth`]: HMAC signatures for subscriptions, signin and HTTP requests.
//! - [`tls`]: the local certificate authority and the server's certificate (one port serves
//!   plain and TLS: [`accept`] hands a ClientHello to it), and what outgoing TLS trusts.
//! - [`state`]: `AppState` and `publish`, the one choke point every event passes.
//! - [`broker`]: the multi-node seam (`Broker` trait), the embedded `LocalBroker`, and
//!   `RedisBroker` (several nodes as one: pub/sub deliveries, per-node keys and Lua scripts for
//!   cluster-wide counts and presence, heartbeats and a reaper for nodes that die, reconnect).
//! - [`registry`]: channels, presence rosters, users, and fan-out to per-socket outboxes.
//! - [`webhook`]: webhooks reported by the session and `publish`: leave delays, batching,
//!   signed bodies, the local outbox, the retrying sender.
//! - [`recorder`]: `--record` (taps `state.publish`; SQLite on its own thread, group
//!   commit), fixtures (format, watched folder), replay timing and publishers, capture, and
//!   the URL forms both take ([`recorder::remote`]).
//! - [`control`]: pusher-local's own HTTP API (`/pusher-local/webhooks…`, `/fixtures`,
//!   `/replays`), the server's replays, and the client behind `pusher-local webhooks`.
//! - [`printer`]: the terminal traffic log and the banner.
//! - [`server`], [`shutdown`]: listeners, routes, graceful drain; [`port_owner`]: which process
//!   holds a port that is already in use (Linux `/proc`), for the error that says so.
//! - [`error`]: error types and their Pusher codes.
//!
//! ```text
//! WS:   ws::connection (frame) ─▶ ClientMessage ─▶ ws::session ─▶ registry / state.publish
//! XHR:  xhr (xhr_send body) ─▶ ClientMessage ─▶ ws::session (same) ; outbox ─▶ xhr (a[…] lines)
//! REST: rest::filters::authenticate ─▶ rest::handlers ─▶ state.publish
//! state.publish(event): encode once ─▶ broker.publish(envelope) ─▶ registry.fan_out ─▶ Outbox ─▶ socket
//!                       (Redis: then PUBLISH ─▶ other nodes' broker ─▶ their registry.fan_out)
//! subscribe: ws::session ─▶ broker.subscribe (cluster view; hands the socket to the registry) ─▶ webhooks
//! leave:     ws::session ─▶ registry.unsubscribe ─▶ broker.leave (cluster view) ─▶ webhooks
//! webhooks: ws::session (Joined/Left) + state.publish (client events) ─▶ webhook::Webhooks
//!           ─▶ webhook::Outbox (kept) ─▶ bounded queue ─▶ webhook::sender ─▶ POST, retries
//! record:   state.publish ─▶ recorder::Recorder (queue) ─▶ writer thread ─▶ SQLite, group commit
//!           ─▶ ack ─▶ the REST trigger answers
//! replay:   control::replays ─▶ recorder::replay::run (timing) ─▶ state.publish (Source::Replay)
//!           `pusher-local replay` ─▶ recorder::replay::HttpPublisher ─▶ signed POST /events
//! ```
//!

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::too_many_lines)]

pub mod accept;
pub mod apps;
pub mod auth;
pub mod banner;
pub mod broker;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod error;
pub mod event;
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
pub mod webhook;
pub mod ws;
pub mod xhr;

pub use config::Config;
pub use server::{run, serve, Listeners};
pub use server::{Error, Result};
pub use shutdown::Shutdown;
