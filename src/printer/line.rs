//! `Line`: one thing to tell the user, as typed data; and [`View`], the fields a line shows
//! (socket, app, event, channel, payload), extracted once for filters and both renderers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::apps::AppId;
use crate::auth::diagnose::Diagnosis;
use crate::event::Source;
use crate::protocol::{ChannelName, Frame, SocketId};

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
        /// Its app.
        app: AppId,
        /// Close code, when known.
        code: Option<u16>,
        /// Close reason.
        reason: String,
    },
    /// A frame from a client (verbose).
    FrameIn {
        /// The socket.
        socket: SocketId,
        /// Its app.
        app: AppId,
        /// The text.
        frame: Frame,
    },
    /// A frame to a client (verbose).
    FrameOut {
        /// The socket.
        socket: SocketId,
        /// Its app.
        app: AppId,
        /// The text.
        frame: Frame,
    },
    /// The same frame written to several sockets, coalesced by the printer (verbose).
    FanOut {
        /// Their app.
        app: AppId,
        /// The frame.
        frame: Frame,
        /// How many sockets got it.
        sockets: usize,
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
        /// Why it reached nobody, when it did and that can be told (`crate::unreached`).
        hint: Option<String>,
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
        /// Why it was refused (4xx, 5xx).
        reason: Option<String>,
    },
    /// A client did something wrong (answered with `pusher:error`).
    ClientError {
        /// The socket.
        socket: SocketId,
        /// Its app.
        app: AppId,
        /// The message sent back.
        message: String,
    },
    /// One webhook delivery attempt.
    Webhook {
        /// The app.
        app: AppId,
        /// The channel, when the body has one event.
        channel: Option<Arc<str>>,
        /// What it is (`member_added presence-x user u1`, `3 events`).
        label: Arc<str>,
        /// The endpoint.
        url: Arc<str>,
        /// The HTTP status or the connection error.
        result: String,
        /// A 2xx answer.
        ok: bool,
        /// Attempt number, from 1.
        attempt: u32,
        /// How long the attempt took.
        elapsed: Duration,
        /// What happens next (`, retry in 2s`, `, giving up…`), empty when delivered.
        next: String,
    },
    /// A signature was refused; what was expected and the likely cause.
    Signature(Box<Diagnosis>),
    /// Recording, fixtures and replays.
    Recorder(RecorderLine),
    /// A server-side problem.
    Error(String),
    /// News of the cluster (Redis lost or back, a node gone).
    Cluster {
        /// What happened.
        message: String,
        /// Something is wrong (shown even with `-q`).
        problem: bool,
    },
}

/// News from recording, the fixtures folder and replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecorderLine {
    /// A recording started (`--record`, or from the console).
    Recording {
        /// The recording's name.
        name: String,
        /// The database.
        db: PathBuf,
    },
    /// A recording ended (stopped from the console, or at shutdown).
    Saved {
        /// Its name.
        name: String,
        /// Events recorded.
        events: u64,
    },
    /// Events could not be committed.
    Failed {
        /// Why.
        message: String,
    },
    /// A fixture was loaded (new or edited).
    FixtureLoaded {
        /// Its name.
        name: String,
        /// The file.
        file: PathBuf,
        /// Its events.
        events: usize,
    },
    /// A fixture file was refused.
    FixtureInvalid {
        /// Its name.
        name: String,
        /// `file:line:column: message`.
        error: String,
        /// An earlier version stays loaded.
        kept: bool,
    },
    /// A fixture file was removed.
    FixtureRemoved {
        /// Its name.
        name: String,
    },
    /// A replay started in the server.
    ReplayStarted {
        /// Its id.
        id: u64,
        /// The fixture.
        fixture: String,
        /// Events in one pass.
        events: usize,
        /// `1x`, `2x`, `max`.
        speed: String,
        /// Loops until stopped.
        looped: bool,
    },
    /// A replay ended.
    ReplayEnded {
        /// Its id.
        id: u64,
        /// The fixture.
        fixture: String,
        /// Events sent.
        sent: u64,
        /// Stopped before its end.
        stopped: bool,
        /// Why it failed, if it did.
        error: Option<String>,
    },
}

