//! `Session`: the per-socket state machine that both transports share (a WebSocket in `ws`, the
//! HTTP fallbacks in `xhr`). A parsed `ClientMessage` comes in; the session checks it (auth,
//! limits, membership), joins and leaves channels and publishes through `AppState`, and
//! queues replies on the socket's own outbox. Also what both transports check and answer the
//! same way: the `protocol=` version at connect and a refused frame's `pusher:error`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::apps::{App, AppId};
use crate::auth::channel::{check, signin_string, subscription_string, AuthError};
use crate::auth::diagnose;
use crate::error::{ClientError, HandshakeError};
use crate::event::{Event, Source};
use crate::printer::Line;
use crate::protocol::{codes, server, ChannelKind, ChannelName, ClientMessage, Frame, SocketId, Subscribe};
use crate::registry::{Client, Joining, Leaving, Member, Outbox, OutboxReceiver};
use crate::state::AppState;

/// Close reason sent to every socket on shutdown.
pub const SHUTDOWN_REASON: &str = "pusher-local is shutting down";

/// `protocol=` check: 4–7 accepted, absent treated as 7, anything else refused (4007).
pub fn check_protocol(query: &str) -> Result<(), HandshakeError> {
    let value = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "protocol").map(|(_, v)| v);
    match value {
        None => Ok(()),
        Some(v) => match v.parse::<u32>() {
            Ok(4..=7) => Ok(()),
            _ => Err(HandshakeError::UnsupportedProtocol),
        },
    }
}

/// Answers a refused client frame with `pusher:error` and logs it (both transports).
/// A refused signature is not logged again here: the session printed its diagnosis, which
/// says more.
pub fn reply_error(state: &AppState, outbox: &Outbox, socket: SocketId, app: &AppId, error: &ClientError) {
    let message = error.to_string();
    outbox.send(server::error(error.code(), &message));
    let diagnosed = matches!(error, ClientError::Auth(crate::auth::channel::AuthError::InvalidSignature { .. }));
    if !diagnosed {
        state.printer().line(Line::ClientError { socket, app: app.clone(), message });
    }
}

/// Registers a new socket of `app` on this node (both transports): its id, the outbox the
/// server queues its frames on, and the transport's end of that outbox. Shutdown closes every
/// registered socket; one registered just after that is asked to close here.
///
/// # Errors
/// [`HandshakeError`] when the app has no room for another connection, or a test's fault
/// refuses it (`/pusher-local/faults`).
pub fn register(
    state: &AppState,
    app: &App,
    client: Client,
) -> Result<(SocketId, Outbox, OutboxReceiver), HandshakeError> {
    let faults = state.faults();
    if faults.active() {
        if faults.node_down() {
            return Err(HandshakeError::NodeDown);
        }
        if let Some(code) = faults.refused_connection(app.id.as_str()) {
            return Err(HandshakeError::Fault(code));
        }
    }
    let socket_id = state.next_socket_id();
    let (outbox, outgoing) = Outbox::new(state.config().outbox_capacity);
    state.registry().connect(app, socket_id, &outbox, client)?;
    if state.shutdown().is_cancelled() {
        outbox.close(codes::WS_GOING_AWAY, SHUTDOWN_REASON);
    }
    Ok((socket_id, outbox, outgoing))
}

#[derive(Debug)]
struct Subscription {
    channel: ChannelName,
    /// Presence user id as text, for client events' top-level `user_id`.
    user_id: Option<Arc<str>>,
}

#[derive(Debug)]
struct SignedInUser {
    id: Arc<str>,
    user_info: Option<Box<RawValue>>,
}

/// One connected socket's protocol state.
#[derive(Debug)]
pub struct Session {
    state: AppState,
    app: Arc<App>,
    socket_id: SocketId,
    outbox: Outbox,
    subscriptions: HashMap<Arc<str>, Subscription>,
    user: Option<SignedInUser>,
    client_event_window: (Instant, u32),
}

#[derive(Deserialize)]
struct ChannelData<'a> {
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_info: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct UserData<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_info: Option<&'a RawValue>,
    #[serde(default)]
    watchlist: Option<Vec<String>>,
}

