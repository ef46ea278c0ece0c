//! `Fixture`: the human-editable JSON file of events with their offsets (format documented in
//! `fixtures/README.md`), its parser (errors carry line and column) and its writer (one event
//! per line, data bytes kept exactly).
//!
//! `data` is written as JSON when the event's data is a JSON document other than a string (so a
//! fixture reads naturally and can be edited by hand) and as a JSON string otherwise. Reading
//! takes the raw text of a non-string `data` verbatim, so an exported fixture gives back the
//! recorded bytes exactly.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::apps::Limits;
use crate::protocol::ChannelName;

/// The fixture schema version this build reads and writes (`"pusher_local_fixture": 1`).
pub const SCHEMA_VERSION: u32 = 1;

/// A list of events to replay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fixture {
    /// A title (optional).
    pub name: Option<String>,
    /// What it contains (optional).
    pub description: Option<String>,
    /// The events, ordered by offset (ties keep file order).
    pub events: Vec<FixtureEvent>,
}

/// One event of a fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureEvent {
    /// Time from the start of the fixture.
    pub offset: Duration,
    /// The channel.
    pub channel: String,
    /// The event name.
    pub event: String,
    /// The data, exactly as published.
    pub data: String,
    /// Informational: the app it was recorded in.
    pub app_id: Option<String>,
    /// Informational: the socket that sent it, or was excluded.
    pub socket_id: Option<String>,
    /// Informational: the presence user that sent it.
    pub user_id: Option<String>,
    /// Informational: `api`, `client` or `replay`.
    pub source: Option<String>,
    /// Informational: wall-clock time, milliseconds since the epoch.
    pub time_ms: Option<i64>,
}

impl FixtureEvent {
    /// An event with no metadata.
    pub fn new(offset: Duration, channel: &str, event: &str, data: &str) -> Self {
        Self {
            offset,
            channel: channel.into(),
            event: event.into(),
            data: data.into(),
            app_id: None,
            socket_id: None,
            user_id: None,
            source: None,
            time_ms: None,
        }
    }
}

/// A fixture could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error("cannot read fixture {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid fixture.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The file could not be written.
    #[error("cannot write fixture {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Why a text is not a fixture, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    fn from_json(e: &serde_json::Error) -> Self {
        // serde_json appends " at line L column C" to its message; the position is kept apart.
        let text = e.to_string();
        let message = match text.rfind(" at line ") {
            Some(at) => text[..at].to_owned(),
            None => text,
        };
        Self { line: e.line().max(1), column: e.column().max(1), message }
    }

    /// With the file it came from.
    pub fn in_file(self, path: &Path) -> FixtureError {
        FixtureError::Invalid { path: path.to_owned(), line: self.line, column: self.column, message: self.message }
    }
}

/// The version key, checked while parsing so its error has a position.
struct Version;

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v == SCHEMA_VERSION {
            Ok(Version)
        } else {
            Err(serde::de::Error::custom(format!(
                "fixture schema version {v} is not supported (this pusher-local reads version {SCHEMA_VERSION})"
            )))
        }
    }
}

/// First pass: is this a fixture at all, and of our version? Other keys are ignored here so a
/// newer file reports its version, not its new keys.
#[derive(Deserialize)]
struct Probe {
    pusher_local_fixture: Option<Version>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    #[allow(dead_code)] // checked by `Version::deserialize`
    pusher_local_fixture: Version,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    events: Vec<EventRepr>,
}

/// A channel name checked while parsing, so a bad one is reported at its position.
struct Channel(String);

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ChannelName::parse(&name, Limits::default().max_channel_name_length)
            .map_err(|e| serde::de::Error::custom(format!("invalid channel name {name:?}: {e}")))?;
        Ok(Channel(name))
    }
}

