//! Property tests: round trips and invariants over random inputs.

use bytes::Bytes;
use proptest::prelude::*;
use wsengine::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, apply_mask, apply_mask_bytewise};
use wsengine::{ClientRequest, Config, Event, Message, MessageKind};

use crate::pair::{Pair, config, messages};

fn header() -> impl Strategy<Value = FrameHeader> {
    (
        any::<bool>(),
        0u8..8,
        0u8..16,
        proptest::option::of(any::<[u8; 4]>()),
        0u64..(1 << 63),
    )
        .prop_map(|(fin, rsv, op, mask, len)| FrameHeader {
            fin,
            rsv: rsv << 4,
            opcode: OpCode::from_bits(op),
            mask,
            payload_len: len,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn header_encode_decode_round_trip(header in header(), extra in proptest::collection::vec(any::<u8>(), 0..4)) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut buf);
        let mut wire = buf[..n].to_vec();
        wire.extend_from_slice(&extra);
        prop_assert_eq!(FrameHeader::parse(&wire), Ok(Some((header, n))));
    }

    #[test]
    fn header_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        if let Ok(Some((header, n))) = FrameHeader::parse(&bytes) {
            prop_assert!(n <= bytes.len());
            prop_assert_eq!(header.encoded_len(), n);
        }
    }

    #[test]
    fn mask_is_an_involution_and_matches_the_byte_loop(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        offset in 0usize..4,
    ) {
        let mut fast = data.clone();
        let mut slow = data.clone();
        apply_mask(&mut fast, key, offset);
        apply_mask_bytewise(&mut slow, key, offset);
        prop_assert_eq!(&fast, &slow);
        apply_mask(&mut fast, key, offset);
        prop_assert_eq!(fast, data);
    }

    /// A message sent in random fragments and delivered in random chunk sizes arrives intact,
    /// whole or fragment by fragment.
    #[test]
    fn fragmentation_preserves_messages(
        text in "\\PC{0,200}",
        binary in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(0usize..2000, 0..8),
        chunk in 1usize..300,
        deliver_fragments in any::<bool>(),
    ) {
        let mut server_config = config();
        server_config.deliver_fragments = deliver_fragments;
        let mut pair = Pair::with(config(), server_config, ClientRequest::new("ws://h/").unwrap());
        pair.chunk = chunk;
        pair.drive();
        pair.server_events.clear();
        for (kind, payload) in [(MessageKind::Text, text.as_bytes().to_vec()), (MessageKind::Binary, binary.clone())] {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (payload.len() + 1)).collect();
            points.sort_unstable();
            let mut start = 0;
            for point in points {
                pair.client.send_fragment(kind, Bytes::copy_from_slice(&payload[start..point]), false).unwrap();
                start = point;
            }
            pair.client.send_fragment(kind, Bytes::copy_from_slice(&payload[start..]), true).unwrap();
        }
        pair.drive();
        let expected = [Message::from(text.as_str()), Message::from(binary)];
        if deliver_fragments {
            let mut rebuilt: Vec<(MessageKind, Vec<u8>)> = Vec::new();
            for event in &pair.server_events {
                if let Event::Fragment(f) = event {
                    if f.is_first {
                        rebuilt.push((f.kind, Vec::new()));
                    }
                    rebuilt.last_mut().unwrap().1.extend_from_slice(&f.data);
                }
            }
            let finals = pair.server_events.iter().filter(|e| matches!(e, Event::Fragment(f) if f.is_final)).count();
            prop_assert_eq!(finals, 2);
            let got: Vec<(MessageKind, Vec<u8>)> =
                expected.iter().map(|m| (m.kind(), m.payload().to_vec())).collect();
            prop_assert_eq!(rebuilt, got);
        } else {
            prop_assert_eq!(messages(&pair.server_events), expected.to_vec());
        }
    }

    /// Whatever bytes a peer sends, and however they are split, the server never panics and the
    /// connection ends with exactly one final event once the stream ends.
    #[test]
    fn arbitrary_input_ends_in_one_final_event(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
        chunk in 1usize..16,
    ) {
        let mut pair = Pair::open();
        for frame in &frames {
            for piece in frame.chunks(chunk) {
                pair.server.handle_data(pair.now, piece);
            }
        }
        pair.server.handle_eof(pair.now);
        let events: Vec<Event> = std::iter::from_fn(|| pair.server.poll_event()).collect();
        let finals = events.iter().filter(|e| matches!(e, Event::Closed(_) | Event::HandshakeFailed(_))).count();
        prop_assert_eq!(finals, 1);
        prop_assert!(matches!(events.last(), Some(Event::Closed(_))));
        let _ = crate::pair::drain(&mut pair.server);
        prop_assert!(pair.server.close_expected());
        prop_assert!(pair.server.send("after").is_err(), "nothing is sent after the end");
    }

    /// The same for the opening handshake: whatever the request bytes, end of stream before a
    /// decision ends in exactly one `HandshakeFailed`, the last event.
    #[test]
    fn arbitrary_requests_end_in_one_failure(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let now = std::time::Instant::now();
        let mut server = wsengine::Connection::server(Config::default(), now);
        server.handle_data(now, &bytes);
        server.handle_eof(now);
        let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
        let finals = events.iter().filter(|e| matches!(e, Event::Closed(_) | Event::HandshakeFailed(_))).count();
        prop_assert_eq!(finals, 1, "{:?}", events);
        prop_assert!(matches!(events.last(), Some(Event::HandshakeFailed(_))));
        prop_assert!(server.is_closed());
    }

    /// A valid request with random bytes pipelined behind it, then end of stream before the
    /// application decides: one `Request`, then exactly one `HandshakeFailed`.
    #[test]
    fn undecided_request_ends_in_one_failure(trailing in proptest::collection::vec(any::<u8>(), 0..64)) {
        let now = std::time::Instant::now();
        let mut server = wsengine::Connection::server(Config::default(), now);
        let mut bytes = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec();
        bytes.extend_from_slice(&trailing);
        server.handle_data(now, &bytes);
        server.handle_eof(now);
        let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
        prop_assert!(matches!(events.first(), Some(Event::Request(_))), "{:?}", events);
        let finals = events.iter().filter(|e| matches!(e, Event::Closed(_) | Event::HandshakeFailed(_))).count();
        prop_assert_eq!(finals, 1, "{:?}", events);
        prop_assert!(matches!(events.last(), Some(Event::HandshakeFailed(_))));
    }
}