impl Session {
    /// A session for a freshly connected socket.
    pub fn new(state: AppState, app: Arc<App>, socket_id: SocketId, outbox: Outbox) -> Self {
        Self {
            state,
            app,
            socket_id,
            outbox,
            subscriptions: HashMap::new(),
            user: None,
            client_event_window: (Instant::now(), 0),
        }
    }

    /// Starts the session of a socket [`register`]ed just now: queues
    /// `pusher:connection_established` and prints the Connected line.
    pub fn start(
        state: AppState,
        app: Arc<App>,
        socket_id: SocketId,
        outbox: Outbox,
        remote: Option<SocketAddr>,
    ) -> Self {
        outbox.send(server::connection_established(socket_id, state.config().activity_timeout.as_secs()));
        state.printer().line(Line::Connected { socket: socket_id, app: app.id.clone(), remote });
        Self::new(state, app, socket_id, outbox)
    }

    /// This socket's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Answers a refused frame of this socket: [`reply_error`].
    pub fn reply_error(&self, error: &ClientError) {
        reply_error(&self.state, &self.outbox, self.socket_id, &self.app.id, error);
    }

    /// One text frame from the client (both transports): printed with `-v`, checked against
    /// the size limit, parsed and handled. A refused frame is answered with `pusher:error`;
    /// the socket stays open.
    pub async fn receive<T>(&mut self, text: &T)
    where
        T: AsRef<str> + Clone + Into<Frame>,
    {
        self.outbox.frame_in();
        let printer = self.state.printer();
        if printer.verbose() {
            printer.line(Line::FrameIn {
                socket: self.socket_id,
                app: self.app.id.clone(),
                frame: text.clone().into(),
            });
        }
        let (text, max) = (text.as_ref(), self.state.config().max_message_bytes);
        let result = if text.len() > max {
            Err(ClientError::FrameTooLarge { len: text.len(), max })
        } else {
            match ClientMessage::parse(text) {
                // Boxed: the handler's state lives on the heap only while a message is handled,
                // which keeps every idle connection's task small.
                Ok(message) => Box::pin(self.handle(message)).await,
                Err(e) => Err(e.into()),
            }
        };
        if let Err(error) = result {
            self.reply_error(&error);
        }
    }

    /// This socket's id.
    pub fn socket_id(&self) -> SocketId {
        self.socket_id
    }

    /// This socket's app.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Signed in, or subscribed to a channel that needs auth (Pusher's "authorized
    /// connections" rule).
    pub fn is_authorized(&self) -> bool {
        self.user.is_some() || self.subscriptions.values().any(|s| s.channel.kind().requires_auth())
    }

    /// Handles one message.
    ///
    /// # Errors
    /// [`ClientError`] for the `pusher:error` reply; the socket stays open.
    pub async fn handle(&mut self, message: ClientMessage) -> Result<(), ClientError> {
        match message {
            ClientMessage::Subscribe(subscribe) => self.subscribe(subscribe).await,
            ClientMessage::Unsubscribe { channel } => {
                self.unsubscribe(&channel).await;
                Ok(())
            }
            ClientMessage::Ping => {
                self.outbox.send(server::pong());
                Ok(())
            }
            ClientMessage::Pong => Ok(()),
            ClientMessage::Signin { auth, user_data } => self.signin(&auth, user_data),
            ClientMessage::ClientEvent { event, channel, data } => self.client_event(event, &channel, data).await,
        }
    }

