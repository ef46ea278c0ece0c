//! Replay: a fixture's events re-published with their original spacing.
//!
//! [`Plan`] holds the options (`--speed`, `--loop`, `--channel-map`, `--from`, `--to`),
//! [`schedule`] turns a fixture into due times, [`run`] sleeps until each is due (tokio's clock,
//! so tests pause it) and hands the event to a [`Publisher`]: [`HttpPublisher`] signs and posts
//! it to any Pusher-compatible HTTP API (what `pusher-local replay` uses); the running server
//! publishes through `AppState::publish` instead (see `control::replays`).

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::fixture::{Fixture, FixtureEvent};
use crate::auth::request::sign_query;

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Original spacing divided by this factor (`2` = twice as fast).
    Factor(f64),
    /// No waiting at all.
    Max,
}

impl Default for Speed {
    fn default() -> Self {
        Speed::Factor(1.0)
    }
}

/// The slowest speed factor accepted.
pub const MIN_FACTOR: f64 = 0.01;
/// The fastest speed factor accepted (beyond it, use `max`).
pub const MAX_FACTOR: f64 = 1000.0;

impl FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let number = s.strip_suffix(['x', 'X']).unwrap_or(s);
        match number.parse::<f64>() {
            Ok(f) if (MIN_FACTOR..=MAX_FACTOR).contains(&f) => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "{s:?} is not a speed: give a number from {MIN_FACTOR} to {MAX_FACTOR} (2 = twice as fast, 0.5 = half) or max"
            )),
        }
    }
}

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::Factor(x) => write!(f, "{x}x"),
            Speed::Max => f.write_str("max"),
        }
    }
}

/// `OLD=NEW`: events on channel OLD are published on NEW.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMap {
    /// The fixture's channel.
    pub from: String,
    /// The channel to publish on.
    pub to: String,
}

impl FromStr for ChannelMap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((from, to)) if !from.is_empty() && !to.is_empty() => {
                Ok(ChannelMap { from: from.to_owned(), to: to.to_owned() })
            }
            _ => Err(format!("{s:?} is not OLD=NEW (for example --channel-map stock_ticker=prices)")),
        }
    }
}

/// A duration option: `1500ms`, `90s`, `2m`, `1m30s`, or plain seconds (`12.5`).
pub fn parse_offset(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not an offset like 90s, 1m30s or 1500ms: {e}"))
}

/// What to replay and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Speed.
    pub speed: Speed,
    /// Start again after the last event, until stopped.
    pub looped: bool,
    /// Channel renames.
    pub channel_map: Vec<ChannelMap>,
    /// Skip events less than this long after the first event; the replay starts there at once.
    pub from: Option<Duration>,
    /// Skip events more than this long after the first event.
    pub to: Option<Duration>,
}

/// One event with the time it is due, from the start of a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Due time (already divided by the speed).
    pub due: Duration,
    /// The event, channel mapped.
    pub event: FixtureEvent,
}

/// The events of one pass, in order, with their due times.
///
/// `from` and `to` count from the fixture's first event, not from its offset 0: a recording's
/// first event may come long after the recording started. Without `from` a pass keeps the
/// fixture's lead-in (the first event is due at its own offset); with it, the pass starts at
/// that point (`from` 0: at the first event, at once).
pub fn schedule(fixture: &Fixture, plan: &Plan) -> Vec<Scheduled> {
    let first = fixture.events.iter().map(|e| e.offset).min().unwrap_or_default();
    let start = plan.from.map_or(Duration::ZERO, |from| first.saturating_add(from));
    let end = plan.to.map(|to| first.saturating_add(to));
    fixture
        .events
        .iter()
        .filter(|e| e.offset >= start && end.is_none_or(|end| e.offset <= end))
        .map(|e| {
            let mut event = e.clone();
            if let Some(map) = plan.channel_map.iter().find(|m| m.from == event.channel) {
                event.channel = map.to.clone();
            }
            let original = e.offset - start;
            let due = match plan.speed {
                Speed::Max => Duration::ZERO,
                // Saturates instead of panicking on absurd hand-written offsets.
                Speed::Factor(f) => Duration::try_from_secs_f64(original.as_secs_f64() / f).unwrap_or(Duration::MAX),
            };
            Scheduled { due, event }
        })
        .collect()
}

