//! The human-readable line: aligned columns `time marker socket [app] event channel payload`,
//! payload cut to the terminal width with its full size shown, or pretty-printed with `--full`.
//!
//! On a terminal every line fits its width and never wraps ([`Layout`]): below 130 columns the
//! event and channel columns narrow (a longer name is cut with `…`), below 100 the socket id
//! shrinks to its first part, and the payload takes what is left; any other line is cut with
//! `…` at the edge, and a signature diagnosis continues on indented lines. Files and pipes get
//! the full-width columns and uncut lines.

use chrono::{DateTime, Local};

use super::line::{Line, View};
use super::style;
use crate::auth::diagnose::Subject;

/// How to render text lines.
#[derive(Debug, Clone, Copy)]
pub struct TextOptions {
    /// Use colours.
    pub color: bool,
    /// Print payloads whole and pretty-printed.
    pub full: bool,
    /// Cut lines to this many columns (a terminal); `None` never cuts (files, pipes).
    pub width: Option<usize>,
    /// Show the app column (several apps configured).
    pub show_app: bool,
}

const SOCKET: usize = 17;
const APP: usize = 8;
const EVENT: usize = 32;
const CHANNEL: usize = 24;
/// The short socket id column (its first part, at most this many characters).
const SHORT_SOCKET: usize = 6;
/// What continuation lines of a diagnosis are indented by.
const INDENT: usize = 4;

/// Column widths for a terminal `width` (`None`: a file or pipe: the full widths, nothing cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The terminal width.
    pub width: Option<usize>,
    /// The socket column.
    pub socket: usize,
    /// Show only the first part of socket ids.
    pub short_socket: bool,
    /// The event column.
    pub event: usize,
    /// The channel column.
    pub channel: usize,
}

impl Layout {
    /// The layout for `width` columns.
    pub fn for_width(width: Option<usize>) -> Layout {
        let full = Layout { width, socket: SOCKET, short_socket: false, event: EVENT, channel: CHANNEL };
        match width {
            None => full,
            Some(w) if w >= 130 => full,
            Some(w) if w >= 100 => Layout { socket: 13, event: 22, channel: 18, ..full },
            Some(_) => Layout { socket: SHORT_SOCKET, short_socket: true, event: 16, channel: 12, ..full },
        }
    }

    fn socket_text(&self, socket: &str) -> String {
        if self.short_socket {
            socket.split('.').next().unwrap_or(socket).chars().take(SHORT_SOCKET).collect()
        } else {
            socket.to_owned()
        }
    }

    /// `text` as a column's content: cut with `…` to `width` on a terminal narrower than 160
    /// columns (a wider one has room for a long name to push the payload along).
    fn fitted(&self, text: &str, width: usize) -> String {
        if self.width.is_some_and(|w| w < 160) && text.chars().count() > width {
            let kept: String = text.chars().take(width.saturating_sub(1)).collect();
            format!("{kept}…")
        } else {
            text.to_owned()
        }
    }
}

/// The visible length of `text` (escape codes not counted).
fn visible_len(text: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in text.chars() {
        match (escape, c) {
            (false, '\u{1b}') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// `text` cut to `room` visible characters with `…`, keeping escape codes whole (and closing
/// any colour left open).
fn fit(text: &str, room: usize) -> String {
    if visible_len(text) <= room {
        return text.to_owned();
    }
    let mut out = String::new();
    let (mut n, mut escape, mut coloured) = (0, false, false);
    for c in text.chars() {
        if escape || c == '\u{1b}' {
            escape = c != 'm';
            coloured = true;
            out.push(c);
            continue;
        }
        if n + 1 >= room {
            break;
        }
        out.push(c);
        n += 1;
    }
    out.push('…');
    if coloured {
        out.push_str("\u{1b}[0m");
    }
    out
}

/// `n` and the noun, singular for one.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn pad(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len >= width {
        format!("{text} ")
    } else {
        format!("{text}{} ", " ".repeat(width - len))
    }
}

/// Pads `plain` to `width` and then colours it (padding outside the escape codes).
fn column(plain: &str, width: usize, paint: impl Fn(&str) -> String) -> (String, usize) {
    let padded = pad(plain, width);
    let visible = padded.chars().count();
    let trailing = &padded[plain.len()..];
    (format!("{}{trailing}", paint(plain)), visible)
}

fn cut(payload: &str, room: usize, bytes: usize) -> String {
    let len = payload.chars().count();
    if len <= room {
        return payload.to_owned();
    }
    let note = format!("… ({bytes} bytes)");
    let keep = room.saturating_sub(note.chars().count());
    if keep < 4 {
        // No room for a useful part and the size: the part alone, cut.
        let kept: String = payload.chars().take(room.saturating_sub(1)).collect();
        return format!("{kept}…");
    }
    let kept: String = payload.chars().take(keep).collect();
    format!("{kept}{note}")
}

fn pretty(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned())
}