/// An event name checked while parsing.
struct EventName(String);

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.is_empty() {
            return Err(serde::de::Error::custom("event name is empty"));
        }
        if name.starts_with("pusher:") || name.starts_with("pusher_internal:") {
            return Err(serde::de::Error::custom(format!(
                "event name {name:?} is reserved (pusher: and pusher_internal: are protocol events)"
            )));
        }
        Ok(EventName(name))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRepr {
    offset_ms: u64,
    channel: Channel,
    event: EventName,
    data: Box<RawValue>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    time_ms: Option<i64>,
}

#[derive(Serialize)]
struct EventOut<'a> {
    offset_ms: u64,
    channel: &'a str,
    event: &'a str,
    data: DataOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_ms: Option<i64>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum DataOut<'a> {
    Raw(&'a RawValue),
    Text(&'a str),
}

fn data_out(data: &str) -> DataOut<'_> {
    match serde_json::from_str::<&RawValue>(data) {
        // Only when the raw text is the whole data, unchanged, and not a string literal (a
        // string `data` means "these characters").
        Ok(raw) if raw.get() == data && !data.starts_with('"') => DataOut::Raw(raw),
        _ => DataOut::Text(data),
    }
}

impl Fixture {
    /// Parses fixture JSON.
    ///
    /// # Errors
    /// [`ParseError`] with the line and column of the first problem.
    pub fn parse(text: &str) -> Result<Fixture, ParseError> {
        if !text.trim_start().starts_with('{') {
            return Err(ParseError {
                line: 1,
                column: 1,
                message: "not a pusher-local fixture: expected a JSON object".into(),
            });
        }
        let probe: Probe = serde_json::from_str(text).map_err(|e| ParseError::from_json(&e))?;
        if probe.pusher_local_fixture.is_none() {
            return Err(ParseError {
                line: 1,
                column: 1,
                message: format!(
                    "not a pusher-local fixture: the object needs \"pusher_local_fixture\": {SCHEMA_VERSION}"
                ),
            });
        }
        let file: FileRepr = serde_json::from_str(text).map_err(|e| ParseError::from_json(&e))?;
        let mut events: Vec<FixtureEvent> = file
            .events
            .into_iter()
            .map(|e| {
                let raw = e.data.get();
                let data = if raw.starts_with('"') {
                    // A RawValue that starts with a quote is a valid JSON string.
                    serde_json::from_str::<String>(raw).expect("RawValue string literal")
                } else {
                    raw.to_owned()
                };
                FixtureEvent {
                    offset: Duration::from_millis(e.offset_ms),
                    channel: e.channel.0,
                    event: e.event.0,
                    data,
                    app_id: e.app_id,
                    socket_id: e.socket_id,
                    user_id: e.user_id,
                    source: e.source,
                    time_ms: e.time_ms,
                }
            })
            .collect();
        // Hand-edited files may list events out of order; ties keep file order.
        events.sort_by_key(|e| e.offset);
        Ok(Fixture { name: file.name, description: file.description, events })
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// [`FixtureError::Read`] or [`FixtureError::Invalid`] (file, line, column).
    pub fn load(path: &Path) -> Result<Fixture, FixtureError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| FixtureError::Read { path: path.to_owned(), source })?;
        Fixture::parse(&text).map_err(|e| e.in_file(path))
    }

    /// The fixture as JSON text: header keys, then one event per line.
    pub fn to_json(&self) -> String {
        let mut out = format!("{{\n  \"pusher_local_fixture\": {SCHEMA_VERSION},\n");
        let string = |s: &str| serde_json::to_string(s).expect("strings always serialise");
        if let Some(name) = &self.name {
            let _ = writeln!(out, "  \"name\": {},", string(name));
        }
        if let Some(description) = &self.description {
            let _ = writeln!(out, "  \"description\": {},", string(description));
        }
        out.push_str("  \"events\": [");
        for (i, e) in self.events.iter().enumerate() {
            let line = EventOut {
                offset_ms: u64::try_from(e.offset.as_millis()).unwrap_or(u64::MAX),
                channel: &e.channel,
                event: &e.event,
                data: data_out(&e.data),
                app_id: e.app_id.as_deref(),
                socket_id: e.socket_id.as_deref(),
                user_id: e.user_id.as_deref(),
                source: e.source.as_deref(),
                time_ms: e.time_ms,
            };
            let sep = if i == 0 { "" } else { "," };
            let json = serde_json::to_string(&line).expect("event lines always serialise");
            let _ = write!(out, "{sep}\n    {json}");
        }
        out.push_str(if self.events.is_empty() { "]\n}\n" } else { "\n  ]\n}\n" });
        out
    }

    /// Writes the fixture to `path` (through a temporary file, so a watcher never sees half a
    /// file).
    ///
    /// # Errors
    /// [`FixtureError::Write`].
    pub fn save(&self, path: &Path) -> Result<(), FixtureError> {
        let write = |source| FixtureError::Write { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, self.to_json()).map_err(write)?;
        std::fs::rename(&tmp, path).map_err(write)
    }

    /// The offset of the last event.
    pub fn duration(&self) -> Duration {
        self.events.last().map(|e| e.offset).unwrap_or_default()
    }
}

