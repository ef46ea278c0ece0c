//! `Printer`: the user-facing traffic log (diagnostics go to stderr via `tracing`).
//!
//! Lines are typed ([`Line`]), filtered ([`Filter`]) and rendered ([`text`] or [`json`]) by a
//! dedicated thread, so a slow terminal never slows delivery: the queue is bounded, a line that
//! does not fit is dropped and counted, and a "N lines not shown" notice takes its place.
//! The same lines can go to several sinks (the terminal, `--log-file`).
//!
//! - [`line`](mod@line): `Line`, `Kind`, `View` (the fields a line shows).
//! - [`filter`]: `--filter KEY=GLOB`.
//! - [`text`], [`json`]: the two renderers.
//! - [`style`]: colours per kind of line, event family and channel kind; `--color`.
//! - [`tap`]: the debug console's stream: every line as a JSON record, whatever the terminal
//!   shows, to each console page through its own bounded queue.
//!
//! The banner (`crate::banner`) and what the tool commands print (`commands::terminal`) sit
//! above: they read the config and the recorder, which the printer does not.

pub mod filter;
pub mod json;
pub mod line;
pub mod style;
pub mod tap;
pub mod text;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use chrono::Local;

use crate::apps::AppId;
use crate::protocol::{Frame, SocketId};

pub use filter::Filter;
pub use line::{Kind, Line, RecorderLine, Verbosity, View};
pub use text::TextOptions;

/// Lines the printer thread may have waiting before new ones are dropped.
pub const QUEUE_LINES: usize = 16 * 1024;

/// Output format of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned, optionally coloured columns.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// One destination for lines.
pub struct Sink {
    /// Where to write.
    pub out: Box<dyn Write + Send>,
    /// Text or JSON.
    pub format: Format,
    /// Text rendering options.
    pub text: TextOptions,
    /// Which lines it wants.
    pub verbosity: Verbosity,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("format", &self.format).field("verbosity", &self.verbosity).finish_non_exhaustive()
    }
}

impl Sink {
    fn write(&mut self, line: &Line, view: &View) -> std::io::Result<()> {
        if line.verbosity() > self.verbosity {
            return Ok(());
        }
        let now = Local::now();
        let text = match self.format {
            Format::Text => text::render(line, view, &self.text, now),
            Format::Json => json::render(line, view, now),
        };
        // Banner text arrives pre-coloured; a sink without colour gets it plain.
        let text = if self.text.color || !matches!(line, Line::Text(_)) { text } else { style::strip(&text) };
        writeln!(self.out, "{text}")
    }
}

/// What the printer thread receives.
#[derive(Debug)]
enum Message {
    Line(Line),
    /// Answer once everything before it is written.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Cheap-to-clone handle; lines are written in order by one thread.
#[derive(Debug, Clone)]
pub struct Printer {
    tx: Option<SyncSender<Message>>,
    verbosity: Verbosity,
    dropped: Arc<AtomicU64>,
    /// Console pages listening: while there is one, every line is wanted.
    taps: tap::Taps,
}

impl Printer {
    /// A printer writing to `sinks` on its own thread; lines that `filter` rejects are skipped.
    pub fn spawn(sinks: Vec<Sink>, filter: Filter, color: bool) -> Self {
        style::enable(color);
        let verbosity = sinks.iter().map(|s| s.verbosity).max().unwrap_or(Verbosity::Quiet);
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let taps = tap::Taps::default();
        let tapped = taps.clone();
        // The thread ends when every Printer handle is dropped.
        if let Err(e) = std::thread::Builder::new()
            .name("printer".into())
            .spawn(move || write_lines(rx, sinks, &filter, &counter, &tapped))
        {
            eprintln!("pusher-local: cannot start the printer thread: {e}");
        }
        Self { tx: Some(tx), verbosity, dropped, taps }
    }

    /// A printer that prints nothing (tests, benchmarks).
    pub fn silent() -> Self {
        Self { tx: None, verbosity: Verbosity::Quiet, dropped: Arc::new(AtomicU64::new(0)), taps: tap::Taps::default() }
    }

    /// Whether `-v` frame lines are wanted (callers skip building them otherwise): with `-v`,
    /// or while a console page listens.
    pub fn verbose(&self) -> bool {
        self.tx.is_some() && (self.verbosity >= Verbosity::Verbose || self.taps.any())
    }

