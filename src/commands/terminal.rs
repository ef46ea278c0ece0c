//! What the `recordings`, `replay` and `capture` commands print: the recordings list, one
//! recording's events, the replay progress bar and the capture spinner (indicatif, on stdout,
//! drawn only when stdout is a terminal: indicatif hides them otherwise).

use std::fmt::Write as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::recorder::store::{StoredEvent, Summary};

fn local_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "?".into())
}

/// `12.345s`, `3m05.000s`.
pub fn offset(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}.{:03}s", secs / 60, secs % 60, d.subsec_millis())
    } else {
        format!("{secs}.{:03}s", d.subsec_millis())
    }
}

/// One line per recording.
pub fn recordings(list: &[Summary]) -> String {
    if list.is_empty() {
        return "no recordings yet (start the server with --record NAME)\n".into();
    }
    let width = list.iter().map(|r| r.name.chars().count()).max().unwrap_or(0).max(4);
    let mut out = String::new();
    for r in list {
        let state = if r.ended_at_ms.is_some() { "" } else { "  (not ended cleanly)" };
        let _ = writeln!(
            out,
            "{:<width$}  {}  {:>6} events  {:>10}{state}",
            r.name,
            local_time(r.started_at_ms),
            r.events,
            offset(Duration::from_micros(r.last_offset_us.max(0) as u64)),
        );
    }
    out
}

/// A recording's header and one line per event: offset, source, app, channel, event, data.
pub fn recording(summary: &Summary, events: &[StoredEvent]) -> String {
    let mut out = format!(
        "recording {:?}: started {}, {} events\n",
        summary.name,
        local_time(summary.started_at_ms),
        summary.events
    );
    for e in events {
        let mut who = String::new();
        if let Some(user) = &e.user_id {
            let _ = write!(who, " user {user}");
        }
        if let Some(socket) = &e.socket_id {
            let _ = write!(who, " socket {socket}");
        }
        let _ = writeln!(
            out,
            "{:>10}  {:<6} app {:<4} {:<24} {:<24} {}{who}",
            offset(Duration::from_micros(e.offset_us.max(0) as u64)),
            e.source,
            e.app_id,
            e.channel,
            e.event,
            e.data
        );
    }
    out
}

/// `{rate}` in the templates: events per second, `3.2/s`.
fn rate_key(state: &ProgressState, out: &mut dyn std::fmt::Write) {
    let _ = write!(out, "{:.1}/s", state.per_sec());
}

/// The replay bar's look: `[####>-----] 12/40 events  3.2/s  0:31 left, done at 14:02:11 (pass 2)`.
/// The message is [`replay_message`].
pub fn replay_style() -> ProgressStyle {
    ProgressStyle::with_template("[{bar:30}] {pos}/{len} events  {rate}  {msg}")
        .expect("the replay template is valid")
        .with_key("rate", rate_key)
        .progress_chars("#>-")
}

/// The `replay` progress bar, on stdout (hidden when stdout is not a terminal).
pub fn replay_bar(total: usize) -> ProgressBar {
    ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout()).with_style(replay_style())
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn clock(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..3600 => format!("{}:{:02}", secs / 60, secs % 60),
        _ => format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
    }
}

/// The replay bar's message: time left in this pass, the local time it ends (when it is a
/// time of day), and the pass from the second on: `0:31 left, done at 14:02:11 (pass 2)`.
pub fn replay_message(left: Duration, passes: u64, now: chrono::DateTime<chrono::Local>) -> String {
    let mut out = format!("{} left", clock(left));
    let done = chrono::TimeDelta::from_std(left).ok().and_then(|left| now.checked_add_signed(left));
    if let Some(done) = done.filter(|_| left < Duration::from_secs(24 * 3600)) {
        let _ = write!(out, ", done at {}", done.format("%H:%M:%S"));
    }
    if passes > 0 {
        let _ = write!(out, " (pass {})", passes + 1);
    }
    out
}

/// The capture spinner's look: `⠙ 12 events captured  3.2/s  42s`.
pub fn capture_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {pos} events captured  {rate}  {elapsed}")
        .expect("the capture template is valid")
        .with_key("rate", rate_key)
}

