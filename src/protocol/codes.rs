//! Pusher close and `pusher:error` codes (protocol v7, "Error Codes").
//!
//! The ranges drive what pusher-js does on close: 4000–4099 do not reconnect, 4100–4199 reconnect
//! with backoff, 4200–4299 reconnect at once, 4300–4399 are sent as `pusher:error` on an open
//! connection. Only the codes this server uses are listed.

/// Application only accepts SSL connections (a `ws://` connection to a TLS-only app); pusher-js
/// switches to TLS and reconnects at once.
pub const SSL_ONLY: u16 = 4000;
/// Application does not exist (unknown key in the WebSocket path).
pub const APP_DOES_NOT_EXIST: u16 = 4001;
/// Application is over its connection quota.
pub const OVER_CONNECTION_QUOTA: u16 = 4004;
/// Path not found (the WebSocket endpoint is `/app/{key}`).
pub const PATH_NOT_FOUND: u16 = 4005;
/// Unsupported protocol version (`protocol` below 4, above 7, or not a number).
pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
/// Connection is unauthorized; also used when the app terminates a user's connections.
pub const UNAUTHORIZED: u16 = 4009;
/// Over capacity: used for a socket whose outbound queue is full (slow consumer).
pub const OVER_CAPACITY: u16 = 4100;
/// Generic "reconnect immediately": sent to every socket on shutdown.
pub const RECONNECT_NOW: u16 = 4200;
/// Pong reply not received in time.
pub const PONG_NOT_RECEIVED: u16 = 4201;
/// Client event rejected due to rate limit (sent as `pusher:error`, socket stays open).
pub const CLIENT_EVENT_RATE_LIMIT: u16 = 4301;
/// Watchlist limit exceeded (sent as `pusher:error`, socket stays open).
pub const WATCHLIST_LIMIT: u16 = 4302;

/// WebSocket (RFC 6455) "going away": every socket gets it when the server shuts down.
///
/// Not 4200 ("reconnect immediately"), which soketi and Reverb send: pusher-local has stopped
/// accepting by then, so pusher-js's immediate retry is refused, and a refused attempt waits out
/// pusher-js 8's fixed 15 s strategy timeout. After 1001 pusher-js retries 1 s later (ws, then
/// wss 2 s after that), so a restart that is back within a second or three costs a client that
/// long instead of 15 s (measured with pusher-js 8.6.0: `tests/sdk/restart.test.js`).
pub const WS_GOING_AWAY: u16 = 1001;
/// WebSocket (RFC 6455) close code for a text frame that is not valid UTF-8.
pub const WS_INVALID_PAYLOAD: u16 = 1007;
/// WebSocket (RFC 6455) close code for a message too big to process.
pub const WS_MESSAGE_TOO_BIG: u16 = 1009;
