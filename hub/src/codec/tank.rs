//! Tank's text protocol (tank-websocket-go-server compatible). See docs/protocol.md.
//!
//! `sub:<topic>`, `unsub:<topic>`, `{"type":"heartbeat"}` (ignored); any other text goes to every
//! other tank client. A publication to a topic arrives as `{"topic":"<topic>","data":"<text>"}`.

use wsengine::Message;

use super::{Codec, Command, Data, ErrorCode, Output, push_json_str, text_message};
use crate::channel::ChannelKey;

/// The tank codec.
#[derive(Clone, Copy, Debug, Default)]
pub struct TankCodec;

impl Codec for TankCodec {
    fn name(&self) -> &str {
        "tank"
    }

    fn decode(&self, message: &Message, app: &str) -> Command {
        let Message::Text(text) = message else {
            return Command::Ignore;
        };
        let text = text.as_str();
        let topic = |name: &str| {
            if name.is_empty() {
                Err(Command::Invalid {
                    code: ErrorCode::BadRequest,
                    message: "empty topic".into(),
                    reference: None,
                })
            } else {
                Ok(ChannelKey::new(app, name))
            }
        };
        if let Some(name) = text.strip_prefix("sub:") {
            return topic(name).map_or_else(
                |e| e,
                |channel| Command::Subscribe {
                    channel,
                    auth: None,
                    reference: None,
                },
            );
        }
        if let Some(name) = text.strip_prefix("unsub:") {
            return topic(name).map_or_else(
                |e| e,
                |channel| Command::Unsubscribe {
                    channel,
                    reference: None,
                },
            );
        }
        if is_heartbeat(text) {
            return Command::Ignore;
        }
        Command::Relay { data: Data::text(text) }
    }

    fn encode(&self, output: &Output<'_>) -> Option<Message> {
        match *output {
            Output::Message(publication) => {
                let data = publication.data.to_text();
                let mut out = Vec::with_capacity(publication.channel.name().len() + data.len() + 24);
                out.extend_from_slice(b"{\"topic\":");
                push_json_str(&mut out, publication.channel.name());
                out.extend_from_slice(b",\"data\":");
                push_json_str(&mut out, data);
                out.push(b'}');
                text_message(out)
            }
            Output::Relay { data } => Some(Message::from(data.to_text())),
            // Tank has no frames for acks, presence, whispers or errors.
            _ => None,
        }
    }
}

fn is_heartbeat(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Heartbeat<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
    }
    text.trim_start().starts_with('{')
        && serde_json::from_str::<Heartbeat<'_>>(text).is_ok_and(|h| h.kind == "heartbeat")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Publication;

    fn decode(text: &str) -> Command {
        TankCodec.decode(&Message::from(text), "default")
    }

    #[test]
    fn decodes_commands() {
        assert!(matches!(decode("sub:news"), Command::Subscribe { channel, .. } if channel.name() == "news"));
        assert!(matches!(decode("unsub:news"), Command::Unsubscribe { channel, .. } if channel.name() == "news"));
        assert!(matches!(decode(r#"{"type":"heartbeat"}"#), Command::Ignore));
        assert!(matches!(decode(r#"{"type":"other"}"#), Command::Relay { .. }));
        assert!(matches!(decode("hello all"), Command::Relay { data } if data.as_text() == Some("hello all")));
        assert!(matches!(decode("sub:"), Command::Invalid { .. }));
        assert!(matches!(
            TankCodec.decode(&Message::Binary(vec![1u8].into()), "default"),
            Command::Ignore
        ));
    }

    #[test]
    fn encodes_topic_messages() {
        let publication = Publication {
            channel: ChannelKey::named("news"),
            event: None,
            data: Data::text("say \"hi\""),
            from: None,
        };
        let message = TankCodec.encode(&Output::Message(&publication)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(message.payload()).unwrap();
        assert_eq!(v, serde_json::json!({"topic":"news","data":"say \"hi\""}));
        let json = Publication {
            data: Data::from_json_str(r#"{"a":1}"#).unwrap(),
            ..publication
        };
        let message = TankCodec.encode(&Output::Message(&json)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(message.payload()).unwrap();
        assert_eq!(v["data"], r#"{"a":1}"#);
    }
}
