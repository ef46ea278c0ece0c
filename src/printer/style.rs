//! Colours: one per kind of line, one per channel kind, and event names by family (client
//! events, subscriptions, internal traffic dimmed, errors red). Colour is decided once
//! ([`ColorChoice`] from `--color`, `NO_COLOR`, whether stdout is a terminal: [`should_color`])
//! and passed in as a flag; `colored`'s global switch is set to match by [`enable`].

use colored::{Color, Colorize};

use super::line::Kind;
use crate::protocol::{ChannelKind, ChannelName};

/// When to colour the terminal output (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is unset or empty.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Whether to colour: `always`, `never`, or (`auto`) when stdout is a terminal and `NO_COLOR`
/// is unset or empty.
pub fn should_color(choice: ColorChoice, stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_is_terminal && no_color.is_none_or(|v| v.is_empty()),
    }
}

/// `text` without ANSI escape sequences (`ESC [ ... m`).
pub fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Sets `colored`'s global switch; called once when the printer starts.
pub fn enable(color: bool) {
    colored::control::set_override(color);
}

fn kind_color(kind: Kind) -> Color {
    match kind {
        Kind::Text => Color::White,
        Kind::Connect => Color::Green,
        Kind::Disconnect => Color::Yellow,
        Kind::In => Color::Cyan,
        Kind::Out => Color::Blue,
        Kind::Publish => Color::Magenta,
        Kind::Api => Color::BrightBlue,
        Kind::Webhook => Color::BrightCyan,
        Kind::Recorder => Color::BrightMagenta,
        Kind::Cluster => Color::BrightYellow,
        Kind::Refused | Kind::ClientError | Kind::Signature | Kind::Error => Color::Red,
    }
}

/// `text` in the colour of `kind`, or plain.
pub fn kind(kind: Kind, text: &str, color: bool) -> String {
    if color {
        text.color(kind_color(kind)).to_string()
    } else {
        text.to_owned()
    }
}

/// `text` in red (errors), or plain.
pub fn error(text: &str, color: bool) -> String {
    if color {
        text.red().to_string()
    } else {
        text.to_owned()
    }
}

/// Dimmed text (timestamps, internal traffic, notices).
pub fn dim(text: &str, color: bool) -> String {
    if color {
        text.dimmed().to_string()
    } else {
        text.to_owned()
    }
}

/// Bold text (headings).
pub fn bold(text: &str, color: bool) -> String {
    if color {
        text.bold().to_string()
    } else {
        text.to_owned()
    }
}

/// An event name coloured by family.
pub fn event(name: &str, color: bool) -> String {
    if !color {
        return name.to_owned();
    }
    if name.starts_with("client-") {
        name.magenta().to_string()
    } else if name.starts_with("pusher_internal:") {
        name.dimmed().to_string()
    } else if name == "pusher:error" {
        name.red().to_string()
    } else if name == "pusher:subscribe" || name == "pusher:unsubscribe" || name == "pusher:signin" {
        name.cyan().to_string()
    } else if name.starts_with("pusher:") {
        name.dimmed().to_string()
    } else {
        name.bold().to_string()
    }
}

/// A channel name coloured by its kind.
pub fn channel(name: &str, color: bool) -> String {
    if !color {
        return name.to_owned();
    }
    let kind = ChannelName::parse(name, usize::MAX).map(|c| c.kind()).unwrap_or(ChannelKind::Public);
    let c = match kind {
        ChannelKind::Public => Color::White,
        ChannelKind::Private => Color::Yellow,
        ChannelKind::PrivateEncrypted => Color::BrightYellow,
        ChannelKind::Presence => Color::Green,
        ChannelKind::ServerToUser => Color::Cyan,
    };
    name.color(c).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn strip_removes_escape_codes_only() {
        assert_eq!(strip("\u{1b}[32mgreen\u{1b}[0m plain"), "green plain");
    }

    #[test]
    fn no_color_and_pipes_turn_auto_off_but_not_always() {
        assert!(should_color(ColorChoice::Auto, true, None));
        assert!(should_color(ColorChoice::Auto, true, Some(OsStr::new(""))), "empty NO_COLOR is unset");
        assert!(!should_color(ColorChoice::Auto, true, Some(OsStr::new("1"))));
        assert!(!should_color(ColorChoice::Auto, false, None), "piped output has no escape codes");
        assert!(should_color(ColorChoice::Always, false, Some(OsStr::new("1"))));
        assert!(!should_color(ColorChoice::Never, true, None));
    }
}
