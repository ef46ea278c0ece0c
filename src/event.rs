//! A published event and where it came from: what `AppState::publish` takes from every source
//! (the HTTP API, a client, a replay) and what the printer, the recorder and webhooks describe.

use std::sync::Arc;

use crate::apps::AppId;
use crate::protocol::{ChannelName, SocketId};

/// Where a published event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /events` or `/batch_events`.
    Api,
    /// A `client-*` event from a socket.
    Client,
    /// A fixture replayed by the server itself (`--replay`, the control API).
    Replay,
    /// The debug console's event creator (`POST /pusher-local/publish`).
    Console,
}

impl Source {
    /// A short label for logs.
    pub fn label(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Client => "client",
            Source::Replay => "replay",
            Source::Console => "console",
        }
    }
}

/// One event to publish on one channel.
#[derive(Debug, Clone)]
pub struct Event {
    /// The app.
    pub app_id: AppId,
    /// The channel.
    pub channel: ChannelName,
    /// The event name.
    pub name: Arc<str>,
    /// The data, relayed verbatim.
    pub data: Arc<str>,
    /// A socket that must not receive it.
    pub except: Option<SocketId>,
    /// The sender's presence user id (client events on presence channels).
    pub user_id: Option<Arc<str>>,
    /// Where it came from.
    pub source: Source,
}