/// Renders one line.
pub fn render(line: &Line, view: &View, opts: &TextOptions, now: DateTime<Local>) -> String {
    if let Line::Text(text) = line {
        return text.clone();
    }
    let layout = Layout::for_width(opts.width);
    let (mut out, used) = columns(line, view, &layout, opts, now);
    let tail = match line {
        Line::Signature(d) => return signature(&out, d, opts.color, opts.width),
        Line::FrameIn { .. } | Line::FrameOut { .. } | Line::FanOut { .. } | Line::Published { .. } => {
            frame_tail(line, view, &layout, opts, used)
        }
        _ => message_tail(line, opts.color),
    };
    out.push_str(&tail);
    let line = out.trim_end();
    match (opts.width, opts.full) {
        (Some(width), false) => fit(line, width),
        _ => line.to_owned(),
    }
}

/// The columns every line starts with (time, marker, socket, app), and their visible width.
fn columns(line: &Line, view: &View, layout: &Layout, opts: &TextOptions, now: DateTime<Local>) -> (String, usize) {
    let color = opts.color;
    let kind = line.kind();
    let mut out = String::new();
    let mut used = 0;
    let mut push = |(text, width): (String, usize)| {
        out.push_str(&text);
        used += width;
    };
    push(column(&now.format("%H:%M:%S%.3f").to_string(), 12, |s| style::dim(s, color)));
    push(column(kind.marker(), 3, |s| style::kind(kind, s, color)));
    let socket = layout.socket_text(view.socket.as_deref().unwrap_or(""));
    push(column(&socket, layout.socket, |s| s.to_owned()));
    if opts.show_app {
        push(column(&view.app.as_deref().map(|a| format!("app {a}")).unwrap_or_default(), APP, |s| {
            style::dim(s, color)
        }));
    }
    (out, used)
}

/// The rest of a line that is not a frame: what happened, in words.
fn message_tail(line: &Line, color: bool) -> String {
    let kind = line.kind();
    match line {
        Line::Text(_)
        | Line::Signature(_)
        | Line::FrameIn { .. }
        | Line::FrameOut { .. }
        | Line::FanOut { .. }
        | Line::Published { .. } => unreachable!("rendered by render"),
        Line::Connected { remote, .. } => {
            let from = remote.map(|r| format!("from {r}")).unwrap_or_default();
            format!("{} {from}", style::kind(kind, "connected", color))
        }
        Line::Disconnected { code, reason, .. } => {
            let code = code.map(|c| format!("{c} ")).unwrap_or_default();
            format!("{} {code}{reason}", style::kind(kind, "disconnected", color))
        }
        Line::Refused { key, code, reason, remote } => {
            let from = remote.map(|r| format!(" from {r}")).unwrap_or_default();
            // A path that is not …/app/{key} is refused as a path, not as an app key.
            let what = if *code == crate::protocol::codes::PATH_NOT_FOUND {
                format!("refused {key}")
            } else {
                format!("refused key {key:?}")
            };
            style::error(&format!("{what}{from}: {code} {reason}"), color)
        }
        Line::Api { method, path, status, elapsed, reason } => {
            let status_text = status.to_string();
            let status =
                if *status >= 400 { style::error(&status_text, color) } else { style::kind(kind, &status_text, color) };
            let why = reason.as_deref().map(|r| format!(": {}", style::error(r.trim(), color))).unwrap_or_default();
            format!("{method} {path} → {status} {:.1}ms{why}", elapsed.as_secs_f64() * 1000.0)
        }
        Line::Webhook { label, url, result, ok, attempt, elapsed, next, .. } => {
            let result = if *ok { style::kind(kind, result, color) } else { style::error(result, color) };
            let ms = elapsed.as_secs_f64() * 1000.0;
            format!("webhook {label} → {url} {result} in {ms:.0}ms (attempt {attempt}{next})")
        }
        Line::ClientError { message, .. } => style::error(message, color),
        Line::Recorder(r) if r.is_error() => style::error(&r.message(), color),
        Line::Recorder(r) => style::kind(kind, &r.message(), color),
        Line::Error(message) | Line::Cluster { message, problem: true } => style::error(message, color),
        Line::Cluster { message, problem: false } => style::kind(kind, message, color),
    }
}