impl RecorderLine {
    /// A problem the user must see even with `-q`.
    pub fn is_error(&self) -> bool {
        match self {
            RecorderLine::Failed { .. } | RecorderLine::FixtureInvalid { .. } => true,
            RecorderLine::ReplayEnded { error, .. } => error.is_some(),
            RecorderLine::Recording { .. }
            | RecorderLine::Saved { .. }
            | RecorderLine::FixtureLoaded { .. }
            | RecorderLine::FixtureRemoved { .. }
            | RecorderLine::ReplayStarted { .. } => false,
        }
    }

    /// The sentence shown.
    pub fn message(&self) -> String {
        match self {
            RecorderLine::Recording { name, db } => {
                format!("recording {name:?} into {} (every published event)", db.display())
            }
            RecorderLine::Saved { name, events } => format!(
                "recording {name:?} saved: {events} events (pusher-local recordings export {name} -o fixtures/{name}.json)"
            ),
            RecorderLine::Failed { message } => message.clone(),
            RecorderLine::FixtureLoaded { name, file, events } => {
                format!("fixture {name} loaded from {}: {events} events", file.display())
            }
            RecorderLine::FixtureInvalid { name, error, kept } => {
                let what = if *kept { "the previous version stays loaded" } else { "not loaded" };
                format!("fixture {name} refused ({what}): {error}")
            }
            RecorderLine::FixtureRemoved { name } => format!("fixture {name} removed"),
            RecorderLine::ReplayStarted { id, fixture, events, speed, looped } => {
                let looping = if *looped { ", looping" } else { "" };
                format!("replay #{id} of {fixture} started: {events} events at {speed}{looping}")
            }
            RecorderLine::ReplayEnded { id, fixture, sent, stopped, error } => match (error, stopped) {
                (Some(error), _) => format!("replay #{id} of {fixture} failed after {sent} events: {error}"),
                (None, true) => format!("replay #{id} of {fixture} stopped after {sent} events"),
                (None, false) => format!("replay #{id} of {fixture} finished: {sent} events sent"),
            },
        }
    }
}

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

impl Line {
    /// The least verbosity at which this line is shown.
    pub fn verbosity(&self) -> Verbosity {
        match self {
            Line::Error(_) | Line::Refused { .. } | Line::Signature(_) | Line::ClientError { .. } => Verbosity::Quiet,
            Line::Cluster { problem: true, .. } => Verbosity::Quiet,
            Line::Cluster { problem: false, .. } => Verbosity::Normal,
            Line::Webhook { ok: false, .. } => Verbosity::Quiet,
            Line::Recorder(r) if r.is_error() => Verbosity::Quiet,
            Line::Recorder(_) => Verbosity::Normal,
            Line::Text(_)
            | Line::Connected { .. }
            | Line::Disconnected { .. }
            | Line::Api { .. }
            | Line::Webhook { ok: true, .. } => Verbosity::Normal,
            Line::FrameIn { .. } | Line::FrameOut { .. } | Line::FanOut { .. } | Line::Published { .. } => {
                Verbosity::Verbose
            }
        }
    }
}

/// The kind of a line, which picks its marker and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Banner text.
    Text,
    /// Connect.
    Connect,
    /// Disconnect.
    Disconnect,
    /// Refused connection.
    Refused,
    /// Client → server frame.
    In,
    /// Server → client frame.
    Out,
    /// An event published through the HTTP API or a client.
    Publish,
    /// HTTP API call.
    Api,
    /// A webhook delivery attempt.
    Webhook,
    /// Recording, fixtures, replays.
    Recorder,
    /// A client error (`pusher:error` sent).
    ClientError,
    /// A refused signature.
    Signature,
    /// A server error.
    Error,
    /// Cluster news.
    Cluster,
}

