//! `Client`: what the registry knows of one connection beyond its outbox, for the control API's
//! `GET /pusher-local/connections` and the metrics: its transport, remote address, user agent,
//! when it connected and the frames it sent and received. The transport's task counts frames
//! out and the session frames in, each on its own connection's counters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// One connection's description and counters.
#[derive(Debug)]
pub struct Client {
    /// The transport.
    pub transport: Transport,
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// The `User-Agent` it connected with.
    pub user_agent: Option<Box<str>>,
    /// When it connected, in ms since the epoch.
    pub connected_at_ms: u64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
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
        Self {
            transport,
            remote,
            user_agent,
            connected_at_ms: now_ms(),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
        }
    }

    /// One frame received from the client.
    #[inline]
    pub fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` frames written to the client.
    #[inline]
    pub fn frames_out(&self, n: usize) {
        self.frames_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Frames received and sent so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.frames_in.load(Ordering::Relaxed), self.frames_out.load(Ordering::Relaxed))
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
        client.frame_in();
        client.frames_out(3);
        assert_eq!(client.counts(), (1, 3));
        assert_eq!(serde_json::to_value(Transport::XhrStreaming).unwrap(), "xhr_streaming");
    }
}
