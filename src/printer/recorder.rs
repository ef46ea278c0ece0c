//! What the `recordings`, `replay` and `capture` commands print: the recordings list, one
//! recording's events, and the replay progress bar (drawn only when stdout is a terminal).

use std::fmt::Write as _;
use std::time::Duration;

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

/// The progress bar: `[#####-----] 12/40 events, 0:31 left (pass 2)`, `width` columns of bar.
pub fn progress(sent: usize, total: usize, remaining: Duration, passes: u64, width: usize) -> String {
    let filled = (sent * width).checked_div(total).unwrap_or(width).min(width);
    let left = remaining.as_secs();
    let pass = if passes > 0 { format!(" (pass {})", passes + 1) } else { String::new() };
    format!(
        "[{}{}] {sent}/{total} events, {}:{:02} left{pass}",
        "#".repeat(filled),
        "-".repeat(width - filled),
        left / 60,
        left % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_bar_and_offsets() {
        assert_eq!(progress(0, 4, Duration::from_secs(75), 0, 8), "[--------] 0/4 events, 1:15 left");
        assert_eq!(progress(2, 4, Duration::from_secs(5), 1, 8), "[####----] 2/4 events, 0:05 left (pass 2)");
        assert_eq!(progress(4, 4, Duration::ZERO, 0, 8), "[########] 4/4 events, 0:00 left");
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