/// The rest of a frame line: event and channel columns, the payload, and what became of it.
/// `used`: the visible width of the columns before.
fn frame_tail(line: &Line, view: &View, layout: &Layout, opts: &TextOptions, used: usize) -> String {
    let color = opts.color;
    let event = layout.fitted(view.event.as_deref().unwrap_or("?"), layout.event);
    let (e, w) = column(&event, layout.event, |s| style::event(s, color));
    let channel = layout.fitted(view.channel.as_deref().unwrap_or(""), layout.channel);
    let (c, cw) = column(&channel, layout.channel, |s| style::channel(s, color));
    let suffix = match line {
        Line::Published { delivered, source, hint, .. } => match hint {
            Some(hint) => format!(" → {} ({}): {hint}", count(*delivered, "socket"), source.label()),
            None => format!(" → {} ({})", count(*delivered, "socket"), source.label()),
        },
        Line::FanOut { sockets, .. } => format!(" (same frame to {})", count(*sockets, "socket")),
        _ => String::new(),
    };
    let body = payload_text(view, opts, used + w + cw + suffix.chars().count());
    let internal = view.event.as_deref().is_some_and(|e| e.starts_with("pusher_internal:"));
    let body = if internal { style::dim(&body, color) } else { body };
    format!("{e}{c}{body}{}", style::dim(&suffix, color))
}

/// The payload: pretty-printed with `--full`, else on one line, cut to the room `used` columns
/// leave on a terminal.
fn payload_text(view: &View, opts: &TextOptions, used: usize) -> String {
    let one_line;
    let mut payload = view.payload.as_deref().unwrap_or("");
    if !opts.full && payload.contains(['\n', '\r']) {
        // A re-indented fixture's data: one line (in JSON, line breaks are only layout).
        one_line = payload.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        payload = &one_line;
    }
    if opts.full && view.payload_is_json {
        let text = pretty(payload);
        if text.contains('\n') {
            format!("\n    {}", text.replace('\n', "\n    "))
        } else {
            text
        }
    } else if let (Some(width), false) = (opts.width, opts.full) {
        cut(payload, width.saturating_sub(used), view.bytes)
    } else {
        payload.to_owned()
    }
}

/// The diagnosis: a headline, then indented lines; on a terminal the headline is cut to the
/// width and a long value continues on further indented lines rather than wrapping.
fn signature(prefix: &str, d: &crate::auth::diagnose::Diagnosis, color: bool, width: Option<usize>) -> String {
    let block = signature_block(prefix, d, color);
    let Some(width) = width else { return block };
    let mut lines = block.lines();
    let mut out = fit(lines.next().unwrap_or_default(), width);
    for line in lines {
        out.push('\n');
        out.push_str(&wrap(line, width, INDENT * 2));
    }
    out
}

