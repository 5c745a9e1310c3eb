//! permessage-deflate between our client and our server.

use bytes::Bytes;
use proptest::prelude::*;
use wsengine::{ClientRequest, CloseCode, Config, DeflateConfig, Event, Message, MessageKind, PreparedMessage};

use crate::pair::{Pair, closed, config, messages};

fn deflate_config(deflate: DeflateConfig) -> Config {
    let mut config = config();
    config.deflate = Some(deflate);
    config
}

fn compressed_pair(client: DeflateConfig, server: DeflateConfig) -> Pair {
    let mut pair = Pair::with(
        deflate_config(client),
        deflate_config(server),
        ClientRequest::new("ws://h/").unwrap(),
    );
    pair.drive();
    assert!(pair.client.is_open() && pair.server.is_open());
    pair.client_events.clear();
    pair.server_events.clear();
    pair
}

fn negotiated(pair: &Pair) -> Option<wsengine::DeflateParams> {
    let Some(Event::Connected(response)) = pair.client_events.first() else {
        panic!()
    };
    response.negotiated().deflate()
}

#[test]
fn negotiated_and_used_both_ways_at_every_size() {
    let mut pair = Pair::with(
        deflate_config(DeflateConfig::default()),
        deflate_config(DeflateConfig::default()),
        ClientRequest::new("ws://h/").unwrap(),
    );
    pair.drive();
    let params = negotiated(&pair).expect("compression agreed");
    assert!(params.server_no_context_takeover && params.client_no_context_takeover);
    let request = String::from_utf8_lossy(&pair.client_wire).into_owned();
    assert!(
        request.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover"),
        "{request}"
    );
    pair.server_wire.clear();
    for size in [1usize, 31, 32, 1000, 65_536, 1 << 20] {
        let text: String = (0..size).map(|i| char::from(b'a' + (i % 7) as u8)).collect();
        pair.client.send(text.as_str()).unwrap();
        pair.server.send(Bytes::from(text.clone().into_bytes())).unwrap();
        pair.drive();
        assert_eq!(
            messages(&pair.server_events).pop(),
            Some(Message::from(text.as_str())),
            "size {size}"
        );
        assert_eq!(
            messages(&pair.client_events).pop(),
            Some(Message::from(text.into_bytes())),
            "size {size}"
        );
    }
    // Large repetitive messages really were compressed: far fewer bytes than sent.
    assert!(
        pair.server_wire.len() < 200_000,
        "{} bytes on the wire",
        pair.server_wire.len()
    );
    // RSV1 on compressed frames, not on the 1-byte one under the threshold.
    assert_eq!(pair.server_wire[0], 0x82, "below the threshold: plain");
}

#[test]
fn context_takeover_keeps_state_and_shrinks_repeats() {
    let takeover = DeflateConfig::default().with_context_takeover();
    let mut pair = Pair::with(
        deflate_config(takeover.clone()),
        deflate_config(takeover),
        ClientRequest::new("ws://h/").unwrap(),
    );
    pair.drive();
    let params = negotiated(&pair).unwrap();
    assert!(!params.server_no_context_takeover && !params.client_no_context_takeover);
    let message = "the same fairly long sentence, sent again and again and again".repeat(2);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        pair.server_wire.clear();
        pair.server.send(message.as_str()).unwrap();
        pair.drive();
        sizes.push(pair.server_wire.len());
    }
    assert!(sizes[1] < sizes[0] / 2, "repeats reuse the window: {sizes:?}");
    assert_eq!(messages(&pair.client_events).len(), 3);
}

#[test]
fn compression_can_be_declined_per_connection_and_by_config() {
    let mut pair = Pair::with(
        deflate_config(DeflateConfig::default()),
        config(),
        ClientRequest::new("ws://h/").unwrap(),
    );
    pair.drive();
    assert_eq!(negotiated(&pair), None, "server without deflate config declines");
    pair.client.send("x".repeat(100)).unwrap();
    pair.drive();
    assert_eq!(messages(&pair.server_events).len(), 1);

    let mut pair = Pair::with(
        deflate_config(DeflateConfig::default()),
        deflate_config(DeflateConfig::default()),
        ClientRequest::new("ws://h/").unwrap(),
    );
    pair.accept = Some(wsengine::Accept::new().without_compression());
    pair.drive();
    assert_eq!(negotiated(&pair), None);
}

#[test]
fn window_bits_are_negotiated_and_honoured() {
    let mut client = DeflateConfig::default().with_context_takeover();
    client.server_max_window_bits = 10;
    let mut server = DeflateConfig::default().with_context_takeover();
    server.client_max_window_bits = 9;
    let mut pair = compressed_pair(client, server);
    pair.drive();
    let payload: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 17)
        .collect();
    pair.client.send(payload.clone()).unwrap();
    pair.server.send(payload.clone()).unwrap();
    pair.drive();
    assert_eq!(messages(&pair.server_events), [Message::from(payload.clone())]);
    assert_eq!(messages(&pair.client_events), [Message::from(payload)]);
}