/// A publish failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No answer from the server.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why (a TLS reason in words, else reqwest's chain of causes).
        reason: String,
    },
    /// The TLS configuration could not be made (an unreadable `--ca-file`).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The server refused the event.
    #[error("{url} answered {status}: {body}")]
    Refused {
        /// The URL (without the query).
        url: String,
        /// HTTP status.
        status: u16,
        /// Its body.
        body: String,
    },
    /// The running server could not record the replayed event.
    #[error(transparent)]
    Record(#[from] super::RecordError),
    /// Nothing to replay after `--from`/`--to`.
    #[error("no events to replay (the fixture is empty, or --from/--to leave none)")]
    Empty,
}

/// Where replayed events go.
#[async_trait::async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes one event; returns when it is accepted.
    async fn publish(&self, event: &FixtureEvent) -> Result<(), ReplayError>;
}

/// Progress of a replay, for the progress bar and the control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Events sent in this pass.
    pub sent: usize,
    /// Events in one pass.
    pub total: usize,
    /// Completed passes (loops).
    pub passes: u64,
    /// Time left in this pass at the chosen speed.
    pub remaining: Duration,
}

/// Sleeps until `start + due`; an offset too far to represent never comes (until stopped).
async fn sleep_until(start: Instant, due: Duration) {
    match start.checked_add(due) {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Events published in all.
    pub sent: u64,
    /// Whole passes done.
    pub passes: u64,
    /// Stopped before the end.
    pub stopped: bool,
}

/// Replays `fixture` into `publisher` until the last event (or forever with `looped`), or
/// until `stop` is cancelled. `on_progress` is called after every event.
///
/// # Errors
/// The first [`ReplayError`] of the publisher (the replay stops there), or
/// [`ReplayError::Empty`].
pub async fn run(
    fixture: &Fixture,
    plan: &Plan,
    publisher: &dyn Publisher,
    stop: &CancellationToken,
    mut on_progress: impl FnMut(Progress) + Send,
) -> Result<Outcome, ReplayError> {
    let events = schedule(fixture, plan);
    let Some(last) = events.last().map(|s| s.due) else { return Err(ReplayError::Empty) };
    let mut outcome = Outcome { sent: 0, passes: 0, stopped: false };
    loop {
        let start = Instant::now();
        for (i, scheduled) in events.iter().enumerate() {
            tokio::select! {
                biased;
                () = stop.cancelled() => {
                    outcome.stopped = true;
                    return Ok(outcome);
                }
                () = sleep_until(start, scheduled.due) => {}
            }
            publisher.publish(&scheduled.event).await?;
            outcome.sent += 1;
            on_progress(Progress {
                sent: i + 1,
                total: events.len(),
                passes: outcome.passes,
                remaining: last.saturating_sub(start.elapsed()),
            });
        }
        outcome.passes += 1;
        if !plan.looped || stop.is_cancelled() {
            return Ok(outcome);
        }
        // A pass of events all at offset 0 at max speed would spin without yielding.
        tokio::task::yield_now().await;
    }
}

/// Publishes to a Pusher HTTP API (`POST /apps/{id}/events`), signed as the official SDKs
/// sign, so it works against pusher-local, Pusher itself or any compatible server.
#[derive(Debug, Clone)]
pub struct HttpPublisher {
    base: String,
    app_id: String,
    key: String,
    secret: String,
    http: reqwest::Client,
}

impl HttpPublisher {
    /// `base` like `http://127.0.0.1:6001` or `https://api-eu.pusher.com`; an https server's
    /// certificate is checked against `trust`.
    ///
    /// # Errors
    /// [`ReplayError::Tls`] when `trust` names an unreadable CA file.
    pub fn new(
        base: &str,
        app_id: &str,
        key: &str,
        secret: &str,
        trust: &crate::tls::ClientTrust,
    ) -> Result<Self, ReplayError> {
        // A server that accepts the connection but never answers must not hang the replay.
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if base.starts_with("https:") {
            builder = builder.use_preconfigured_tls((*trust.config()?).clone());
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
            http: builder.build().unwrap_or_else(|_| reqwest::Client::new()),
        })
    }
}

