//! `Client`: what the registry knows of one connection beyond its outbox, for the control API's
//! `GET /pusher-local/connections`: its transport, remote address, user agent and when it
//! connected. It is kept in the registry's table itself, not in an allocation of its own: a
//! small allocation per connection, made while hyper's buffers come and go, pinned their memory
//! (measured: 1–2 KB more per idle socket). The frames a socket sent and received are counted on
//! its outbox.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How a connection reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// A WebSocket.
    Ws,
    /// pusher-js's HTTP streaming fallback.
    XhrStreaming,
    /// pusher-js's HTTP polling fallback.
    XhrPolling,
}

/// Longest user agent kept (bytes); longer ones are cut at a character boundary.
const MAX_USER_AGENT: usize = 256;

/// One connection's description.
#[derive(Debug, Clone)]
pub struct Client {
    /// The transport.
    pub transport: Transport,
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// The `User-Agent` it connected with.
    pub user_agent: Option<Box<str>>,
    /// When it connected, in ms since the epoch.
    pub connected_at_ms: u64,
}

impl Client {
    /// A connection that has just arrived.
    pub fn new(transport: Transport, remote: Option<SocketAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent.map(|ua| {
            let mut end = ua.len().min(MAX_USER_AGENT);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].into()
        });
        Self { transport, remote, user_agent, connected_at_ms: now_ms() }
    }

    /// How long it has been connected, in ms.
    pub fn age_ms(&self) -> u64 {
        now_ms().saturating_sub(self.connected_at_ms)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_user_agent_is_cut_at_a_character_boundary_and_frames_count() {
        let ua = "é".repeat(200);
        let client = Client::new(Transport::Ws, None, Some(&ua));
        let kept = client.user_agent.as_deref().unwrap();
        assert!(kept.len() <= MAX_USER_AGENT && ua.starts_with(kept));
        assert_eq!(serde_json::to_value(Transport::XhrStreaming).unwrap(), "xhr_streaming");
    }
}