/// `line` broken into pieces of at most `width` visible characters, each piece after the first
/// on its own line indented by `indent` (escape codes are copied, never counted or split).
fn wrap(line: &str, width: usize, indent: usize) -> String {
    let room = width.saturating_sub(indent).max(20);
    let mut out = String::new();
    let (mut n, mut limit, mut escape) = (0, width, false);
    for c in line.chars() {
        if escape || c == '\u{1b}' {
            escape = c != 'm';
            out.push(c);
            continue;
        }
        if n == limit {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            (n, limit) = (0, room);
        }
        out.push(c);
        n += 1;
    }
    out
}

fn signature_block(prefix: &str, d: &crate::auth::diagnose::Diagnosis, color: bool) -> String {
    let what = match &d.subject {
        Subject::Request { method, path } => format!("HTTP API signature refused for {method} {path}"),
        Subject::Channel { channel, .. } => format!("subscription auth refused for {channel}"),
        Subject::Signin { .. } => "signin auth refused".to_owned(),
    };
    let mut out = format!("{prefix}{}", style::error(&what, color));
    out += &format!("\n    {} {}", style::bold("likely cause:", color), d.cause);
    out += &format!("\n    should sign:  {:?}", d.expected_string);
    out += &format!("\n    received:     {}", if d.received.is_empty() { "(nothing)" } else { &d.received });
    if let Some(expected) = &d.expected {
        out += &format!("\n    expected:     {expected}");
    }
    if let Some(md5) = &d.body_md5 {
        out += &format!("\n    body md5:     {md5}");
    }
    if let Some(skew) = d.skew_secs {
        out += &format!("\n    clock skew:   {skew:+}s (signer minus server)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::AppId;
    use crate::auth::diagnose::{Cause, Diagnosis};
    use crate::printer::line::RecorderLine;
    use crate::protocol::{Frame, SocketId};
    use chrono::TimeZone;
    use std::time::Duration;

    fn at() -> DateTime<Local> {
        Local.with_ymd_and_hms(2026, 11, 22, 12, 34, 56).unwrap() + chrono::Duration::milliseconds(789)
    }

    fn opts() -> TextOptions {
        TextOptions { color: false, full: false, width: None, show_app: false }
    }

    fn show(line: &Line, opts: &TextOptions) -> String {
        render(line, &line.view(), opts, at())
    }

    fn frame_out(text: &str) -> Line {
        Line::FrameOut { socket: SocketId::new(123, 456), app: AppId::new("1"), frame: Frame::from(text.to_owned()) }
    }

    #[test]
    #[allow(clippy::too_many_lines)] // one table of every kind of line and its rendering
    fn golden_lines_without_colour() {
        let cases = [
            (
                Line::Connected { socket: SocketId::new(123, 456), app: AppId::new("1"), remote: Some("127.0.0.1:5000".parse().unwrap()) },
                "12:34:56.789 +ws 123.456           connected from 127.0.0.1:5000",
            ),
            (
                Line::Disconnected { socket: SocketId::new(123, 456), app: AppId::new("1"), code: Some(4009), reason: "terminated".into() },
                "12:34:56.789 -ws 123.456           disconnected 4009 terminated",
            ),
            (
                Line::Refused { key: "nope".into(), code: 4001, reason: "Application does not exist".into(), remote: None },
                "12:34:56.789 xws                   refused key \"nope\": 4001 Application does not exist",
            ),
            (
                Line::Api { method: "POST".into(), path: "/apps/1/events".into(), status: 200, elapsed: Duration::from_micros(1500), reason: None },
                "12:34:56.789 api                   POST /apps/1/events → 200 1.5ms",
            ),
            (
                frame_out(r#"{"event":"my-event","channel":"my-channel","data":"{\"a\":1}"}"#),
                "12:34:56.789 s→c 123.456           my-event                         my-channel               {\"a\":1}",
            ),
            (
                Line::FrameIn {
                    socket: SocketId::new(123, 456),
                    app: AppId::new("1"),
                    frame: Frame::from(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"c"}}"#.to_owned()),
                },
                "12:34:56.789 c→s 123.456           pusher:subscribe                 c                        {\"auth\":\"\",\"channel\":\"c\"}",
            ),
            (
                Line::Published {
                    app: AppId::new("1"),
                    channel: crate::protocol::ChannelName::parse("news", 164).unwrap(),
                    event: "e".into(),
                    data: "hi".into(),
                    source: crate::event::Source::Api,
                    delivered: 3,
                    hint: None,
                },
                "12:34:56.789 pub                   e                                news                     hi → 3 sockets (api)",
            ),
            (
                Line::ClientError { socket: SocketId::new(1, 2), app: AppId::new("1"), message: "Existing subscription to channel c".into() },
                "12:34:56.789 err 1.2               Existing subscription to channel c",
            ),
            (Line::Error("boom".into()), "12:34:56.789 err                   boom"),
            (
                Line::Webhook {
                    app: AppId::new("1"),
                    channel: Some("c".into()),
                    label: "channel_occupied c".into(),
                    url: "http://127.0.0.1:9/hook".into(),
                    result: "503".into(),
                    ok: false,
                    attempt: 2,
                    elapsed: Duration::from_millis(12),
                    next: ", retry in 2s".into(),
                },
                "12:34:56.789 whk                   webhook channel_occupied c → http://127.0.0.1:9/hook 503 in 12ms (attempt 2, retry in 2s)",
            ),
            (
                Line::Recorder(RecorderLine::Recording { name: "demo".into(), db: "pusher-local.db".into() }),
                "12:34:56.789 rec                   recording \"demo\" into pusher-local.db (every published event)",
            ),
            (
                Line::Recorder(RecorderLine::Saved { name: "demo".into(), events: 12 }),
                "12:34:56.789 rec                   recording \"demo\" saved: 12 events (pusher-local recordings export demo -o fixtures/demo.json)",
            ),
            (
                Line::Recorder(RecorderLine::FixtureLoaded { name: "stock_ticker".into(), file: "fixtures/stock_ticker.json".into(), events: 20 }),
                "12:34:56.789 rec                   fixture stock_ticker loaded from fixtures/stock_ticker.json: 20 events",
            ),
            (
                Line::Recorder(RecorderLine::FixtureInvalid { name: "x".into(), error: "fixtures/x.json:3:7: expected `,`".into(), kept: true }),
                "12:34:56.789 rec                   fixture x refused (the previous version stays loaded): fixtures/x.json:3:7: expected `,`",
            ),
            (
                Line::Recorder(RecorderLine::FixtureRemoved { name: "x".into() }),
                "12:34:56.789 rec                   fixture x removed",
            ),
            (
                Line::Recorder(RecorderLine::ReplayStarted { id: 1, fixture: "stock_ticker".into(), events: 20, speed: "2x".into(), looped: true }),
                "12:34:56.789 rec                   replay #1 of stock_ticker started: 20 events at 2x, looping",
            ),
            (
                Line::Recorder(RecorderLine::ReplayEnded { id: 1, fixture: "stock_ticker".into(), sent: 7, stopped: true, error: None }),
                "12:34:56.789 rec                   replay #1 of stock_ticker stopped after 7 events",
            ),
            (
                Line::Recorder(RecorderLine::ReplayEnded { id: 2, fixture: "f".into(), sent: 3, stopped: false, error: None }),
                "12:34:56.789 rec                   replay #2 of f finished: 3 events sent",
            ),
            (
                Line::Recorder(RecorderLine::Failed { message: "recording failed: database r.db".into() }),
                "12:34:56.789 rec                   recording failed: database r.db",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(show(&line, &opts()), expected);
        }
    }

    /// Lines of every shape, long and short, for the width goldens.
    fn sample_lines() -> Vec<Line> {
        let socket = SocketId::new(595406, 666970);
        vec![
            Line::Connected { socket, app: AppId::new("1"), remote: Some("127.0.0.1:52010".parse().unwrap()) },
            Line::FrameIn {
                socket,
                app: AppId::new("1"),
                frame: Frame::from(r#"{"event":"pusher:subscribe","data":{"auth":"app-key:0123456789abcdef0123456789abcdef","channel":"private-orders-for-customer-42"}}"#.to_owned()),
            },
            Line::FrameOut {
                socket,
                app: AppId::new("1"),
                frame: Frame::from(r#"{"event":"App\\Events\\OrderShipped","channel":"private-orders-for-customer-42","data":"{\"id\":42,\"items\":[1,2,3],\"note\":\"left at the door\"}"}"#.to_owned()),
            },
            Line::Published {
                app: AppId::new("1"),
                channel: crate::protocol::ChannelName::parse("news", 164).unwrap(),
                event: "e".into(),
                data: "{}".into(),
                source: crate::event::Source::Api,
                delivered: 1,
                hint: None,
            },
            Line::Api {
                method: "POST".into(),
                path: "/apps/1/events".into(),
                status: 413,
                elapsed: Duration::from_micros(800),
                reason: Some("data is 11000 bytes; the limit is 10240".into()),
            },
            Line::Webhook {
                app: AppId::new("1"),
                channel: Some("presence-room".into()),
                label: "member_added presence-room user 42".into(),
                url: "https://myapp.test/broadcasting/pusher/webhook".into(),
                result: "200".into(),
                ok: true,
                attempt: 1,
                elapsed: Duration::from_millis(12),
                next: String::new(),
            },
        ]
    }

    #[test]
    fn at_80_and_200_columns_no_line_is_wider_than_the_terminal() {
        for width in [80, 200] {
            let opts = TextOptions { width: Some(width), ..opts() };
            let shown: Vec<String> = sample_lines().iter().map(|l| show(l, &opts)).collect();
            for line in &shown {
                assert!(line.chars().count() <= width, "{width}: {line:?} is {} wide", line.chars().count());
            }
            let expected: &[&str] = if width == 80 {
                &[
                    "12:34:56.789 +ws 595406 connected from 127.0.0.1:52010",
                    "12:34:56.789 c→s 595406 pusher:subscribe private-ord… {\"auth\":\"app-… (130 bytes)",
                    "12:34:56.789 s→c 595406 App\\Events\\Orde… private-ord… {\"id\":42,\"ite… (149 bytes)",
                    "12:34:56.789 pub        e                news         {} → 1 socket (api)",
                    "12:34:56.789 api        POST /apps/1/events → 413 0.8ms: data is 11000 bytes; t…",
                    "12:34:56.789 whk        webhook member_added presence-room user 42 → https://my…",
                ]
            } else {
                &[
                    "12:34:56.789 +ws 595406.666970     connected from 127.0.0.1:52010",
                    "12:34:56.789 c→s 595406.666970     pusher:subscribe                 private-orders-for-customer-42 {\"auth\":\"app-key:0123456789abcdef0123456789abcdef\",\"channel\":\"private-orders-for-customer-42\"}",
                    "12:34:56.789 s→c 595406.666970     App\\Events\\OrderShipped          private-orders-for-customer-42 {\"id\":42,\"items\":[1,2,3],\"note\":\"left at the door\"}",
                    "12:34:56.789 pub                   e                                news                     {} → 1 socket (api)",
                    "12:34:56.789 api                   POST /apps/1/events → 413 0.8ms: data is 11000 bytes; the limit is 10240",
                    "12:34:56.789 whk                   webhook member_added presence-room user 42 → https://myapp.test/broadcasting/pusher/webhook 200 in 12ms (attempt 1)",
                ]
            };
            assert_eq!(shown, expected, "{width} columns");
        }
    }

    #[test]
    fn a_reindented_payload_stays_on_one_line_and_an_empty_one_gets_no_size_note() {
        let line = frame_out("{\"event\":\"e\",\"channel\":\"c\",\"data\":\"{\\n  \\\"a\\\": 1\\n}\"}");
        let text = show(&line, &TextOptions { width: Some(80), ..opts() });
        assert!(!text.contains('\n') && text.ends_with("{ \"a\": 1 }"), "{text:?}");
        let empty = frame_out(r#"{"event":"pusher:pong","data":{}}"#);
        let text = show(&empty, &TextOptions { width: Some(80), ..opts() });
        assert!(text.ends_with("{}") && !text.contains("bytes"), "{text:?}");
    }

    #[test]
    fn app_column_when_several_apps() {
        let line = Line::Connected { socket: SocketId::new(1, 2), app: AppId::new("7"), remote: None };
        let text = show(&line, &TextOptions { show_app: true, ..opts() });
        assert_eq!(text, "12:34:56.789 +ws 1.2               app 7    connected");
    }

    #[test]
    fn colour_only_when_asked() {
        style::enable(true);
        let line = frame_out(r#"{"event":"client-x","channel":"private-a","data":"{}"}"#);
        let coloured = show(&line, &TextOptions { color: true, ..opts() });
        assert!(coloured.contains('\u{1b}'));
        assert!(!show(&line, &opts()).contains('\u{1b}'));
    }

    #[test]
    fn long_payloads_are_cut_to_the_width_with_their_size() {
        let data = format!(r#"{{"event":"e","channel":"c","data":"{}"}}"#, "x".repeat(500));
        let line = frame_out(&data);
        let text = show(&line, &TextOptions { width: Some(130), ..opts() });
        assert_eq!(text.chars().count(), 130, "{text}");
        assert!(text.ends_with(&format!("… ({} bytes)", data.len())), "{text}");
        assert!(show(&line, &TextOptions { width: Some(130), full: true, ..opts() }).contains(&"x".repeat(500)));
    }

    #[test]
    fn full_pretty_prints_json_payloads() {
        let line = frame_out(r#"{"event":"e","channel":"c","data":"{\"a\":{\"b\":1}}"}"#);
        let text = show(&line, &TextOptions { full: true, ..opts() });
        assert!(text.ends_with("\n    {\n      \"a\": {\n        \"b\": 1\n      }\n    }"), "{text}");
    }

    #[test]
    fn at_80_columns_a_diagnosis_wraps_on_indented_lines_and_loses_nothing() {
        style::enable(true);
        let d = Diagnosis {
            subject: Subject::Request { method: "POST".into(), path: "/apps/1/events".into() },
            app: Some("1".into()),
            expected_string: format!("POST\n/apps/1/events\nauth_key=app-key&{}", "x".repeat(120)),
            received: "7".repeat(64),
            expected: Some("e".repeat(64)),
            body_md5: None,
            skew_secs: Some(0),
            cause: Cause::WrongSecret,
        };
        for color in [false, true] {
            let text = show(&Line::Signature(Box::new(d.clone())), &TextOptions { width: Some(80), color, ..opts() });
            for line in text.lines() {
                assert!(visible_len(line) <= 80, "{line:?}");
            }
            let plain: String = text.lines().map(str::trim_start).collect();
            assert!(plain.contains(&"x".repeat(120)), "nothing is cut: {text}");
            assert!(plain.contains("(path, query or a proxy)"), "the cause whole: {text}");
        }
    }

    #[test]
    fn signature_diagnosis_shows_strings_signatures_and_cause() {
        let d = Diagnosis {
            subject: Subject::Channel { channel: "private-a".into(), socket_id: "1.2".into() },
            app: Some("1".into()),
            expected_string: "1.2:private-a".into(),
            received: "abc".into(),
            expected: Some("def".into()),
            body_md5: None,
            skew_secs: None,
            cause: Cause::WrongSecret,
        };
        let text = show(&Line::Signature(Box::new(d)), &opts());
        assert!(text.contains("subscription auth refused for private-a"), "{text}");
        assert!(text.contains("should sign:  \"1.2:private-a\""));
        assert!(text.contains("received:     abc"));
        assert!(text.contains("expected:     def"));
        assert!(text.contains("likely cause: wrong secret"));
    }
}
