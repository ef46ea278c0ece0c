//! `--filter KEY=GLOB`: which lines to show. Repeating a key widens it (any of its patterns);
//! different keys narrow (all must match). A line without the filtered field is hidden, except
//! banner text and server errors, which always show.

use glob::Pattern;

use super::line::{Kind, View};

/// A filter key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `channel=`.
    Channel,
    /// `event=`.
    Event,
    /// `socket=`.
    Socket,
    /// `app=`.
    App,
}

/// The set of filters; empty shows everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    rules: Vec<(Field, Pattern)>,
}

/// A `--filter` value that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not `key=pattern`.
    #[error(
        "--filter {0:?}: expected KEY=PATTERN with KEY one of channel, event, socket, app (e.g. channel=private-*)"
    )]
    Syntax(String),
    /// A bad glob.
    #[error("--filter {value:?}: invalid pattern: {message}")]
    Pattern {
        /// The value.
        value: String,
        /// Why.
        message: String,
    },
}

impl Filter {
    /// Reads `--filter` values.
    ///
    /// # Errors
    /// [`FilterError`] for the first value that is not `KEY=GLOB`.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Filter, FilterError> {
        let mut rules = Vec::new();
        for value in values {
            let value = value.as_ref();
            let (key, pattern) = value.split_once('=').ok_or_else(|| FilterError::Syntax(value.to_owned()))?;
            let field = match key.trim() {
                "channel" => Field::Channel,
                "event" => Field::Event,
                "socket" => Field::Socket,
                "app" => Field::App,
                _ => return Err(FilterError::Syntax(value.to_owned())),
            };
            let pattern = Pattern::new(pattern)
                .map_err(|e| FilterError::Pattern { value: value.to_owned(), message: e.to_string() })?;
            rules.push((field, pattern));
        }
        Ok(Filter { rules })
    }

    /// Whether a rule looks at socket ids (then frames to different sockets stay separate).
    pub fn mentions_socket(&self) -> bool {
        self.rules.iter().any(|(field, _)| *field == Field::Socket)
    }

    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a line of `kind` with these fields is shown.
    pub fn matches(&self, kind: Kind, view: &View) -> bool {
        // Status lines (banner, recording/fixture/replay and cluster news) and every error always
        // show: a filter narrows the traffic, it never hides what went wrong.
        let always = matches!(
            kind,
            Kind::Text
                | Kind::Error
                | Kind::Recorder
                | Kind::Cluster
                | Kind::Signature
                | Kind::ClientError
                | Kind::Refused
        );
        if self.rules.is_empty() || always {
            return true;
        }
        [Field::Channel, Field::Event, Field::Socket, Field::App].into_iter().all(|field| {
            let mut patterns = self.rules.iter().filter(|(f, _)| *f == field).map(|(_, p)| p).peekable();
            if patterns.peek().is_none() {
                return true;
            }
            let value = match field {
                Field::Channel => view.channel.as_deref(),
                Field::Event => view.event.as_deref(),
                Field::Socket => view.socket.as_deref(),
                Field::App => view.app.as_deref(),
            };
            value.is_some_and(|v| patterns.any(|p| p.matches(v)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(channel: Option<&str>, event: Option<&str>) -> View {
        View {
            channel: channel.map(Into::into),
            event: event.map(Into::into),
            socket: Some("123.456".into()),
            app: Some("1".into()),
            ..View::default()
        }
    }

    #[test]
    fn each_key_globs_and_keys_combine() {
        let f = Filter::parse(&["channel=private-*"]).unwrap();
        assert!(f.matches(Kind::In, &view(Some("private-a"), None)));
        assert!(!f.matches(Kind::In, &view(Some("public"), None)));
        assert!(!f.matches(Kind::Connect, &view(None, None)), "lines without a channel are hidden");
        assert!(f.matches(Kind::Error, &view(None, None)), "server errors always show");
        assert!(f.matches(Kind::Recorder, &view(None, None)), "recording and fixture news always show");

        let f = Filter::parse(&["event=client-*"]).unwrap();
        assert!(f.matches(Kind::In, &view(Some("x"), Some("client-typing"))));
        assert!(!f.matches(Kind::In, &view(Some("x"), Some("pusher:ping"))));

        let f = Filter::parse(&["socket=123.456", "app=1"]).unwrap();
        assert!(f.matches(Kind::Connect, &view(None, None)));
        let f = Filter::parse(&["socket=9.9"]).unwrap();
        assert!(!f.matches(Kind::Connect, &view(None, None)));

        let f = Filter::parse(&["channel=a", "channel=b", "event=e"]).unwrap();
        assert!(f.matches(Kind::In, &view(Some("b"), Some("e"))));
        assert!(!f.matches(Kind::In, &view(Some("b"), Some("f"))));
        assert!(!f.matches(Kind::In, &view(Some("c"), Some("e"))));
    }

    #[test]
    fn bad_filters_are_explained() {
        assert!(matches!(Filter::parse(&["nope"]), Err(FilterError::Syntax(_))));
        assert!(matches!(Filter::parse(&["colour=x"]), Err(FilterError::Syntax(_))));
        assert!(matches!(Filter::parse(&["channel=[a"]), Err(FilterError::Pattern { .. })));
    }
}