#[test]
fn control_frames_are_never_compressed_and_fragments_share_one_stream() {
    let mut pair = compressed_pair(DeflateConfig::default(), DeflateConfig::default());
    pair.client_wire.clear();
    pair.client
        .ping(Bytes::from_static(b"ping payload that is long enough"))
        .unwrap();
    pair.drive();
    assert_eq!(pair.client_wire[0], 0x89, "ping without RSV1");
    let text = "fragmented and compressed ".repeat(50);
    let bytes = text.as_bytes();
    pair.client_wire.clear();
    pair.client
        .send_fragment(MessageKind::Text, Bytes::copy_from_slice(&bytes[..100]), false)
        .unwrap();
    pair.client
        .send_fragment(MessageKind::Text, Bytes::copy_from_slice(&bytes[100..900]), false)
        .unwrap();
    pair.client
        .send_fragment(MessageKind::Text, Bytes::copy_from_slice(&bytes[900..]), true)
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.client_wire[0], 0x41,
        "RSV1 on the first fragment only (text, not final)"
    );
    assert_eq!(messages(&pair.server_events), [Message::from(text.as_str())]);
}

#[test]
fn prepared_messages_are_compressed_once() {
    let mut pair = compressed_pair(DeflateConfig::default(), DeflateConfig::default());
    let prepared = PreparedMessage::with_compression("broadcast ".repeat(100), &DeflateConfig::default());
    pair.server.send_prepared(&prepared).unwrap();
    pair.server.send_prepared(&prepared).unwrap();
    let first = pair.server.poll_transmit().unwrap();
    let second = pair.server.poll_transmit().unwrap();
    assert_eq!(
        first.payload().as_ptr(),
        second.payload().as_ptr(),
        "the same bytes, shared"
    );
    assert_eq!(first.header()[0], 0xC1, "FIN + RSV1 + text");
    pair.client.handle_data(
        pair.now,
        &[first.header(), first.payload(), second.header(), second.payload()].concat(),
    );
    let received: Vec<Event> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(messages(&received), vec![Message::from("broadcast ".repeat(100)); 2]);
    // A connection without compression gets the plain frame, also shared.
    let mut plain = Pair::open();
    plain.server.send_prepared(&prepared).unwrap();
    assert_eq!(plain.server.poll_transmit().unwrap().header()[0], 0x81);
}

#[test]
fn corrupt_compressed_data_closes_with_1007() {
    let mut pair = compressed_pair(DeflateConfig::default(), DeflateConfig::default());
    // RSV1 text frame with a reserved block type, masked with a zero key.
    pair.server.handle_data(pair.now, b"\xC1\x83\0\0\0\0\xff\xff\xff");
    pair.drive();
    assert_eq!(closed(&pair.server_events).code, CloseCode::INVALID_PAYLOAD);
}

#[test]
fn rsv1_on_a_continuation_or_without_agreement_is_a_protocol_error() {
    let mut pair = compressed_pair(DeflateConfig::default(), DeflateConfig::default());
    pair.server.handle_data(pair.now, b"\x41\x80\0\0\0\0\xC0\x80\0\0\0\0");
    pair.drive();
    assert_eq!(closed(&pair.server_events).code, CloseCode::PROTOCOL_ERROR);
    let mut plain = Pair::open();
    plain.server.handle_data(plain.now, b"\xC1\x80\0\0\0\0");
    plain.drive();
    assert_eq!(closed(&plain.server_events).code, CloseCode::PROTOCOL_ERROR);
}

fn arbitrary_deflate() -> impl Strategy<Value = DeflateConfig> {
    (
        any::<bool>(),
        any::<bool>(),
        9u8..=15,
        8u8..=15,
        any::<bool>(),
        0u8..=9,
        1u8..=9,
        0usize..64,
    )
        .prop_map(
            |(snct, cnct, server_bits, client_bits, offer_bits, level, mem_level, threshold)| {
                let mut config = DeflateConfig::default();
                config.server_no_context_takeover = snct;
                config.client_no_context_takeover = cnct;
                config.server_max_window_bits = server_bits;
                config.client_max_window_bits = client_bits;
                config.offer_client_max_window_bits = offer_bits;
                config.level = level;
                config.mem_level = mem_level;
                config.threshold = threshold;
                config
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random parameters on both sides, random messages, random fragmentation, random delivery
    /// chunks: whatever is agreed, every message arrives intact.
    #[test]
    fn round_trips_with_random_parameters(
        client in arbitrary_deflate(),
        server in arbitrary_deflate(),
        payloads in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..3000), 1..5),
        fragment in 1usize..2000,
        chunk in 1usize..500,
    ) {
        let mut pair = Pair::with(deflate_config(client), deflate_config(server), ClientRequest::new("ws://h/").unwrap());
        pair.chunk = chunk;
        pair.drive();
        prop_assert!(pair.client.is_open(), "{:?}", pair.client_events);
        for payload in &payloads {
            let pieces: Vec<&[u8]> = payload.chunks(fragment).collect();
            if pieces.len() <= 1 {
                pair.client.send(payload.clone()).unwrap();
            } else {
                for (i, piece) in pieces.iter().enumerate() {
                    pair.client.send_fragment(MessageKind::Binary, Bytes::copy_from_slice(piece), i + 1 == pieces.len()).unwrap();
                }
            }
            pair.server.send(payload.clone()).unwrap();
        }
        pair.drive();
        let expected: Vec<Message> = payloads.iter().map(|p| Message::from(p.clone())).collect();
        prop_assert_eq!(messages(&pair.server_events), expected.clone());
        prop_assert_eq!(messages(&pair.client_events), expected);
    }
}
