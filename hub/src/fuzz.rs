//! Bodies of the hub's fuzz targets in `fuzz/`, compiled only with the hidden `__fuzz` feature.
//! Each takes arbitrary bytes and must never panic.

use wsengine::Message;

use crate::codec::{Codec, Command, NativeCodec, Output, TankCodec};
use crate::model::{Op, run};

/// The native codec's decoder on arbitrary text and binary frames; whatever it decodes, the
/// replies it implies encode to valid JSON.
pub fn native_decode(data: &[u8]) {
    decode(&NativeCodec, data);
}

/// The tank codec's decoder on arbitrary frames.
pub fn tank_decode(data: &[u8]) {
    decode(&TankCodec, data);
}

fn decode(codec: &dyn Codec, data: &[u8]) {
    let messages = [
        Message::Binary(bytes::Bytes::copy_from_slice(data)),
        Message::from(String::from_utf8_lossy(data).into_owned()),
    ];
    for message in &messages {
        let command = codec.decode(message, "default");
        let encoded = match &command {
            Command::Invalid {
                code,
                message,
                reference,
            } => codec.encode(&Output::Error {
                code: *code,
                message,
                channel: None,
                reference: reference.as_ref(),
            }),
            Command::Subscribe { channel, reference, .. } => codec.encode(&Output::Subscribed {
                channel,
                reference: reference.as_ref(),
            }),
            Command::Whisper {
                channel, event, data, ..
            } => codec.encode(&Output::Whisper {
                channel,
                from: "u",
                event,
                data,
            }),
            Command::Publish {
                channel, event, data, ..
            } => codec.encode(&Output::Message(&crate::Publication {
                channel: channel.clone(),
                event: event.clone(),
                data: data.clone(),
                from: None,
            })),
            _ => None,
        };
        if let Some(Message::Text(text)) = encoded {
            if codec.name() == "native" {
                assert!(
                    serde_json::from_str::<serde_json::Value>(text.as_str()).is_ok(),
                    "{text:?}"
                );
            }
        }
    }
}

/// Random operation sequences over the bookkeeping (two bytes an op, at most 256 ops), with
/// the invariants of [`model::run`](crate::model::run).
pub fn bookkeeping(data: &[u8]) {
    let ops: Vec<Op> = data
        .chunks_exact(2)
        .take(256)
        .map(|p| Op::from_bytes(p[0], p[1]))
        .collect();
    run(&ops);
}