#[async_trait::async_trait]
impl Publisher for HttpPublisher {
    async fn publish(&self, event: &FixtureEvent) -> Result<(), ReplayError> {
        let path = format!("/apps/{}/events", self.app_id);
        let body =
            serde_json::json!({ "name": event.event, "channels": [event.channel], "data": event.data }).to_string();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let query = sign_query(&self.key, &self.secret, "POST", &path, body.as_bytes(), now, &[]);
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(format!("{url}?{query}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| ReplayError::Unreachable {
                url: url.clone(),
                reason: crate::tls::client::reason(&e.without_url()),
            })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(ReplayError::Refused { url, status, body: body.trim().to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn fixture() -> Fixture {
        let ev = |ms, ch: &str, data: &str| FixtureEvent::new(Duration::from_millis(ms), ch, "e", data);
        Fixture {
            name: None,
            description: None,
            events: vec![ev(0, "a", "1"), ev(1000, "b", "2"), ev(1000, "a", "3"), ev(4000, "a", "4")],
        }
    }

    /// Notes when each event arrives on the (paused) tokio clock.
    struct Collect {
        start: Instant,
        seen: Mutex<Vec<(Duration, String, String)>>,
    }

    #[async_trait::async_trait]
    impl Publisher for Collect {
        async fn publish(&self, event: &FixtureEvent) -> Result<(), ReplayError> {
            self.seen.lock().unwrap().push((self.start.elapsed(), event.channel.clone(), event.data.clone()));
            Ok(())
        }
    }

    fn collect() -> Collect {
        Collect { start: Instant::now(), seen: Mutex::new(Vec::new()) }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn original_spacing_then_double_speed_then_max() {
        let sink = collect();
        let stop = CancellationToken::new();
        let out = run(&fixture(), &Plan::default(), &sink, &stop, |_| {}).await.unwrap();
        assert_eq!(out, Outcome { sent: 4, passes: 1, stopped: false });
        let seen = sink.seen.lock().unwrap().clone();
        let times: Vec<Duration> = seen.iter().map(|s| s.0).collect();
        assert_eq!(times, [ms(0), ms(1000), ms(1000), ms(4000)]);
        assert_eq!(seen.iter().map(|s| s.2.as_str()).collect::<Vec<_>>(), ["1", "2", "3", "4"]);

        let sink = collect();
        let plan = Plan { speed: "2".parse().unwrap(), ..Plan::default() };
        run(&fixture(), &plan, &sink, &stop, |_| {}).await.unwrap();
        let times: Vec<Duration> = sink.seen.lock().unwrap().iter().map(|s| s.0).collect();
        assert_eq!(times, [ms(0), ms(500), ms(500), ms(2000)]);

        let sink = collect();
        let plan = Plan { speed: Speed::Max, ..Plan::default() };
        run(&fixture(), &plan, &sink, &stop, |_| {}).await.unwrap();
        assert!(sink.seen.lock().unwrap().iter().all(|s| s.0 == Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn from_to_and_channel_map() {
        let sink = collect();
        let plan = Plan {
            from: Some(ms(1000)),
            to: Some(ms(1000)),
            channel_map: vec!["a=renamed".parse().unwrap()],
            ..Plan::default()
        };
        run(&fixture(), &plan, &sink, &CancellationToken::new(), |_| {}).await.unwrap();
        let seen = sink.seen.lock().unwrap().clone();
        assert_eq!(seen, [(ms(0), "b".to_owned(), "2".to_owned()), (ms(0), "renamed".to_owned(), "3".to_owned())]);
        let empty = Plan { from: Some(ms(5000)), ..Plan::default() };
        let e = run(&fixture(), &empty, &sink, &CancellationToken::new(), |_| {}).await.unwrap_err();
        assert!(matches!(e, ReplayError::Empty));
    }

    /// A recording's first event comes 1.5 s after it started.
    fn late_start() -> Fixture {
        let ev = |ms, data: &str| FixtureEvent::new(Duration::from_millis(ms), "c", "e", data);
        Fixture { events: vec![ev(1500, "1"), ev(2000, "2"), ev(2600, "3"), ev(4000, "4")], ..Fixture::default() }
    }

    /// `(paused-clock time, data)` of each event `plan` replays from `fixture`.
    async fn replayed(fixture: &Fixture, plan: Plan) -> Vec<(Duration, String)> {
        let sink = collect();
        run(fixture, &plan, &sink, &CancellationToken::new(), |_| {}).await.unwrap();
        let seen = sink.seen.lock().unwrap().clone();
        seen.into_iter().map(|(at, _, data)| (at, data)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn from_and_to_count_from_the_first_event_not_from_the_start_of_the_recording() {
        let at = |n: u64, data: &str| (ms(n), data.to_owned());
        // `--to 1s`: the events within a second of the first one (it gave none when counted from
        // the recording's start); the lead-in before the first event is kept without --from.
        let to = Plan { to: Some(ms(1000)), ..Plan::default() };
        assert_eq!(replayed(&late_start(), to).await, [at(1500, "1"), at(2000, "2")]);
        // `--from 500ms --to 1s`: from 2000 to 2500 on the recording's clock, starting at once.
        let window = Plan { from: Some(ms(500)), to: Some(ms(1000)), ..Plan::default() };
        assert_eq!(replayed(&late_start(), window).await, [at(0, "2")]);
        // `--from 0`: the first event at once, the others at their distance from it.
        let from_first = Plan { from: Some(Duration::ZERO), ..Plan::default() };
        let all = [at(0, "1"), at(500, "2"), at(1100, "3"), at(2500, "4")];
        assert_eq!(replayed(&late_start(), from_first).await, all);
        // Twice as fast: half of every distance, the window still measured on the recording.
        let fast = Plan { from: Some(ms(500)), speed: "2".parse().unwrap(), ..Plan::default() };
        assert_eq!(replayed(&late_start(), fast).await, [at(0, "2"), at(300, "3"), at(1000, "4")]);
        // Past the last event: nothing left, said as such.
        let past = Plan { from: Some(ms(2501)), ..Plan::default() };
        let e = run(&late_start(), &past, &collect(), &CancellationToken::new(), |_| {}).await.unwrap_err();
        assert!(matches!(e, ReplayError::Empty));
        let total = |plan: Plan| schedule(&late_start(), &plan).len();
        assert_eq!((total(Plan { to: Some(ms(2500)), ..Plan::default() }), total(Plan::default())), (4, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn loop_runs_until_stopped_and_progress_counts_down() {
        let sink = Arc::new(collect());
        let stop = CancellationToken::new();
        let plan = Plan { looped: true, ..Plan::default() };
        let (s, t) = (sink.clone(), stop.clone());
        let progress = Arc::new(Mutex::new(Vec::new()));
        let p = progress.clone();
        let task = tokio::spawn(async move {
            run(&fixture(), &plan, &*s, &t, move |pr| p.lock().unwrap().push(pr)).await.unwrap()
        });
        // Passes start at 0, 4000 and 8000 ms; by 9500 ms the third has sent 3 of its 4.
        tokio::time::sleep(ms(9500)).await;
        stop.cancel();
        let out = task.await.unwrap();
        assert_eq!(out, Outcome { sent: 11, passes: 2, stopped: true });
        let progress = progress.lock().unwrap();
        assert_eq!(progress[0], Progress { sent: 1, total: 4, passes: 0, remaining: ms(4000) });
        assert_eq!(progress[3].remaining, Duration::ZERO);
    }

    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn absurd_offsets_neither_panic_nor_fire() {
        let far = Fixture {
            events: vec![FixtureEvent::new(Duration::from_millis(u64::MAX), "c", "e", "")],
            ..Fixture::default()
        };
        let plan = Plan { speed: "0.01".parse().unwrap(), ..Plan::default() };
        assert!(schedule(&far, &plan)[0].due > Duration::from_secs(1 << 60));
        let sink = collect();
        let stop = CancellationToken::new();
        let canceller = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            canceller.cancel();
        });
        let out = run(&far, &plan, &sink, &stop, |_| {}).await.unwrap();
        assert!(out.stopped && out.sent == 0);
    }

    #[test]
    fn option_parsing() {
        assert_eq!("max".parse::<Speed>().unwrap(), Speed::Max);
        assert_eq!("2x".parse::<Speed>().unwrap(), Speed::Factor(2.0));
        assert!("0".parse::<Speed>().is_err() && "fast".parse::<Speed>().is_err());
        assert!("1e-300".parse::<Speed>().is_err() && "NaN".parse::<Speed>().is_err());
        assert!("nochannel".parse::<ChannelMap>().is_err());
        assert_eq!(parse_offset("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_offset("1500ms").unwrap(), ms(1500));
        assert_eq!(parse_offset("2.5").unwrap(), ms(2500));
        assert!(parse_offset("soon").is_err());
    }
}
