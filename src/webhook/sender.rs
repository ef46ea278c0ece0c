//! Delivery: a bounded queue in front of one sender task, which runs each delivery (one
//! record to one URL) as its own task, at most [`MAX_IN_FLIGHT`] at a time, so a slow endpoint
//! never holds up another webhook, and nothing here ever waits on the event path.
//!
//! Each attempt is a POST with the exact body and headers; a 2xx ends it, a connection error,
//! timeout, 429 or 5xx is retried with exponential backoff until the retry window is over,
//! any other status fails at once. Every attempt is written to the outbox and the log.
//!
//! `https://` endpoints are verified as every outgoing connection is ([`ClientTrust`]: the
//! system's roots, the local CA, `--ca-file`); the TLS client is built on the first https
//! delivery, so a server without https webhooks never reads the system's roots. A certificate
//! that is not trusted fails the delivery at once with its reason (retrying cannot fix it).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::outbox::{Attempt, DeliveryState, Outbox};
use super::{now_ms, Settings};
use crate::apps::AppId;
use crate::printer::{Line, Printer};
use crate::tls::ClientTrust;

/// Deliveries running at once; more wait in the queue.
pub const MAX_IN_FLIGHT: usize = 32;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One record to one URL.
#[derive(Debug, Clone)]
pub struct Job {
    /// The outbox record.
    pub record: u64,
    /// The endpoint.
    pub url: Arc<str>,
    /// The exact body.
    pub body: Arc<str>,
    /// `X-Pusher-Key`.
    pub key: Arc<str>,
    /// `X-Pusher-Signature`.
    pub signature: Arc<str>,
    /// What it is, for the log (`member_added presence-x user u1`, `3 events`).
    pub label: Arc<str>,
    /// The app, for the log and its filters.
    pub app: AppId,
    /// The channel when the body has one event (for `--filter channel=`).
    pub channel: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
struct Context {
    client: reqwest::Client,
    /// The https client, made on first use (or why it could not be).
    secure: Arc<tokio::sync::OnceCell<Result<reqwest::Client, String>>>,
    trust: ClientTrust,
    outbox: Outbox,
    printer: Printer,
    settings: Settings,
    stop: CancellationToken,
}

/// The queue's sending end.
#[derive(Debug, Clone)]
pub struct Sender {
    tx: mpsc::Sender<Job>,
}

impl Sender {
    /// Starts the sender task; it stops when `stop` fires.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn spawn(
        settings: Settings,
        trust: ClientTrust,
        outbox: Outbox,
        printer: Printer,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        // Only fails when the TLS backend cannot initialise; this one has no roots to load.
        let client = http_client(&settings).build().expect("the HTTP client builds");
        let secure = Arc::default();
        let ctx = Context { client, secure, trust, outbox, printer, settings, stop };
        tokio::spawn(run(rx, ctx));
        Self { tx }
    }

    /// Queues a delivery without waiting. `false` when the queue is full or closed.
    pub fn send(&self, job: Job) -> bool {
        self.tx.try_send(job).is_ok()
    }
}

async fn run(mut rx: mpsc::Receiver<Job>, ctx: Context) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let job = tokio::select! {
            job = rx.recv() => match job { Some(job) => job, None => return },
            () = ctx.stop.cancelled() => return,
        };
        // The semaphore is never closed, so acquiring only waits.
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            deliver(&ctx, job).await;
            drop(permit);
        });
    }
}

/// What one attempt got: a status, or why there was none.
enum Outcome {
    Status(u16),
    Error(String),
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(self, Outcome::Status(s) if (200..300).contains(s))
    }

    /// Worth another attempt: 429, 5xx, or a failed connection.
    fn retryable(&self) -> bool {
        match self {
            Outcome::Status(s) => *s == 429 || (500..600).contains(s),
            // A certificate that is not trusted stays untrusted.
            Outcome::Error(e) => !e.starts_with("TLS: "),
        }
    }

    /// The status or the error, for the log.
    fn text(&self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Error(e) => e.clone(),
        }
    }

    /// The status and the error, for the outbox.
    fn into_parts(self) -> (Option<u16>, Option<String>) {
        match self {
            Outcome::Status(s) => (Some(s), None),
            Outcome::Error(e) => (None, Some(e)),
        }
    }
}

fn http_client(settings: &Settings) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        // PHP's validator looks the headers up case-sensitively: send `X-Pusher-Key`,
        // `X-Pusher-Signature` and `Content-Type` in exactly that case on the wire.
        .http1_title_case_headers()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
}