impl Kind {
    /// The direction marker column.
    pub fn marker(self) -> &'static str {
        match self {
            Kind::Text => "   ",
            Kind::Connect => "+ws",
            Kind::Disconnect => "-ws",
            Kind::Refused => "xws",
            Kind::In => "c→s",
            Kind::Out => "s→c",
            Kind::Publish => "pub",
            Kind::Api => "api",
            Kind::Webhook => "whk",
            Kind::Recorder => "rec",
            Kind::ClientError | Kind::Signature | Kind::Error => "err",
            Kind::Cluster => "cls",
        }
    }

    /// The `kind` field of JSON lines.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Connect => "connect",
            Kind::Disconnect => "disconnect",
            Kind::Refused => "refused",
            Kind::In => "frame_in",
            Kind::Out => "frame_out",
            Kind::Publish => "publish",
            Kind::Api => "api",
            Kind::Webhook => "webhook",
            Kind::Recorder => "recorder",
            Kind::ClientError => "client_error",
            Kind::Signature => "signature",
            Kind::Error => "error",
            Kind::Cluster => "cluster",
        }
    }
}

/// The fields of one line, ready to filter and render.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Socket id.
    pub socket: Option<String>,
    /// App id.
    pub app: Option<String>,
    /// Event name.
    pub event: Option<String>,
    /// Channel name.
    pub channel: Option<String>,
    /// The payload as JSON text (Pusher's double-encoded `data` decoded), or plain text.
    pub payload: Option<String>,
    /// Size of the payload as sent, in bytes.
    pub bytes: usize,
    /// The payload is JSON (it can be pretty-printed).
    pub payload_is_json: bool,
}

#[derive(Deserialize)]
struct FrameFields<'a> {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// Pusher's `data`: a JSON string holding JSON is shown as that JSON.
fn decode_data(raw: &RawValue) -> (String, bool) {
    let text = raw.get();
    if text.starts_with('"') {
        if let Ok(inner) = serde_json::from_str::<String>(text) {
            return if serde_json::from_str::<&RawValue>(&inner).is_ok() { (inner, true) } else { (inner, false) };
        }
    }
    (text.to_owned(), true)
}

/// The data of a published event, as shown.
pub fn data_view(data: &str) -> (String, bool) {
    let is_json = serde_json::from_str::<&RawValue>(data).is_ok();
    (data.to_owned(), is_json)
}

/// `{"channel": …}` inside a subscribe or unsubscribe frame's `data`.
#[derive(Deserialize)]
struct ChannelOnly {
    #[serde(default)]
    channel: Option<String>,
}

fn frame_view(frame: &str, view: &mut View) {
    view.bytes = frame.len();
    match serde_json::from_str::<FrameFields<'_>>(frame) {
        Ok(fields) => {
            view.event = fields.event;
            view.channel = fields.channel;
            // A (un)subscribe names its channel inside `data`: shown in the channel column, and
            // seen by `--filter channel=` and JSON logs.
            if view.channel.is_none()
                && matches!(view.event.as_deref(), Some("pusher:subscribe" | "pusher:unsubscribe"))
            {
                view.channel = fields
                    .data
                    .and_then(|raw| serde_json::from_str::<ChannelOnly>(raw.get()).ok())
                    .and_then(|d| d.channel);
            }
            if let Some(raw) = fields.data {
                let (payload, is_json) = decode_data(raw);
                view.payload = Some(payload);
                view.payload_is_json = is_json;
            }
        }
        Err(_) => {
            view.payload = Some(frame.to_owned());
        }
    }
}

