//! `Printer`: the user-facing traffic log on stdout (diagnostics go to stderr via `tracing`).
//!
//! Lines are typed ([`Line`]), rendered by one function ([`render`]) and written by a dedicated
//! thread, so a slow terminal never slows delivery: the queue is bounded, and when it is full the
//! line is dropped and counted, and a "N lines not shown" notice takes its place.
//!
//! - [`banner`]: the start-up banner.
//! - [`style`]: colours per kind of line and per channel kind.

pub mod banner;
pub mod style;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::apps::AppId;
use crate::protocol::{ChannelName, SocketId};
use crate::state::Source;

/// Lines the printer thread may have waiting before new ones are dropped.
pub const QUEUE_LINES: usize = 8192;

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only (`-q`).
    Quiet,
    /// Banner, errors, one line per connect/disconnect and per API call.
    Normal,
    /// Every frame in and out (`-v`).
    Verbose,
}

/// One thing to tell the user.
#[derive(Debug, Clone)]
pub enum Line {
    /// Free text printed as is (the banner).
    Text(String),
    /// A socket connected.
    Connected {
        /// Its id.
        socket: SocketId,
        /// Its app.
        app: AppId,
        /// Peer address.
        remote: Option<SocketAddr>,
    },
    /// A connection was refused at handshake.
    Refused {
        /// The key it asked for.
        key: String,
        /// Close code.
        code: u16,
        /// Why.
        reason: String,
        /// Peer address.
        remote: Option<SocketAddr>,
    },
    /// A socket went away.
    Disconnected {
        /// Its id.
        socket: SocketId,
        /// Close code, when known.
        code: Option<u16>,
        /// Close reason.
        reason: String,
    },
    /// A frame from a client (verbose).
    FrameIn {
        /// The socket.
        socket: SocketId,
        /// The text.
        text: String,
    },
    /// A frame to a client (verbose).
    FrameOut {
        /// The socket.
        socket: SocketId,
        /// The text.
        text: String,
    },
    /// An event went through the publish path (verbose).
    Published {
        /// The app.
        app: AppId,
        /// The channel.
        channel: ChannelName,
        /// The event name.
        event: Arc<str>,
        /// The data.
        data: Arc<str>,
        /// Its origin.
        source: Source,
        /// Deliveries on this node.
        delivered: usize,
    },
    /// An HTTP API call.
    Api {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Status code.
        status: u16,
        /// Time taken.
        elapsed: Duration,
    },
    /// A client did something wrong (answered with `pusher:error`).
    ClientError {
        /// The socket.
        socket: SocketId,
        /// The message sent back.
        message: String,
    },
    /// A server-side problem.
    Error(String),
}

impl Line {
    fn verbosity(&self) -> Verbosity {
        match self {
            Line::Error(_) | Line::Refused { .. } => Verbosity::Quiet,
            Line::Text(_)
            | Line::Connected { .. }
            | Line::Disconnected { .. }
            | Line::Api { .. }
            | Line::ClientError { .. } => Verbosity::Normal,
            Line::FrameIn { .. } | Line::FrameOut { .. } | Line::Published { .. } => Verbosity::Verbose,
        }
    }
}

/// Cheap-to-clone handle; lines are written in order by one thread.
#[derive(Debug, Clone)]
pub struct Printer {
    tx: Option<SyncSender<Line>>,
    verbosity: Verbosity,
    dropped: Arc<AtomicU64>,
}