    /// A console page's stream of every line as a JSON record (`None`: this printer prints
    /// nothing, so there is nothing to stream).
    pub fn tap(&self) -> Option<tap::Tap> {
        self.tx.as_ref().map(|_| self.taps.add())
    }

    /// `-v` lines for frames written to one socket (nothing unless verbose).
    pub fn frames_out(&self, socket: crate::protocol::SocketId, app: &crate::apps::AppId, frames: &[Frame]) {
        if self.verbose() {
            for frame in frames {
                self.line(Line::FrameOut { socket, app: app.clone(), frame: frame.clone() });
            }
        }
    }

    /// Waits (up to a second) until every line queued so far is written; used at exit.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(1));
        }
    }

    /// Queues a line if some sink wants it; never blocks.
    pub fn line(&self, line: Line) {
        let Some(tx) = &self.tx else { return };
        if line.verbosity() > self.verbosity && !self.taps.any() {
            return;
        }
        match tx.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Frames written to many sockets (one event fanned out) arrive as many identical lines; they
/// are grouped by frame while a burst lasts and printed once each with the socket count, which
/// keeps `-v` cheap and readable. A `socket=` filter keeps them apart.
#[derive(Default)]
struct FanOutGroups {
    /// App, frame, the first socket, how many sockets.
    groups: Vec<(AppId, Frame, SocketId, usize)>,
}

impl FanOutGroups {
    /// Adds a frame line; `None` when grouped, else the line back.
    fn add(&mut self, line: Line) -> Option<Line> {
        let Line::FrameOut { app, frame, socket } = line else { return Some(line) };
        let same = |(a, f, _, _): &(AppId, Frame, SocketId, usize)| {
            *a == app && f.as_str().as_ptr() == frame.as_str().as_ptr()
        };
        if let Some(i) = self.groups.iter().position(same) {
            self.groups[i].3 += 1;
        } else if self.groups.len() >= 64 {
            return Some(Line::FrameOut { app, frame, socket });
        } else {
            self.groups.push((app, frame, socket, 1));
        }
        None
    }

    fn take(&mut self) -> impl Iterator<Item = Line> + '_ {
        self.groups.drain(..).map(|(app, frame, socket, sockets)| match sockets {
            1 => Line::FrameOut { app, frame, socket },
            _ => Line::FanOut { app, frame, sockets },
        })
    }
}

fn write_lines(rx: Receiver<Message>, mut sinks: Vec<Sink>, filter: &Filter, dropped: &AtomicU64, taps: &tap::Taps) {
    let write = |line: Line, sinks: &mut Vec<Sink>| {
        let view = line.view();
        // Console pages get every line, whatever the terminal's filter and verbosity.
        taps.send(&line, &view);
        if !filter.matches(line.kind(), &view) {
            return;
        }
        // A sink that fails (stdout closed, disk full) is dropped; the server keeps serving.
        sinks.retain_mut(|sink| sink.write(&line, &view).is_ok());
    };
    let coalesce = !filter.mentions_socket();
    let mut groups = FanOutGroups::default();
    let handle = |message: Message, sinks: &mut Vec<Sink>, groups: &mut FanOutGroups| {
        let line = match message {
            Message::Line(line) if coalesce => match groups.add(line) {
                None => return,
                Some(line) => line,
            },
            Message::Line(line) => line,
            Message::Flush(done) => {
                groups.take().for_each(|l| write(l, sinks));
                for sink in sinks.iter_mut() {
                    let _ = sink.out.flush();
                }
                let _ = done.send(());
                return;
            }
        };
        // Keep order: grouped frames go out before the next other line.
        groups.take().for_each(|l| write(l, sinks));
        write(line, sinks);
    };
    while let Ok(message) = rx.recv() {
        let missed = dropped.swap(0, Ordering::Relaxed);
        if missed > 0 {
            write(Line::Error(format!("… {missed} lines not shown (output too slow)")), &mut sinks);
        }
        handle(message, &mut sinks, &mut groups);
        // Flush only when nothing else is waiting, so bursts are written in one go.
        while let Ok(message) = rx.try_recv() {
            handle(message, &mut sinks, &mut groups);
        }
        groups.take().for_each(|l| write(l, &mut sinks));
        for sink in &mut sinks {
            let _ = sink.out.flush();
        }
        if sinks.is_empty() && !taps.any() {
            return;
        }
        // Let lines gather before the next drain. While this thread sleeps instead of waiting
        // on the queue, queueing a line wakes nobody, so a busy server pays no thread wake-up
        // per line and the terminal gets one write per pause (perf: a thread wake-up and a
        // write per HTTP API line took ~15% of the CPU at 36k calls/s). An idle printer still
        // blocks in `recv`, and the first line after a quiet spell is written at once.
        std::thread::sleep(GATHER);
    }
}