impl Line {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Line::Text(_) => Kind::Text,
            Line::Connected { .. } => Kind::Connect,
            Line::Refused { .. } => Kind::Refused,
            Line::Disconnected { .. } => Kind::Disconnect,
            Line::FrameIn { .. } => Kind::In,
            Line::FrameOut { .. } | Line::FanOut { .. } => Kind::Out,
            Line::Published { .. } => Kind::Publish,
            Line::Api { .. } => Kind::Api,
            Line::Webhook { .. } => Kind::Webhook,
            Line::Recorder(_) => Kind::Recorder,
            Line::ClientError { .. } => Kind::ClientError,
            Line::Signature(_) => Kind::Signature,
            Line::Error(_) => Kind::Error,
            Line::Cluster { .. } => Kind::Cluster,
        }
    }

    /// Its fields.
    pub fn view(&self) -> View {
        let mut view = View::default();
        match self {
            Line::Text(_) | Line::Refused { .. } | Line::Error(_) | Line::Recorder(_) | Line::Cluster { .. } => {}
            Line::Connected { socket, app, .. }
            | Line::Disconnected { socket, app, .. }
            | Line::ClientError { socket, app, .. } => {
                view.socket = Some(socket.to_string());
                view.app = Some(app.to_string());
            }
            Line::FrameIn { socket, app, frame } | Line::FrameOut { socket, app, frame } => {
                view.socket = Some(socket.to_string());
                view.app = Some(app.to_string());
                frame_view(frame.as_str(), &mut view);
            }
            Line::FanOut { app, frame, sockets } => {
                view.socket = Some(format!("×{sockets}"));
                view.app = Some(app.to_string());
                frame_view(frame.as_str(), &mut view);
            }
            Line::Published { app, channel, event, data, .. } => {
                view.app = Some(app.to_string());
                view.channel = Some(channel.to_string());
                view.event = Some(event.to_string());
                let (payload, is_json) = data_view(data);
                view.bytes = data.len();
                view.payload = Some(payload);
                view.payload_is_json = is_json;
            }
            Line::Webhook { app, channel, label, .. } => {
                view.app = Some(app.to_string());
                view.channel = channel.as_deref().map(str::to_owned);
                view.event = label.split(' ').next().map(str::to_owned);
            }
            Line::Api { path, .. } => {
                view.app = path.strip_prefix("/apps/").and_then(|rest| rest.split('/').next()).map(str::to_owned);
            }
            Line::Signature(d) => {
                view.app = d.app.clone();
                match &d.subject {
                    crate::auth::diagnose::Subject::Channel { channel, socket_id } => {
                        view.channel = Some(channel.clone());
                        view.socket = Some(socket_id.clone());
                    }
                    crate::auth::diagnose::Subject::Signin { socket_id } => view.socket = Some(socket_id.clone()),
                    crate::auth::diagnose::Subject::Request { .. } => {}
                }
            }
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_show_double_encoded_data_decoded() {
        let line = Line::FrameOut {
            socket: SocketId::new(1, 2),
            app: AppId::new("1"),
            frame: Frame::from(r#"{"event":"e","channel":"c","data":"{\"a\":1}"}"#.to_owned()),
        };
        let view = line.view();
        assert_eq!(view.event.as_deref(), Some("e"));
        assert_eq!(view.channel.as_deref(), Some("c"));
        assert_eq!(view.payload.as_deref(), Some(r#"{"a":1}"#));
        assert!(view.payload_is_json);
    }

    #[test]
    fn plain_string_data_stays_plain() {
        let line = Line::FrameIn {
            socket: SocketId::new(1, 2),
            app: AppId::new("1"),
            frame: Frame::from(r#"{"event":"client-a","channel":"private-c","data":"hello"}"#.to_owned()),
        };
        let view = line.view();
        assert_eq!(view.payload.as_deref(), Some("hello"));
        assert!(!view.payload_is_json);
    }

    #[test]
    fn api_lines_know_their_app() {
        let line = Line::Api {
            method: "GET".into(),
            path: "/apps/42/channels".into(),
            status: 200,
            elapsed: Duration::ZERO,
            reason: None,
        };
        assert_eq!(line.view().app.as_deref(), Some("42"));
    }

    #[test]
    fn subscribe_frames_name_their_channel_for_the_column_filters_and_json() {
        let line = Line::FrameIn {
            socket: SocketId::new(1, 2),
            app: AppId::new("1"),
            frame: Frame::from(
                r#"{"event":"pusher:subscribe","data":{"auth":"k:s","channel":"private-a"}}"#.to_owned(),
            ),
        };
        assert_eq!(line.view().channel.as_deref(), Some("private-a"));
        let filter = crate::printer::Filter::parse(&["channel=private-*".to_owned()]).unwrap();
        assert!(filter.matches(line.kind(), &line.view()));
        let unsubscribe = Line::FrameIn {
            socket: SocketId::new(1, 2),
            app: AppId::new("1"),
            frame: Frame::from(r#"{"event":"pusher:unsubscribe","data":{"channel":"public"}}"#.to_owned()),
        };
        assert!(!filter.matches(unsubscribe.kind(), &unsubscribe.view()));
        // Errors show whatever the filter says.
        let error = Line::ClientError { socket: SocketId::new(1, 2), app: AppId::new("1"), message: "x".into() };
        assert!(filter.matches(error.kind(), &error.view()));
        assert!(filter.matches(Kind::Signature, &View::default()));
    }
}