/// The client for `url`: the plain one, or the https one (made on first use).
async fn client_for(ctx: &Context, url: &str) -> Result<reqwest::Client, String> {
    if !url.starts_with("https:") {
        return Ok(ctx.client.clone());
    }
    let made = ctx
        .secure
        .get_or_init(|| async {
            let trust = ctx.trust.clone();
            let config = tokio::task::spawn_blocking(move || trust.config())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("TLS: {e}"))?;
            http_client(&ctx.settings).use_preconfigured_tls((*config).clone()).build().map_err(|e| e.to_string())
        })
        .await;
    made.clone()
}

fn describe(error: &reqwest::Error) -> String {
    if let Some(tls) = crate::tls::client::explain(error) {
        return format!("TLS: {tls}");
    }
    if error.is_timeout() {
        return "timed out".into();
    }
    if error.is_connect() {
        return "connection refused or unreachable".into();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn deliver(ctx: &Context, job: Job) {
    let Some(previous) = ctx.outbox.set_state(job.record, &job.url, DeliveryState::Pending) else {
        return; // dropped from the outbox already
    };
    let deadline = Instant::now() + ctx.settings.retry_for;
    let mut backoff = ctx.settings.first_retry;
    // The outbox numbers attempts; this count is only the fallback if the record is dropped.
    let mut attempt = previous;
    loop {
        attempt += 1;
        let at_ms = now_ms();
        let started = Instant::now();
        let client = match client_for(ctx, &job.url).await {
            Ok(client) => client,
            Err(e) => {
                record_failure(ctx, &job, attempt, at_ms, e);
                return;
            }
        };
        let Some(outcome) = post(ctx, &job, &client).await else {
            abandon(ctx, &job);
            return;
        };
        let elapsed = started.elapsed();
        let (ok, retryable) = (outcome.ok(), outcome.retryable());
        let out_of_time = Instant::now() + backoff > deadline;
        let state = match (ok, retryable, out_of_time) {
            (true, _, _) => DeliveryState::Delivered,
            (false, true, false) => DeliveryState::Retrying,
            _ => DeliveryState::Failed,
        };
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let result = outcome.text();
        let (status, error) = outcome.into_parts();
        let next = match state {
            DeliveryState::Retrying => format!(", retry in {}", humantime::format_duration(backoff)),
            DeliveryState::Failed if retryable => ", giving up (retry window over)".to_owned(),
            DeliveryState::Failed => ", not retried".to_owned(),
            _ => String::new(),
        };
        let attempt = ctx.outbox.record_attempt(
            job.record,
            &job.url,
            Attempt { attempt, at_ms, elapsed_ms, status, error },
            state,
        );
        log(ctx, &job, Logged { result, ok, attempt, elapsed, next });
        if state != DeliveryState::Retrying {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = ctx.stop.cancelled() => {
                abandon(ctx, &job);
                return;
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One POST with the exact body and headers; `None` when the server stops first.
async fn post(ctx: &Context, job: &Job, client: &reqwest::Client) -> Option<Outcome> {
    let sent = client
        .post(&*job.url)
        .header("Content-Type", "application/json")
        .header("X-Pusher-Key", &*job.key)
        .header("X-Pusher-Signature", &*job.signature)
        .body(job.body.to_string())
        .send();
    tokio::select! {
        result = sent => Some(match result {
            Ok(response) => Outcome::Status(response.status().as_u16()),
            Err(e) => Outcome::Error(describe(&e)),
        }),
        () = ctx.stop.cancelled() => None,
    }
}

/// The server is stopping: the delivery is left as abandoned.
fn abandon(ctx: &Context, job: &Job) {
    ctx.outbox.set_state(job.record, &job.url, DeliveryState::Abandoned);
}

/// An attempt that could not be made (no TLS client): recorded and logged as failed.
fn record_failure(ctx: &Context, job: &Job, attempt: u32, at_ms: u64, error: String) {
    let attempt = ctx.outbox.record_attempt(
        job.record,
        &job.url,
        Attempt { attempt, at_ms, elapsed_ms: 0, status: None, error: Some(error.clone()) },
        DeliveryState::Failed,
    );
    let next = ", not retried".to_owned();
    log(ctx, job, Logged { result: error, ok: false, attempt, elapsed: Duration::ZERO, next });
}

/// What the log line says about one attempt.
struct Logged {
    result: String,
    ok: bool,
    attempt: u32,
    elapsed: Duration,
    next: String,
}

fn log(ctx: &Context, job: &Job, logged: Logged) {
    let Logged { result, ok, attempt, elapsed, next } = logged;
    ctx.printer.line(Line::Webhook {
        app: job.app.clone(),
        channel: job.channel.clone(),
        label: job.label.clone(),
        url: job.url.clone(),
        result,
        ok,
        attempt,
        elapsed,
        next,
    });
}
