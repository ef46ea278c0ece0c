//! `Envelope`: one delivery addressed to an app, as it travels between nodes, and its wire
//! form: the JSON text a node PUBLISHes on Redis, stamped with the sending node's id so the
//! sender can drop its own echo.

use serde::{Deserialize, Serialize};

use crate::apps::AppId;
use crate::protocol::{ChannelName, ChannelNameError, Frame, SocketId};
use crate::registry::{CachedEvent, Delivery};

/// A delivery for one app.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The app.
    pub app_id: AppId,
    /// What to deliver.
    pub delivery: Delivery,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    node: String,
    app: String,
    #[serde(flatten)]
    what: What,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum What {
    Event {
        channel: String,
        frame: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache: Option<(String, String)>,
    },
    TerminateUser {
        user: String,
    },
}

/// A message from another node that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not the JSON we send.
    #[error("not an envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// A channel name no node would send.
    #[error(transparent)]
    Channel(#[from] ChannelNameError),
    /// A socket id no node would send.
    #[error("bad socket id {0:?} in an envelope")]
    SocketId(String),
}

impl Envelope {
    /// The wire form, sent by node `node`.
    pub fn to_wire(&self, node: &str) -> String {
        let what = match &self.delivery {
            Delivery::Event { channel, frame, except, cache } => What::Event {
                channel: channel.to_string(),
                frame: frame.as_str().to_owned(),
                except: except.map(|s| s.to_string()),
                cache: cache.as_ref().map(|c| (c.event.to_string(), c.data.to_string())),
            },
            Delivery::TerminateUser { user_id } => What::TerminateUser { user: user_id.to_string() },
        };
        // Strings and options of strings only: serialising cannot fail.
        serde_json::to_string(&Wire { node: node.to_owned(), app: self.app_id.to_string(), what }).expect("plain JSON")
    }

    /// Reads a wire form; returns the sending node's id and the envelope.
    ///
    /// # Errors
    /// [`WireError`] when the message is not one a node sends.
    pub fn from_wire(text: &[u8]) -> Result<(String, Envelope), WireError> {
        let wire: Wire = serde_json::from_slice(text)?;
        let delivery = match wire.what {
            What::Event { channel, frame, except, cache } => Delivery::Event {
                // The sending node checked the name against the app's limit already.
                channel: ChannelName::parse(&channel, usize::MAX)?,
                frame: Frame::from(frame),
                except: match except {
                    None => None,
                    Some(text) => SocketId::parse(&text).map_err(|_| WireError::SocketId(text.clone()))?,
                },
                cache: cache.map(|(event, data)| CachedEvent { event: event.into(), data: data.into() }),
            },
            What::TerminateUser { user } => Delivery::TerminateUser { user_id: user.into() },
        };
        Ok((wire.node, Envelope { app_id: AppId::new(wire.app), delivery }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::server;

    #[test]
    fn an_event_survives_the_wire_with_its_exclusion_and_cache() {
        let channel = ChannelName::parse("cache-ticker", 164).unwrap();
        let frame = server::event("cache-ticker", "tick", "{\"n\":1}", None);
        let envelope = Envelope {
            app_id: AppId::new("7"),
            delivery: Delivery::Event {
                channel,
                frame: frame.clone(),
                except: Some(SocketId::new(12, 34)),
                cache: Some(CachedEvent { event: "tick".into(), data: "{\"n\":1}".into() }),
            },
        };
        let (node, back) = Envelope::from_wire(envelope.to_wire("n1").as_bytes()).unwrap();
        assert_eq!(node, "n1");
        assert_eq!(back.app_id.as_str(), "7");
        let Delivery::Event { channel, frame: got, except, cache } = back.delivery else { panic!("an event") };
        assert_eq!(channel.as_str(), "cache-ticker");
        assert_eq!(got.as_str(), frame.as_str());
        assert_eq!(except, Some(SocketId::new(12, 34)));
        assert_eq!(cache.unwrap().data.as_ref(), "{\"n\":1}");
    }

    #[test]
    fn terminate_user_survives_the_wire_and_garbage_is_an_error() {
        let envelope = Envelope { app_id: AppId::new("1"), delivery: Delivery::TerminateUser { user_id: "u1".into() } };
        let (_, back) = Envelope::from_wire(envelope.to_wire("n").as_bytes()).unwrap();
        assert!(matches!(back.delivery, Delivery::TerminateUser { user_id } if &*user_id == "u1"));
        assert!(Envelope::from_wire(b"{\"nope\":1}").is_err());
    }
}