/// The `capture` spinner, on stdout (hidden when stdout is not a terminal), ticking on its own.
/// Print other lines through [`ProgressBar::suspend`], which works hidden too.
pub fn capture_spinner() -> ProgressBar {
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout()).with_style(capture_style());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminal that keeps everything written on it.
    #[derive(Debug, Default, Clone)]
    struct Screen(std::sync::Arc<std::sync::Mutex<String>>);

    impl Screen {
        fn shown(&self) -> String {
            self.0.lock().unwrap().clone()
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            self.0.lock().unwrap().push('\n');
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn on_screen(len: Option<u64>, style: ProgressStyle) -> (ProgressBar, Screen) {
        let screen = Screen::default();
        let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
        (ProgressBar::with_draw_target(len, target).with_style(style), screen)
    }

    #[test]
    fn replay_bar_shows_sent_total_rate_time_left_end_and_pass() {
        let at = chrono::Local::now().with_time(chrono::NaiveTime::from_hms_opt(14, 0, 0).unwrap()).unwrap();
        assert_eq!(replay_message(Duration::from_secs(75), 0, at), "1:15 left, done at 14:01:15");
        assert_eq!(replay_message(Duration::from_secs(5), 1, at), "0:05 left, done at 14:00:05 (pass 2)");
        assert_eq!(replay_message(Duration::from_secs(3725), 0, at), "1:02:05 left, done at 15:02:05");
        assert_eq!(replay_message(Duration::MAX, 0, at), format!("{} left", clock(Duration::MAX)), "no end time");

        let (bar, screen) = on_screen(Some(4), replay_style());
        bar.set_position(2);
        bar.set_message(replay_message(Duration::from_secs(5), 1, at));
        bar.abandon();
        let shown = screen.shown();
        let shown = shown.lines().last().unwrap_or_default();
        assert!(shown.starts_with(&format!("[{}>{}] 2/4 events  ", "#".repeat(15), "-".repeat(14))), "{shown}");
        assert!(shown.contains("/s  0:05 left, done at 14:00:05 (pass 2)"), "{shown}");
    }

    #[test]
    fn capture_spinner_shows_the_count_and_the_rate() {
        let (spinner, screen) = on_screen(None, capture_style());
        spinner.set_position(12);
        spinner.abandon();
        let shown = screen.shown();
        let shown = shown.lines().last().unwrap_or_default();
        assert!(shown.contains(" 12 events captured  ") && shown.contains("/s  "), "{shown}");
    }

    #[test]
    fn hidden_when_stdout_is_not_a_terminal() {
        use std::io::IsTerminal;
        let terminal = std::io::stdout().is_terminal();
        assert_eq!(replay_bar(3).is_hidden(), !terminal);
        let spinner = capture_spinner();
        assert_eq!(spinner.is_hidden(), !terminal);
        spinner.finish_and_clear();
    }

    #[test]
    fn offsets() {
        assert_eq!(offset(Duration::from_millis(12_345)), "12.345s");
        assert_eq!(offset(Duration::from_millis(185_000)), "3m05.000s");
    }

    #[test]
    fn lists_and_events() {
        assert!(recordings(&[]).starts_with("no recordings yet"));
        let summary =
            Summary { name: "demo".into(), started_at_ms: 0, ended_at_ms: None, events: 1, last_offset_us: 1_500_000 };
        let text = recordings(std::slice::from_ref(&summary));
        assert!(text.starts_with("demo  ") && text.contains("1 events") && text.contains("1.500s"), "{text}");
        assert!(text.contains("not ended cleanly"), "{text}");
        let event = StoredEvent {
            offset_us: 1_500_000,
            time_ms: 0,
            app_id: "1".into(),
            channel: "stock_ticker".into(),
            event: "update_event".into(),
            data: "{\"price\":1}".into(),
            socket_id: None,
            user_id: Some("u1".into()),
            source: "api".into(),
        };
        let text = recording(&summary, &[event]);
        assert!(text.lines().nth(1).unwrap().contains("1.500s  api    app 1    stock_ticker"), "{text}");
        assert!(text.contains("{\"price\":1} user u1"), "{text}");
    }
}
