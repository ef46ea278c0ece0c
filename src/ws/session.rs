//! `Session`: the per-socket state machine. A parsed `ClientMessage` comes in; the session checks
//! it (auth, limits, membership), updates the registry, publishes through `AppState`, and queues
//! replies on the socket's own outbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::apps::App;
use crate::auth::channel::{check, signin_string, subscription_string, AuthError};
use crate::auth::diagnose;
use crate::broker::Joining;
use crate::error::ClientError;
use crate::event::{Event, Source};
use crate::printer::Line;
use crate::protocol::{server, ChannelKind, ChannelName, ClientMessage, SocketId, Subscribe};
use crate::registry::{Left, Member, Outbox};
use crate::state::AppState;

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
        // Through the broker: on Redis the socket is registered in order with the cluster's
        // presence announcements, and the roster and counts are the whole cluster's.
        let joining = Joining {
            app: self.app.clone(),
            socket: self.socket_id,
            outbox: self.outbox.clone(),
            channel: channel.clone(),
            member,
        };
        // member_added has reached the other subscribers already (in order with this
        // subscribe); it is left in `joined` for the webhook.
        let joined = self.state.broker().subscribe(joining).await?;
        let webhooks = self.state.webhooks();
        if joined.occupied {
            webhooks.channel_occupied(&self.app, channel.as_str());
        }
        if let (Some(_), Some(user)) = (&joined.member_added, &user_id) {
            webhooks.member_added(&self.app, channel.as_str(), user);
        }
        if joined.cache_miss {
            webhooks.cache_miss(&self.app, channel.as_str());
        }
        if joined.subscription_count.is_some() {
            webhooks.subscription_count(&self.app, channel.as_str(), joined.subscribers);
        }
        self.subscriptions.insert(channel.shared().clone(), Subscription { channel: channel.clone(), user_id });
        if let Some(frame) = joined.subscription_count {
            self.state.announce(&self.app.id, &channel, frame, None).await;
        }
        Ok(())
    }

    async fn unsubscribe(&mut self, channel: &str) {
        // Unsubscribing from a channel this socket is not in is silently ignored.
        let Some(sub) = self.subscriptions.remove(channel) else {
            return;
        };
        if let Some(left) = self.state.registry().unsubscribe(&self.app, self.socket_id, &sub.channel) {
            self.announce_left(left, sub.user_id.as_ref()).await;
        }
    }

    /// Tells the others (member_removed, subscription_count) and reports the webhooks;
    /// `user_id` is the presence user this socket was subscribed as.
    async fn announce_left(&self, left: Left, user_id: Option<&Arc<str>>) {
        let (left, member_removed_sent) =
            match self.state.broker().leave(&self.app.id, &left.channel, user_id.map(|u| &**u)).await {
                Some(cluster) => (cluster.apply(left), cluster.member_removed_sent),
                None => (left, false),
            };
        let webhooks = self.state.webhooks();
        if let (Some(_), Some(user)) = (&left.member_removed, user_id) {
            webhooks.member_removed(&self.app, left.channel.as_str(), user);
        }
        if left.vacated {
            webhooks.channel_vacated(&self.app, left.channel.as_str());
        }
        if left.subscription_count.is_some() {
            webhooks.subscription_count(&self.app, left.channel.as_str(), left.subscribers);
        }
        if let Some(frame) = left.member_removed.filter(|_| !member_removed_sent) {
            self.state.announce(&self.app.id, &left.channel, frame, None).await;
        }
        if let Some(frame) = left.subscription_count {
            self.state.announce(&self.app.id, &left.channel, frame, None).await;
        }
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
            if let Some(left) = self.state.registry().unsubscribe(&self.app, self.socket_id, &sub.channel) {
                self.announce_left(left, sub.user_id.as_ref()).await;
            }
        }
        self.state.registry().disconnect(&self.app.id, self.socket_id);
    }
}
