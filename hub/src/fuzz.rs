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

#[cfg(test)]
mod tests {
    /// The bodies on pseudo-random inputs (the fuzzer does this at scale; this keeps them
    /// running on stable Rust).
    #[test]
    fn corpora_replay() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        type Body = fn(&[u8]);
        let targets: [(&str, Body); 3] = [
            ("hub_native_decode", super::native_decode),
            ("hub_tank_decode", super::tank_decode),
            ("hub_bookkeeping", super::bookkeeping),
        ];
        for (target, body) in targets {
            let entries = std::fs::read_dir(root.join(target)).unwrap();
            let mut count = 0;
            for entry in entries {
                body(&std::fs::read(entry.unwrap().path()).unwrap());
                count += 1;
            }
            assert!(count > 0, "empty corpus for {target}");
        }
    }

    #[test]
    fn bodies_survive_random_inputs() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds: [&[u8]; 6] = [
            br#"{"action":"subscribe","channel":"presence-a","ref":{"x":[1]}}"#,
            br#"{"action":"whisper","channel":"private-a","event":"e","data":"\u00e9"}"#,
            br#"{"action":"broadcast","channel":"c","data":[1,{"a":null}]}"#,
            b"sub:news",
            b"unsub:",
            br#"{"type":"heartbeat"}"#,
        ];
        for round in 0..3000 {
            let mut data = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 6) {
                let len = data.len().max(1);
                let at = (next() as usize) % len;
                match next() % 3 {
                    0 if at < data.len() => data[at] = next() as u8,
                    1 => data.insert(at.min(data.len()), next() as u8),
                    _ if at < data.len() => {
                        data.remove(at);
                    }
                    _ => {}
                }
            }
            super::native_decode(&data);
            super::tank_decode(&data);
        }
        for _ in 0..200 {
            let data: Vec<u8> = (0..(next() % 400)).map(|_| next() as u8).collect();
            super::bookkeeping(&data);
        }
    }
}