    fn check_auth(&self, channel: &ChannelName, subscribe: &Subscribe) -> Result<(), ClientError> {
        let auth = subscribe
            .auth
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| AuthError::Missing { channel: channel.to_string() })?;
        let socket_id = self.socket_id.to_string();
        let signed = subscription_string(&socket_id, channel.as_str(), subscribe.channel_data.as_deref());
        check(auth, &self.app.key, self.app.secret.expose(), signed).inspect_err(|_| {
            let others = self.other_apps();
            let channel_data = subscribe.channel_data.as_deref();
            let diagnosis = diagnose::channel(&self.app, &others, &socket_id, channel.as_str(), channel_data, auth);
            self.state.printer().line(Line::Signature(Box::new(diagnosis)));
        })?;
        Ok(())
    }

    fn other_apps(&self) -> Vec<&App> {
        self.state.apps().iter().map(|a| &**a).filter(|a| a.id != self.app.id).collect()
    }

    fn presence_member(&self, subscribe: &Subscribe) -> Result<Member, ClientError> {
        let limits = &self.app.limits;
        let (user_id, user_info) = match (&subscribe.channel_data, &self.user) {
            (Some(text), _) => {
                let data: ChannelData<'_> = serde_json::from_str(text).map_err(|e| {
                    ClientError::PresenceData(format!("channel_data must be a JSON object with a user_id ({e})"))
                })?;
                let user_id =
                    data.user_id.ok_or_else(|| ClientError::PresenceData("channel_data has no user_id".into()))?;
                (user_id.to_owned(), data.user_info.map(ToOwned::to_owned))
            }
            // A signed-in user may subscribe without channel_data; its signin identity is used.
            (None, Some(user)) => {
                let id = serde_json::to_string(&*user.id).expect("a string encodes");
                let id = RawValue::from_string(id).expect("valid JSON");
                (id, user.user_info.clone())
            }
            (None, None) => return Err(ClientError::PresenceData("presence subscriptions need channel_data".into())),
        };
        let key: Arc<str> = match serde_json::from_str::<serde_json::Value>(user_id.get()) {
            Ok(serde_json::Value::String(s)) if !s.is_empty() => s.into(),
            Ok(serde_json::Value::Number(n)) => n.to_string().into(),
            _ => return Err(ClientError::PresenceData("user_id must be a non-empty string or a number".into())),
        };
        if key.chars().count() > limits.max_presence_user_id_length {
            return Err(ClientError::PresenceData(format!(
                "user_id is longer than {} characters",
                limits.max_presence_user_id_length
            )));
        }
        if let Some(info) = &user_info {
            if info.get().len() > limits.max_presence_user_info_bytes {
                return Err(ClientError::PresenceData(format!(
                    "user_info is {} bytes; the limit is {}",
                    info.get().len(),
                    limits.max_presence_user_info_bytes
                )));
            }
        }
        Ok(Member { key, user_id, user_info })
    }

    async fn subscribe(&mut self, subscribe: Subscribe) -> Result<(), ClientError> {
        let channel = ChannelName::parse(&subscribe.channel, self.app.limits.max_channel_name_length)?;
        if self.subscriptions.contains_key(channel.as_str()) {
            return Err(ClientError::AlreadySubscribed(channel.to_string()));
        }
        let member = match channel.kind() {
            ChannelKind::Public => None,
            ChannelKind::ServerToUser => {
                let signed_in_as = self.user.as_ref().map(|u| &*u.id);
                if signed_in_as != channel.server_to_user_id() {
                    return Err(ClientError::NotSignedInAs(channel.to_string()));
                }
                None
            }
            ChannelKind::Private | ChannelKind::PrivateEncrypted => {
                self.check_auth(&channel, &subscribe)?;
                None
            }
            ChannelKind::Presence => {
                self.check_auth(&channel, &subscribe)?;
                Some(self.presence_member(&subscribe)?)
            }
        };
        let user_id = member.as_ref().map(|m| m.key.clone());
        let joining = Joining { app: self.app.clone(), socket: self.socket_id, channel: channel.clone(), member };
        self.state.join(joining).await?;
        self.subscriptions.insert(channel.shared().clone(), Subscription { channel, user_id });
        Ok(())
    }

    async fn unsubscribe(&mut self, channel: &str) {
        // Unsubscribing from a channel this socket is not in is silently ignored.
        if let Some(sub) = self.subscriptions.remove(channel) {
            self.leave(sub).await;
        }
    }

    async fn leave(&self, sub: Subscription) {
        let leaving =
            Leaving { app: self.app.clone(), socket: self.socket_id, channel: sub.channel, user: sub.user_id };
        self.state.leave(leaving).await;
    }

    fn signin(&mut self, auth: &str, user_data: String) -> Result<(), ClientError> {
        if !self.app.user_authentication {
            return Err(ClientError::SigninDisabled);
        }
        let socket_id = self.socket_id.to_string();
        let signed = signin_string(&socket_id, &user_data);
        check(auth, &self.app.key, self.app.secret.expose(), signed).inspect_err(|_| {
            let diagnosis = diagnose::signin(&self.app, &self.other_apps(), &socket_id, &user_data, auth);
            self.state.printer().line(Line::Signature(Box::new(diagnosis)));
        })?;
        let data: UserData<'_> = serde_json::from_str(&user_data)
            .map_err(|e| ClientError::UserData(format!("user_data must be a JSON object with an id ({e})")))?;
        let id: String = data
            .id
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ClientError::UserData("user_data.id must be a non-empty string".into()))?;
        if let Some(current) = &self.user {
            if *current.id != *id {
                return Err(ClientError::SignedInAsOther(current.id.to_string()));
            }
        }
        let id: Arc<str> = id.into();
        let max = self.app.limits.max_watchlist;
        let mut watchlist: Vec<Arc<str>> = data.watchlist.unwrap_or_default().into_iter().map(Into::into).collect();
        let over = watchlist.len() > max;
        watchlist.truncate(max);
        let user_info = data.user_info.map(ToOwned::to_owned);
        let already = self.user.is_some();
        self.user = Some(SignedInUser { id: id.clone(), user_info });
        self.outbox.send(server::signin_success(&user_data));
        if already {
            return Ok(());
        }
        let has_watchlist = !watchlist.is_empty();
        let status = self.state.registry().signin(&self.app, self.socket_id, &self.outbox, id, watchlist);
        if has_watchlist && self.app.watchlist_events {
            let online: Vec<&str> = status.online.iter().map(|s| &**s).collect();
            let offline: Vec<&str> = status.offline.iter().map(|s| &**s).collect();
            self.outbox.send(server::watchlist_events(&online, &offline));
        }
        if over {
            return Err(ClientError::WatchlistLimit(max));
        }
        Ok(())
    }

    async fn client_event(&mut self, event: String, channel: &str, data: String) -> Result<(), ClientError> {
        if !self.app.client_events {
            return Err(ClientError::ClientEventsDisabled);
        }
        let limits = &self.app.limits;
        let Some(sub) = self.subscriptions.get(channel) else {
            let public = ChannelName::parse(channel, limits.max_channel_name_length)
                .is_ok_and(|c| !c.kind().allows_client_events());
            return Err(if public {
                ClientError::ClientEventChannel(channel.to_owned())
            } else {
                ClientError::ClientEventNotSubscribed(channel.to_owned())
            });
        };
        if !sub.channel.kind().allows_client_events() {
            return Err(ClientError::ClientEventChannel(channel.to_owned()));
        }
        let len = event.chars().count();
        if len > limits.max_event_name_length {
            return Err(ClientError::EventNameTooLong { len, max: limits.max_event_name_length });
        }
        if data.len() > limits.max_payload_bytes {
            return Err(ClientError::PayloadTooLarge { len: data.len(), max: limits.max_payload_bytes });
        }
        let (start, count) = &mut self.client_event_window;
        if start.elapsed().as_secs() >= 1 {
            *start = Instant::now();
            *count = 0;
        }
        *count += 1;
        if *count > limits.client_events_per_second {
            return Err(ClientError::ClientEventRateLimit(limits.client_events_per_second));
        }
        let event = Event {
            app_id: self.app.id.clone(),
            channel: sub.channel.clone(),
            name: event.into(),
            data: data.into(),
            except: Some(self.socket_id),
            user_id: sub.user_id.clone(),
            source: Source::Client,
        };
        // Client events are recorded without waiting for the disk.
        let (_, _commit) = self.state.publish(event).await;
        Ok(())
    }

    /// Leaves every channel and forgets the socket. Called once when the socket closes.
    pub async fn end(mut self) {
        let subscriptions: Vec<Subscription> = self.subscriptions.drain().map(|(_, s)| s).collect();
        for sub in subscriptions {
            self.leave(sub).await;
        }
        self.state.registry().disconnect(&self.app.id, self.socket_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_versions() {
        assert_eq!(check_protocol(""), Ok(()));
        assert_eq!(check_protocol("protocol=7&client=js&version=8.6.0&flash=false"), Ok(()));
        assert_eq!(check_protocol("protocol=4"), Ok(()));
        assert_eq!(check_protocol("protocol=3"), Err(HandshakeError::UnsupportedProtocol));
        assert_eq!(check_protocol("protocol=8"), Err(HandshakeError::UnsupportedProtocol));
        assert_eq!(check_protocol("protocol=x"), Err(HandshakeError::UnsupportedProtocol));
    }
}
