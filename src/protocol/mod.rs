//! Pusher wire types: what goes over a WebSocket, parsed and encoded. Pure: serde only, no IO.
//!
//! - [`client`]: `ClientMessage`, parsed from a client's text frame.
//! - [`server`]: encoders for every server → client frame.
//! - [`channel`]: `ChannelName` / `ChannelKind`, parsed once.
//! - [`socket_id`]: `SocketId` and its generator.
//! - [`codes`]: close and error codes.

pub mod channel;
pub mod client;
pub mod codes;
pub mod server;
pub mod socket_id;

pub use channel::{ChannelKind, ChannelName, ChannelNameError};
pub use client::{ClientMessage, ProtocolError, Subscribe};
pub use server::Frame;
pub use socket_id::{SocketId, SocketIds};
