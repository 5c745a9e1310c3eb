//! The native JSON protocol (go-ws compatible). See docs/protocol.md.
//!
//! Client to server: `{"action", "channel", "event", "data", "ref", "auth"}`; server to client:
//! objects that always carry `type`.

use serde::Deserialize;
use serde_json::value::RawValue;
use wsengine::Message;

use super::{Codec, Command, Data, ErrorCode, Output, Reference, push_json_str, text_message};
use crate::channel::ChannelKey;

/// The native JSON codec.
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeCodec;

#[derive(Deserialize)]
struct Inbound<'a> {
    #[serde(borrow)]
    action: Option<&'a RawValue>,
    channel: Option<String>,
    event: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(rename = "ref", borrow)]
    reference: Option<&'a RawValue>,
    auth: Option<String>,
}

impl Codec for NativeCodec {
    fn name(&self) -> &str {
        "native"
    }

    fn decode(&self, message: &Message, app: &str) -> Command {
        let inbound: Inbound<'_> = match serde_json::from_slice(message.payload()) {
            Ok(inbound) => inbound,
            Err(error) => return invalid(ErrorCode::BadRequest, format!("malformed JSON: {error}"), None),
        };
        let reference = inbound.reference.map(Reference::from_raw);
        let action = inbound
            .action
            .and_then(|raw| serde_json::from_str::<&str>(raw.get()).ok());
        let Some(action) = action else {
            return invalid(ErrorCode::BadRequest, "missing action".into(), reference);
        };
        let channel = match inbound.channel.as_deref() {
            Some("") | None => None,
            Some(name) => Some(ChannelKey::new(app, name)),
        };
        let data = inbound.data.map(Data::from_raw).unwrap_or_else(|| Data::text(""));
        match (action, channel) {
            ("ping", _) => Command::Ping { reference },
            ("subscribe", Some(channel)) => Command::Subscribe {
                channel,
                auth: inbound.auth,
                reference,
            },
            ("unsubscribe", Some(channel)) => Command::Unsubscribe { channel, reference },
            ("broadcast", Some(channel)) => Command::Publish {
                channel,
                event: inbound.event,
                data,
                reference,
            },
            ("whisper", Some(channel)) => match inbound.event {
                Some(event) if !event.is_empty() => Command::Whisper {
                    channel,
                    event,
                    data,
                    reference,
                },
                _ => invalid(ErrorCode::BadRequest, "whisper needs an event".into(), reference),
            },
            ("presence", Some(channel)) => Command::Members { channel, reference },
            ("subscribe" | "unsubscribe" | "broadcast" | "whisper" | "presence", None) => {
                invalid(ErrorCode::BadRequest, format!("{action} needs a channel"), reference)
            }
            (other, _) => invalid(ErrorCode::UnknownAction, format!("unknown action {other:?}"), reference),
        }
    }

    fn encode(&self, output: &Output<'_>) -> Option<Message> {
        let mut out = Vec::with_capacity(96);
        match *output {
            Output::Message(publication) => {
                open(&mut out, "message");
                field_str(&mut out, "channel", publication.channel.name());
                if let Some(event) = &publication.event {
                    field_str(&mut out, "event", event);
                }
                field_data(&mut out, "data", &publication.data);
                if let Some(from) = &publication.from {
                    field_str(&mut out, "from", from);
                }
            }
            Output::Whisper {
                channel,
                from,
                event,
                data,
            } => {
                open(&mut out, "whisper");
                field_str(&mut out, "channel", channel.name());
                field_str(&mut out, "from", from);
                field_str(&mut out, "event", event);
                field_data(&mut out, "data", data);
            }
            Output::PresenceJoin { channel, member } => {
                open(&mut out, "presence");
                field_str(&mut out, "channel", channel.name());
                field_str(&mut out, "event", "join");
                field_str(&mut out, "user_id", &member.user_id);
                if let Some(info) = &member.info {
                    field_data(&mut out, "user_info", info);
                }
            }
            Output::PresenceLeave { channel, user_id } => {
                open(&mut out, "presence");
                field_str(&mut out, "channel", channel.name());
                field_str(&mut out, "event", "leave");
                field_str(&mut out, "user_id", user_id);
            }
            Output::PresenceList {
                channel,
                members,
                reference,
            } => {
                open(&mut out, "presence");
                field_str(&mut out, "channel", channel.name());
                field_str(&mut out, "event", "list");
                out.extend_from_slice(b",\"users\":[");
                for (i, member) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    push_json_str(&mut out, &member.user_id);
                }
                out.extend_from_slice(b"],\"members\":[");
                for (i, member) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"user_id\":");
                    push_json_str(&mut out, &member.user_id);
                    if let Some(info) = &member.info {
                        field_data(&mut out, "user_info", info);
                    }
                    out.push(b'}');
                }
                out.push(b']');
                field_raw(&mut out, "count", members.len().to_string().as_str());
                field_ref(&mut out, reference);
            }
            Output::Subscribed { channel, reference } => {
                open(&mut out, "subscribed");
                field_str(&mut out, "channel", channel.name());
                field_ref(&mut out, reference);
            }
            Output::Unsubscribed { channel, reference } => {
                open(&mut out, "unsubscribed");
                field_str(&mut out, "channel", channel.name());
                field_ref(&mut out, reference);
            }
            Output::Ack { reference } => {
                open(&mut out, "ack");
                field_ref(&mut out, Some(reference));
            }
            Output::Pong { reference } => {
                open(&mut out, "pong");
                field_ref(&mut out, reference);
            }
            Output::Error {
                code,
                message,
                channel,
                reference,
            } => {
                open(&mut out, "error");
                field_str(&mut out, "code", code.as_str());
                field_str(&mut out, "error", message);
                if let Some(channel) = channel {
                    field_str(&mut out, "channel", channel.name());
                }
                field_ref(&mut out, reference);
            }
            // Tank's relay has no native form: native clients publish to channels.
            Output::Relay { .. } => return None,
        }
        out.push(b'}');
        text_message(out)
    }
}