/// How long the printer lets lines gather between writes when they keep coming.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn sink(out: Shared, verbosity: Verbosity, format: Format) -> Sink {
        Sink {
            out: Box::new(out),
            format,
            text: TextOptions { color: false, full: false, width: None, show_app: false },
            verbosity,
        }
    }

    fn wait_for(out: &Shared, lines: usize) -> String {
        for _ in 0..500 {
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            if text.lines().count() >= lines {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!("printer wrote too little");
    }

    #[test]
    fn sinks_get_lines_at_their_verbosity_and_format() {
        let (terminal, file) = (Shared::default(), Shared::default());
        let printer = Printer::spawn(
            vec![
                sink(terminal.clone(), Verbosity::Quiet, Format::Text),
                sink(file.clone(), Verbosity::Normal, Format::Json),
            ],
            Filter::default(),
            false,
        );
        printer.line(Line::Api {
            method: "GET".into(),
            path: "/apps/1/channels".into(),
            status: 200,
            elapsed: Default::default(),
            reason: None,
        });
        printer.line(Line::Error("boom".into()));
        let json = wait_for(&file, 2);
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["kind"], "api");
        let text = wait_for(&terminal, 1);
        assert!(text.contains("boom") && !text.contains("/apps/1/channels"), "quiet terminal: {text}");
    }

    #[test]
    fn one_frame_to_many_sockets_is_one_line_with_the_count() {
        use crate::protocol::SocketId;
        let app = crate::apps::AppId::new("1");
        let shared = Frame::from(r#"{"event":"e","channel":"c","data":"1"}"#.to_owned());
        let alone = Frame::from(r#"{"event":"e","channel":"c","data":"1"}"#.to_owned());
        let mut groups = FanOutGroups::default();
        for i in 0..3 {
            assert!(groups
                .add(Line::FrameOut { socket: SocketId::new(1, i), app: app.clone(), frame: shared.clone() })
                .is_none());
        }
        // Equal text but another encoding: another event, another group.
        assert!(groups.add(Line::FrameOut { socket: SocketId::new(2, 0), app: app.clone(), frame: alone }).is_none());
        assert!(groups.add(Line::Error("x".into())).is_some(), "other lines are not grouped");
        let lines: Vec<Line> = groups.take().collect();
        assert!(matches!(&lines[0], Line::FanOut { sockets: 3, .. }), "{lines:?}");
        assert!(matches!(&lines[1], Line::FrameOut { socket, .. } if *socket == SocketId::new(2, 0)), "{lines:?}");
        let text = text::render(
            &lines[0],
            &lines[0].view(),
            &TextOptions { color: false, full: false, width: None, show_app: false },
            Local::now(),
        );
        assert!(text.contains("×3") && text.ends_with("1 (same frame to 3 sockets)"), "{text}");
    }

    #[test]
    fn filters_apply_before_rendering() {
        let out = Shared::default();
        let printer = Printer::spawn(
            vec![sink(out.clone(), Verbosity::Verbose, Format::Text)],
            Filter::parse(&["socket=1.1"]).unwrap(),
            false,
        );
        use crate::protocol::SocketId;
        let app = crate::apps::AppId::new("1");
        printer.line(Line::Connected { socket: SocketId::new(2, 2), app: app.clone(), remote: None });
        printer.line(Line::Connected { socket: SocketId::new(1, 1), app, remote: None });
        let text = wait_for(&out, 1);
        assert!(text.contains(" 1.1 ") && !text.contains(" 2.2 "), "{text}");
    }
}