/// The fixtures built into the binary, the ones the README suggests trying: `pusher-local
/// --replay stock_ticker` works in any folder. A file of the same name in the fixtures folder
/// wins.
pub const BUILT_IN: [(&str, &str); 3] = [
    ("notifications", include_str!("../../fixtures/notifications.json")),
    ("presence_chat", include_str!("../../fixtures/presence_chat.json")),
    ("stock_ticker", include_str!("../../fixtures/stock_ticker.json")),
];

/// The built-in fixture `name`, if there is one.
pub fn built_in(name: &str) -> Option<Fixture> {
    let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == name)?;
    // The shipped fixtures are tested to parse (`the_built_in_fixtures_parse`).
    Fixture::parse(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_fixtures_parse() {
        for (name, text) in BUILT_IN {
            let fixture = Fixture::parse(text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(!fixture.events.is_empty(), "{name}");
            assert!(built_in(name).is_some());
        }
        assert!(built_in("nope").is_none());
    }

    fn sample() -> Fixture {
        let mut api = FixtureEvent::new(Duration::from_millis(0), "stock_ticker", "update_event", r#"{"b":1,"a":2}"#);
        api.source = Some("api".into());
        api.time_ms = Some(1_700_000_000_000);
        let mut client = FixtureEvent::new(Duration::from_millis(1500), "presence-room", "client-typing", "plain text");
        client.user_id = Some("u1".into());
        client.socket_id = Some("1.2".into());
        Fixture {
            name: Some("sample".into()),
            description: None,
            events: vec![
                api,
                client,
                FixtureEvent::new(Duration::from_millis(2000), "c", "e", "\"quoted\""),
                FixtureEvent::new(Duration::from_millis(2000), "c", "e", " {\"spaced\": true} "),
                FixtureEvent::new(Duration::from_millis(2500), "c", "e", "42"),
                FixtureEvent::new(Duration::from_millis(3000), "c", "e", ""),
            ],
        }
    }

    #[test]
    fn writing_then_reading_gives_back_the_exact_data_bytes() {
        let fixture = sample();
        let text = fixture.to_json();
        assert_eq!(Fixture::parse(&text).unwrap(), fixture, "{text}");
        // JSON data stays readable (key order untouched), other data is a string.
        assert!(text.contains(r#""data":{"b":1,"a":2}"#), "{text}");
        assert!(text.contains(r#""data":"plain text""#), "{text}");
        assert!(text.contains(r#""data":"\"quoted\"""#), "{text}");
        assert!(text.contains(r#""data":42"#), "{text}");
        assert_eq!(text.lines().filter(|l| l.contains("offset_ms")).count(), 6, "one event per line");
    }

    #[test]
    fn a_hand_written_fixture_with_object_data_and_unsorted_offsets() {
        let text = r#"{
  "pusher_local_fixture": 1,
  "events": [
    {"offset_ms": 2000, "channel": "c", "event": "second", "data": {"price": 10.5}},
    {"offset_ms": 0, "channel": "c", "event": "first", "data": "hi"}
  ]
}"#;
        let f = Fixture::parse(text).unwrap();
        assert_eq!(f.events[0].event, "first");
        assert_eq!(f.events[1].data, r#"{"price": 10.5}"#);
        assert_eq!(f.duration(), Duration::from_secs(2));
    }

    #[test]
    fn errors_say_line_and_column() {
        let bad_json = "{\n  \"pusher_local_fixture\": 1,\n  \"events\": [\n    {\"offset_ms\": 0,}\n  ]\n}";
        let e = Fixture::parse(bad_json).unwrap_err();
        assert_eq!(e.line, 4, "{e:?}");

        let bad_channel = "{\"pusher_local_fixture\": 1,\n\"events\": [\n{\"offset_ms\": 0, \"channel\": \"bad channel!\", \"event\": \"e\", \"data\": \"\"}]}";
        let e = Fixture::parse(bad_channel).unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
        assert!(e.message.contains("invalid channel name \"bad channel!\""), "{e:?}");

        let unknown = "{\"pusher_local_fixture\": 1, \"events\": [{\"offset_ms\": 0, \"channel\": \"c\", \"event\": \"e\", \"data\": \"\", \"dta\": 1}]}";
        assert!(Fixture::parse(unknown).unwrap_err().message.contains("unknown field `dta`"));

        let negative = "{\"pusher_local_fixture\": 1, \"events\": [{\"offset_ms\": -5, \"channel\": \"c\", \"event\": \"e\", \"data\": \"\"}]}";
        assert!(Fixture::parse(negative).is_err());

        let reserved = "{\"pusher_local_fixture\": 1, \"events\": [{\"offset_ms\": 0, \"channel\": \"c\", \"event\": \"pusher:ping\", \"data\": \"\"}]}";
        assert!(Fixture::parse(reserved).unwrap_err().message.contains("reserved"));
    }

    #[test]
    fn foreign_json_and_other_versions_are_named_as_such() {
        let e = Fixture::parse("{\"events\": []}").unwrap_err();
        assert!(e.message.contains("not a pusher-local fixture"), "{e:?}");
        let e = Fixture::parse("{\"pusher_local_fixture\": 2, \"events\": [], \"new_key\": 1}").unwrap_err();
        assert!(e.message.contains("version 2 is not supported"), "{e:?}");
        let e = Fixture::parse("[1, 2]").unwrap_err();
        assert!(e.message.contains("expected a JSON object"), "{e:?}");
    }

    #[test]
    fn the_shipped_example_fixtures_load() {
        let shipped = [
            include_str!("../../fixtures/stock_ticker.json"),
            include_str!("../../fixtures/presence_chat.json"),
            include_str!("../../fixtures/notifications.json"),
        ];
        for text in shipped {
            let f = Fixture::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(f.events.len() >= 8 && f.description.is_some());
        }
        let ticker = Fixture::parse(shipped[0]).unwrap();
        for e in &ticker.events {
            assert_eq!((e.channel.as_str(), e.event.as_str()), ("stock_ticker", "update_event"));
            let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            assert!(data["company"].is_string() && data["price"].is_number(), "{data}");
        }
        let gaps: Vec<Duration> = ticker.events.windows(2).map(|w| w[1].offset - w[0].offset).collect();
        assert!(gaps.iter().all(|g| *g >= Duration::from_secs(1) && *g <= Duration::from_secs(5)), "{gaps:?}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{\"pusher_local_fixture\": 1,\n \"events\": 3}").unwrap();
        let text = Fixture::load(&path).unwrap_err().to_string();
        assert!(text.starts_with(&format!("{}:2:", path.display())), "{text}");
        sample().save(&path).unwrap();
        assert_eq!(Fixture::load(&path).unwrap(), sample());
    }
}