fn invalid(code: ErrorCode, message: String, reference: Option<Reference>) -> Command {
    Command::Invalid {
        code,
        message,
        reference,
    }
}

fn open(out: &mut Vec<u8>, kind: &str) {
    out.extend_from_slice(b"{\"type\":");
    push_json_str(out, kind);
}

fn field_name(out: &mut Vec<u8>, name: &str) {
    out.push(b',');
    push_json_str(out, name);
    out.push(b':');
}

fn field_str(out: &mut Vec<u8>, name: &str, value: &str) {
    field_name(out, name);
    push_json_str(out, value);
}

fn field_raw(out: &mut Vec<u8>, name: &str, json: &str) {
    field_name(out, name);
    out.extend_from_slice(json.as_bytes());
}

fn field_data(out: &mut Vec<u8>, name: &str, data: &Data) {
    field_name(out, name);
    data.write_json(out);
}

fn field_ref(out: &mut Vec<u8>, reference: Option<&Reference>) {
    if let Some(reference) = reference {
        field_raw(out, "ref", reference.as_json());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Member, Publication};

    fn decode(text: &str) -> Command {
        NativeCodec.decode(&Message::from(text), "default")
    }

    fn encode(output: Output<'_>) -> serde_json::Value {
        let message = NativeCodec.encode(&output).unwrap();
        serde_json::from_slice(message.payload()).unwrap()
    }

    #[test]
    fn decodes_every_action() {
        assert!(matches!(
            decode(r#"{"action":"subscribe","channel":"news","ref":7}"#),
            Command::Subscribe { channel, reference: Some(r), .. } if channel.name() == "news" && r.as_json() == "7"
        ));
        assert!(matches!(
            decode(r#"{"action":"unsubscribe","channel":"a"}"#),
            Command::Unsubscribe { .. }
        ));
        assert!(matches!(
            decode(r#"{"action":"broadcast","channel":"a","event":"e","data":{"x":1}}"#),
            Command::Publish { data, .. } if data.to_json() == r#"{"x":1}"#
        ));
        assert!(matches!(
            decode(r#"{"action":"whisper","channel":"private-a","event":"typing","data":"hi"}"#),
            Command::Whisper { event, data, .. } if event == "typing" && data.as_text() == Some("hi")
        ));
        assert!(matches!(
            decode(r#"{"action":"presence","channel":"presence-a"}"#),
            Command::Members { .. }
        ));
        assert!(matches!(
            decode(r#"{"action":"ping","ref":"r1"}"#),
            Command::Ping { reference: Some(_) }
        ));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for text in [
            "",
            "nope",
            "[]",
            "{}",
            r#"{"action":5}"#,
            r#"{"action":"subscribe"}"#,
            r#"{"action":"whisper","channel":"private-a"}"#,
            r#"{"action":"fly","ref":{"a":[1]}}"#,
        ] {
            assert!(matches!(decode(text), Command::Invalid { .. }), "{text}");
        }
        assert!(matches!(
            decode(r#"{"action":"fly","ref":{"a":[1]}}"#),
            Command::Invalid { code: ErrorCode::UnknownAction, reference: Some(r), .. } if r.as_json() == r#"{"a":[1]}"#
        ));
    }

    #[test]
    fn encodes_with_type_and_fields() {
        let publication = Publication {
            channel: ChannelKey::named("news"),
            event: Some("e".into()),
            data: Data::from_json_str(r#"{"k":[1,2]}"#).unwrap(),
            from: Some("u1".into()),
        };
        let v = encode(Output::Message(&publication));
        assert_eq!(
            v,
            serde_json::json!({"type":"message","channel":"news","event":"e","data":{"k":[1,2]},"from":"u1"})
        );
        let r = Reference(r#""x""#.into());
        let v = encode(Output::Error {
            code: ErrorCode::Forbidden,
            message: "no \"way\"",
            channel: Some(&publication.channel),
            reference: Some(&r),
        });
        assert_eq!(
            v,
            serde_json::json!({"type":"error","code":"forbidden","error":"no \"way\"","channel":"news","ref":"x"})
        );
        let members = [
            Member {
                user_id: "a".into(),
                info: None,
            },
            Member {
                user_id: "b".into(),
                info: Some(Data::text("B")),
            },
        ];
        let v = encode(Output::PresenceList {
            channel: &publication.channel,
            members: &members,
            reference: None,
        });
        assert_eq!(v["users"], serde_json::json!(["a", "b"]));
        assert_eq!(v["count"], 2);
        assert_eq!(v["members"][1]["user_info"], "B");
    }
}
