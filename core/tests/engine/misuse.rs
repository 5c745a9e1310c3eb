//! Caller mistakes are `ApiMisuse` errors and change nothing.

use std::time::Instant;

use bytes::Bytes;
use wsengine::{Accept, ApiMisuse, CloseCode, Connection, MessageKind, Reject};

use crate::pair::{Pair, config};

#[test]
fn commands_before_the_handshake() {
    let now = Instant::now();
    let mut server = Connection::server(config(), now);
    assert_eq!(server.send("x"), Err(ApiMisuse::NotOpen));
    assert_eq!(server.ping(Bytes::new()), Err(ApiMisuse::NotOpen));
    assert_eq!(server.close(now, CloseCode::NORMAL, ""), Err(ApiMisuse::NotOpen));
    assert_eq!(server.accept(now, Accept::new()), Err(ApiMisuse::NoPendingRequest));
    assert_eq!(
        server.reject(Reject::new(http::StatusCode::FORBIDDEN)),
        Err(ApiMisuse::NoPendingRequest)
    );
    assert!(server.poll_transmit().is_none());
}

#[test]
fn close_arguments_are_checked() {
    let mut pair = Pair::open();
    let now = pair.now;
    for code in [0, 999, 1005, 1006, 1015, 2000, 5000] {
        assert_eq!(
            pair.client.close(now, CloseCode(code), ""),
            Err(ApiMisuse::InvalidCloseCode(code))
        );
    }
    let long = "x".repeat(124);
    assert_eq!(
        pair.client.close(now, CloseCode::NORMAL, &long),
        Err(ApiMisuse::CloseReasonTooLong(124))
    );
    assert!(pair.client.is_open(), "failed commands change nothing");
    pair.client.close(now, CloseCode::NORMAL, &long[..123]).unwrap();
    assert_eq!(
        pair.client.close(now, CloseCode::NORMAL, ""),
        Err(ApiMisuse::AlreadyClosing)
    );
    assert_eq!(pair.client.send("x"), Err(ApiMisuse::AlreadyClosing));
}

#[test]
fn control_payloads_are_bounded() {
    let mut pair = Pair::open();
    assert_eq!(
        pair.client.ping(Bytes::from(vec![0; 126])),
        Err(ApiMisuse::ControlPayloadTooLong(126))
    );
    assert_eq!(
        pair.client.pong(Bytes::from(vec![0; 200])),
        Err(ApiMisuse::ControlPayloadTooLong(200))
    );
    pair.client.ping(Bytes::from(vec![0; 125])).unwrap();
}

#[test]
fn fragments_must_be_in_sequence_and_text_must_be_utf8() {
    let mut pair = Pair::open();
    // A lone invalid byte is refused; the message can go on with valid ones.
    pair.client
        .send_fragment(MessageKind::Text, Bytes::from_static(b"\xE2\x82"), false)
        .unwrap();
    assert_eq!(
        pair.client
            .send_fragment(MessageKind::Text, Bytes::from_static(b"\x28"), false),
        Err(ApiMisuse::InvalidUtf8)
    );
    // Ending in the middle of a character is refused too.
    assert_eq!(
        pair.client.send_fragment(MessageKind::Text, Bytes::new(), true),
        Err(ApiMisuse::InvalidUtf8)
    );
    pair.client
        .send_fragment(MessageKind::Text, Bytes::from_static(b"\xAC"), true)
        .unwrap();
    pair.drive();
    assert_eq!(
        crate::pair::messages(&pair.server_events),
        [wsengine::Message::from("€")]
    );
}
