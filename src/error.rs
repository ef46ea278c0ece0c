//! What a client can do wrong, and its one mapping to Pusher codes.
//!
//! - [`HandshakeError`]: why a WebSocket was refused at connect; always closes, with a code.
//! - [`ClientError`]: what a connected client did wrong; answered with `pusher:error`, code from
//!   [`ClientError::code`] (exhaustive, no catch-all), and the socket stays open.
//!
//! HTTP statuses are mapped in `rest::reply`. What stops the server at start-up is
//! `server::error::Error`, at the top of the graph.

use crate::auth::channel::AuthError;
use crate::protocol::{codes, ChannelNameError, ProtocolError};

/// Why a WebSocket connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// No app has this key.
    #[error("Application does not exist")]
    UnknownApp,
    /// `protocol=` below 4, above 7, or not a number.
    #[error("Unsupported protocol version")]
    UnsupportedProtocol,
    /// The app's connection limit is reached.
    #[error("Application is over connection quota")]
    OverQuota,
    /// A WebSocket upgrade on a path other than `…/app/{key}`.
    #[error("Path not found")]
    PathNotFound,
    /// A plain `ws://` connection to an app that only accepts TLS.
    #[error("Application only accepts SSL connections, reconnect using wss://")]
    TlsOnly,
    /// A test asked for new connections to be refused (`/pusher-local/faults`).
    #[error("Connection refused by a pusher-local fault (close code {0})")]
    Fault(u16),
    /// This node plays dead (the `node_down` fault): come back later.
    #[error("pusher-local is simulating this node's death: reconnect later")]
    NodeDown,
}

impl HandshakeError {
    /// The close code.
    pub fn close_code(&self) -> u16 {
        match self {
            HandshakeError::UnknownApp => codes::APP_DOES_NOT_EXIST,
            HandshakeError::UnsupportedProtocol => codes::UNSUPPORTED_PROTOCOL,
            HandshakeError::OverQuota => codes::OVER_CONNECTION_QUOTA,
            HandshakeError::PathNotFound => codes::PATH_NOT_FOUND,
            HandshakeError::TlsOnly => codes::SSL_ONLY,
            HandshakeError::Fault(code) => *code,
            HandshakeError::NodeDown => codes::OVER_CAPACITY,
        }
    }
}

/// Something a connected client sent that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The frame could not be understood.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A binary frame: Pusher speaks JSON text frames only.
    #[error("binary frames are not supported: send JSON text frames")]
    BinaryFrame,
    /// A frame above the size limit.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    FrameTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A bad channel name.
    #[error("Invalid channel name: {0}")]
    ChannelName(#[from] ChannelNameError),
    /// A subscription or signin signature was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Subscribing twice.
    #[error("Existing subscription to channel {0}")]
    AlreadySubscribed(String),
    /// `channel_data` missing or not `{"user_id":...}`.
    #[error("Invalid presence channel_data: {0}")]
    PresenceData(String),
    /// The presence channel has its maximum of distinct users.
    #[error("Cannot subscribe to {channel}: presence channel is full ({max} members)")]
    PresenceFull {
        /// The channel.
        channel: String,
        /// The limit.
        max: usize,
    },
    /// `#server-to-user-{id}` by a socket not signed in as `{id}`.
    #[error("Cannot subscribe to {0}: the connection must first sign in (pusher:signin) as that user")]
    NotSignedInAs(String),
    /// Client events are off for this app.
    #[error("To send client events, you must enable this feature in the Settings page of your dashboard.")]
    ClientEventsDisabled,
    /// Client event on a public channel.
    #[error("Client event rejected - only supported on private and presence channels (got {0})")]
    ClientEventChannel(String),
    /// Client event on a channel the socket has not joined.
    #[error("Cannot broadcast client event (connection not subscribed to channel {0})")]
    ClientEventNotSubscribed(String),
    /// More than the allowed client events per second.
    #[error("Client event rejected due to rate limit ({0} per second)")]
    ClientEventRateLimit(u32),
    /// Event name too long.
    #[error("Event name is {len} characters long; the limit is {max}")]
    EventNameTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Payload over the app's limit.
    #[error("Payload of {len} bytes is over the limit of {max} bytes")]
    PayloadTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Signin is off for this app.
    #[error("User authentication is disabled for this app")]
    SigninDisabled,
    /// `user_data` is not `{"id":"..."}`.
    #[error("Invalid user_data: {0}")]
    UserData(String),
    /// Signin as a second user on one connection.
    #[error("Connection is already signed in as user {0}")]
    SignedInAsOther(String),
    /// Watchlist over 100 ids; the first 100 are kept.
    #[error("Watchlist limit exceeded. Only the first {0} user IDs are accepted.")]
    WatchlistLimit(usize),
}

impl ClientError {
    /// The `code` of the `pusher:error` frame: null except where Pusher documents one.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::ClientEventRateLimit(_) => Some(codes::CLIENT_EVENT_RATE_LIMIT),
            ClientError::WatchlistLimit(_) => Some(codes::WATCHLIST_LIMIT),
            ClientError::Protocol(_)
            | ClientError::BinaryFrame
            | ClientError::FrameTooLarge { .. }
            | ClientError::ChannelName(_)
            | ClientError::Auth(_)
            | ClientError::AlreadySubscribed(_)
            | ClientError::PresenceData(_)
            | ClientError::PresenceFull { .. }
            | ClientError::NotSignedInAs(_)
            | ClientError::ClientEventsDisabled
            | ClientError::ClientEventChannel(_)
            | ClientError::ClientEventNotSubscribed(_)
            | ClientError::EventNameTooLong { .. }
            | ClientError::PayloadTooLarge { .. }
            | ClientError::SigninDisabled
            | ClientError::UserData(_)
            | ClientError::SignedInAsOther(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes() {
        assert_eq!(HandshakeError::UnknownApp.close_code(), 4001);
        assert_eq!(HandshakeError::UnsupportedProtocol.close_code(), 4007);
        assert_eq!(HandshakeError::OverQuota.close_code(), 4004);
        assert_eq!(HandshakeError::PathNotFound.close_code(), 4005);
        assert_eq!(ClientError::ClientEventRateLimit(10).code(), Some(4301));
        assert_eq!(ClientError::WatchlistLimit(100).code(), Some(4302));
        assert_eq!(ClientError::AlreadySubscribed("x".into()).code(), None);
    }

    #[test]
    fn messages_match_real_pusher() {
        assert_eq!(
            ClientError::AlreadySubscribed("test-channel".into()).to_string(),
            "Existing subscription to channel test-channel"
        );
        assert_eq!(
            ClientError::ClientEventNotSubscribed("private-a".into()).to_string(),
            "Cannot broadcast client event (connection not subscribed to channel private-a)"
        );
    }
}
