//! Colours: one per kind of line, one per channel kind. Colour is decided once by the caller
//! (`--color`, `NO_COLOR`, whether stdout is a terminal) and passed in as a flag; `colored`'s
//! global switch is set to match by [`enable`].

use colored::{Color, Colorize};

use crate::protocol::{ChannelKind, ChannelName};

/// Kinds of things that get a colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Connects.
    Connect,
    /// Disconnects.
    Disconnect,
    /// Frames from clients.
    In,
    /// Frames to clients.
    Out,
    /// Published events.
    Publish,
    /// Event names.
    Event,
    /// HTTP API calls.
    Api,
    /// Errors.
    Error,
}

/// Sets `colored`'s global switch; called once when the printer starts.
pub fn enable(color: bool) {
    colored::control::set_override(color);
}

fn color_of(kind: Kind) -> Color {
    match kind {
        Kind::Connect => Color::Green,
        Kind::Disconnect => Color::Yellow,
        Kind::In => Color::Cyan,
        Kind::Out => Color::Blue,
        Kind::Publish => Color::Magenta,
        Kind::Event => Color::BrightWhite,
        Kind::Api => Color::BrightBlue,
        Kind::Error => Color::Red,
    }
}

/// `text` in the colour for `kind`, or plain.
pub fn paint(kind: Kind, text: &str, color: bool) -> String {
    if color {
        text.color(color_of(kind)).to_string()
    } else {
        text.to_owned()
    }
}

/// Dimmed text (timestamps, notices).
pub fn dim(text: &str, color: bool) -> String {
    if color {
        text.dimmed().to_string()
    } else {
        text.to_owned()
    }
}

/// A channel name coloured by its kind.
pub fn channel(name: &ChannelName, color: bool) -> String {
    if !color {
        return name.to_string();
    }
    let c = match name.kind() {
        ChannelKind::Public => Color::White,
        ChannelKind::Private => Color::Yellow,
        ChannelKind::PrivateEncrypted => Color::BrightYellow,
        ChannelKind::Presence => Color::Green,
        ChannelKind::ServerToUser => Color::Cyan,
    };
    name.as_str().color(c).to_string()
}
