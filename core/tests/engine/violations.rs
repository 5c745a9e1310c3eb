//! A peer that breaks the rules gets the right close code, and nothing panics.

use wsengine::{CloseCause, CloseCode, Config, Event, ProtocolError};

use crate::pair::{Pair, closed, config, drain};

/// Feeds raw bytes to an open server and returns the close code it sent and reported.
fn server_closes_with(config: Config, wire: &[u8]) -> (CloseCode, CloseCause) {
    let mut pair = Pair::with(
        crate::pair::config(),
        config,
        wsengine::ClientRequest::new("ws://h/").unwrap(),
    );
    pair.drive();
    pair.server_events.clear();
    let _ = drain(&mut pair.server);
    pair.server.handle_data(pair.now, wire);
    let mut events = Vec::new();
    while let Some(event) = pair.server.poll_event() {
        events.push(event);
    }
    let info = closed(&events).clone();
    let sent = drain(&mut pair.server);
    assert_eq!(sent[0], 0x88, "a close frame was sent");
    assert_eq!(
        u16::from_be_bytes([sent[2], sent[3]]),
        info.code.0,
        "the same code on the wire"
    );
    assert!(
        pair.server.close_expected(),
        "the server closes the transport after failing"
    );
    (info.code, info.cause)
}

#[test]
fn protocol_violations_close_with_1002() {
    let cases: &[&[u8]] = &[
        b"\x81\x00",                                         // unmasked client frame
        b"\xC1\x80\0\0\0\0",                                 // RSV1 without an extension
        b"\x83\x80\0\0\0\0",                                 // reserved opcode
        b"\x09\x80\0\0\0\0",                                 // fragmented ping
        b"\x89\xFE\x00\x7E\0\0\0\0",                         // ping over 125 bytes
        b"\x80\x80\0\0\0\0",                                 // continuation with nothing to continue
        b"\x01\x80\0\0\0\0\x81\x80\0\0\0\0",                 // new message inside a fragmented one
        b"\x88\x81\0\0\0\0\x03",                             // one-byte close payload
        b"\x88\x82\0\0\0\0\x03\xED",                         // close code 1005 on the wire
        b"\x82\xFF\x00\x00\x00\x00\x00\x00\x00\x10\0\0\0\0", // non-minimal 64-bit length
    ];
    for wire in cases {
        let (code, cause) = server_closes_with(config(), wire);
        assert_eq!(code, CloseCode::PROTOCOL_ERROR, "{wire:x?}");
        assert!(matches!(cause, CloseCause::Protocol(_)));
    }
}

#[test]
fn invalid_utf8_closes_with_1007() {
    for wire in [&b"\x81\x82\0\0\0\0\xC3\x28"[..], b"\x88\x84\0\0\0\0\x03\xE8\xFF\xFE"] {
        assert_eq!(server_closes_with(config(), wire).0, CloseCode::INVALID_PAYLOAD);
    }
}

#[test]
fn limits_close_with_1009() {
    let mut small = config();
    small.max_frame_size = 1000;
    small.max_message_size = 1500;
    // A frame header announcing 2000 bytes: refused before any payload.
    let (code, cause) = server_closes_with(small.clone(), b"\x82\xFE\x07\xD0\0\0\0\0");
    assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);
    assert_eq!(
        cause,
        CloseCause::Protocol(ProtocolError::FrameTooLarge { len: 2000, limit: 1000 })
    );
    let mut two = b"\x02\xFE\x03\xE8\0\0\0\0".to_vec();
    two.extend([0u8; 1000]);
    two.extend(b"\x80\xFE\x03\xE8\0\0\0\0");
    assert_eq!(server_closes_with(small, &two).0, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn garbage_never_panics_and_always_ends_in_one_final_event() {
    // A deterministic stream of pseudo-random bytes after a valid handshake.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..300 {
        let mut pair = Pair::open();
        let len = 1 + round % 97;
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        pair.server.handle_data(pair.now, &garbage);
        pair.server.handle_eof(pair.now);
        let events: Vec<Event> = std::iter::from_fn(|| pair.server.poll_event()).collect();
        let finals = events.iter().filter(|e| matches!(e, Event::Closed(_))).count();
        assert_eq!(finals, 1, "{garbage:x?} gave {events:?}");
        assert!(matches!(events.last(), Some(Event::Closed(_))));
        assert!(pair.server.close_expected() || !drain(&mut pair.server).is_empty());
    }
}

#[test]
fn bad_handshakes_get_http_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 Upgrade Required\r\n"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 7\r\n\r\n",
            "Sec-websocket-version: 13\r\n",
        ),
    ];
    for (request, expected) in cases {
        let mut server = wsengine::Connection::server(config(), std::time::Instant::now());
        server.handle_data(std::time::Instant::now(), request);
        assert!(matches!(server.poll_event(), Some(Event::HandshakeFailed(_))));
        let response = String::from_utf8(drain(&mut server)).unwrap();
        assert!(
            response.to_ascii_lowercase().contains(&expected.to_ascii_lowercase()),
            "{expected:?} not in {response:?}"
        );
        assert!(server.close_expected());
    }
}