impl Printer {
    /// A printer writing to `out` on its own thread.
    pub fn spawn(out: Box<dyn Write + Send>, verbosity: Verbosity, color: bool) -> Self {
        style::enable(color);
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        // The thread ends when every Printer handle is dropped.
        std::thread::Builder::new()
            .name("printer".into())
            .spawn(move || write_lines(rx, out, color, &counter))
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("pusher-local: cannot start the printer thread: {e}"));
        Self {
            tx: Some(tx),
            verbosity,
            dropped,
        }
    }

    /// A printer that prints nothing (tests, benchmarks).
    pub fn silent() -> Self {
        Self {
            tx: None,
            verbosity: Verbosity::Quiet,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Whether `-v` frames are wanted (skip building them otherwise).
    pub fn verbose(&self) -> bool {
        self.tx.is_some() && self.verbosity >= Verbosity::Verbose
    }

    /// Queues a line if the verbosity wants it; never blocks.
    pub fn line(&self, line: Line) {
        let Some(tx) = &self.tx else { return };
        if line.verbosity() > self.verbosity {
            return;
        }
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn write_lines(rx: Receiver<Line>, mut out: Box<dyn Write + Send>, color: bool, dropped: &AtomicU64) {
    while let Ok(line) = rx.recv() {
        let mut text = render(&line, color, SystemTime::now());
        let missed = dropped.swap(0, Ordering::Relaxed);
        if missed > 0 {
            text = format!(
                "{}\n{text}",
                style::dim(&format!("… {missed} lines not shown (output too slow)"), color)
            );
        }
        if writeln!(out, "{text}").is_err() {
            return; // stdout closed (e.g. piped into `head`): stop printing, keep serving.
        }
        // Flush only when nothing else is waiting, so bursts are written in one go.
        while let Ok(line) = rx.try_recv() {
            if writeln!(out, "{}", render(&line, color, SystemTime::now())).is_err() {
                return;
            }
        }
        let _ = out.flush();
    }
}

fn clock(now: SystemTime) -> String {
    let ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let (h, m, s, milli) = ((ms / 3_600_000) % 24, (ms / 60_000) % 60, (ms / 1000) % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// Renders one line (time in UTC) with or without colour.
pub fn render(line: &Line, color: bool, now: SystemTime) -> String {
    use style::{dim, paint, Kind};
    let time = dim(&clock(now), color);
    match line {
        Line::Text(text) => text.clone(),
        Line::Connected { socket, app, remote } => {
            let from = remote.map(|r| format!(" from {r}")).unwrap_or_default();
            format!(
                "{time} {} {socket} connected to app {app}{from}",
                paint(Kind::Connect, "+ ws ", color)
            )
        }
        Line::Refused {
            key,
            code,
            reason,
            remote,
        } => {
            let from = remote.map(|r| format!(" from {r}")).unwrap_or_default();
            format!(
                "{time} {} refused key {key:?}{from}: {code} {reason}",
                paint(Kind::Error, "x ws ", color)
            )
        }
        Line::Disconnected { socket, code, reason } => {
            let code = code.map(|c| format!(" {c}")).unwrap_or_default();
            format!(
                "{time} {} {socket} disconnected{code} {reason}",
                paint(Kind::Disconnect, "- ws ", color)
            )
        }
        Line::FrameIn { socket, text } => format!("{time} {} {socket} {text}", paint(Kind::In, "<- ws", color)),
        Line::FrameOut { socket, text } => format!("{time} {} {socket} {text}", paint(Kind::Out, "-> ws", color)),
        Line::Published {
            app,
            channel,
            event,
            data,
            source,
            delivered,
        } => format!(
            "{time} {} {:<6} app {app} {} {} {data} ({delivered} delivered)",
            paint(Kind::Publish, "=> pub", color),
            source.label(),
            style::channel(channel, color),
            paint(Kind::Event, event, color),
        ),
        Line::Api {
            method,
            path,
            status,
            elapsed,
        } => {
            let kind = if *status >= 400 { Kind::Error } else { Kind::Api };
            format!(
                "{time} {} {method} {path} {} {:.1}ms",
                paint(Kind::Api, "<> api", color),
                paint(kind, &status.to_string(), color),
                elapsed.as_secs_f64() * 1000.0
            )
        }
        Line::ClientError { socket, message } => {
            format!(
                "{time} {} {socket} {}",
                paint(Kind::Error, "!! ws ", color),
                paint(Kind::Error, message, color)
            )
        }
        Line::Error(message) => format!(
            "{time} {} {}",
            paint(Kind::Error, "!! err", color),
            paint(Kind::Error, message, color)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(45_296_789) // 12:34:56.789
    }

    #[test]
    fn api_line_without_colour() {
        let line = Line::Api {
            method: "POST".into(),
            path: "/apps/1/events".into(),
            status: 200,
            elapsed: Duration::from_micros(1500),
        };
        assert_eq!(
            render(&line, false, at()),
            "12:34:56.789 <> api POST /apps/1/events 200 1.5ms"
        );
    }

    #[test]
    fn colour_adds_escape_codes_only_when_asked() {
        let line = Line::Error("boom".into());
        style::enable(true);
        assert!(!render(&line, false, at()).contains('\u{1b}'));
        assert!(render(&line, true, at()).contains('\u{1b}'));
    }

    #[test]
    fn lines_filtered_by_verbosity() {
        assert!(
            Line::FrameIn {
                socket: SocketId::new(1, 2),
                text: String::new()
            }
            .verbosity()
                > Verbosity::Normal
        );
        assert_eq!(Line::Error(String::new()).verbosity(), Verbosity::Quiet);
    }
}
