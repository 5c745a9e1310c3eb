//! Handshakes, messages and close handshakes between our client and our server.

use bytes::Bytes;
use http::StatusCode;
use wsengine::{
    Accept, ClientRequest, CloseCause, CloseCode, Config, Event, HandshakeError, Initiator, Message, MessageKind,
    Reject,
};

use crate::pair::{Pair, closed, config, messages};

#[test]
fn echo_both_ways_whole_and_one_byte_at_a_time() {
    for chunk in [usize::MAX, 1, 7] {
        let mut pair = Pair::new();
        pair.chunk = chunk;
        pair.drive();
        assert!(matches!(pair.client_events[0], Event::Connected(_)), "chunk {chunk}");
        assert!(matches!(&pair.server_events[0], Event::Request(r) if r.path() == "/chat"));
        pair.client.send("héllo ✓").unwrap();
        pair.client.send(vec![0u8, 1, 2, 255]).unwrap();
        pair.server
            .send(Message::Binary(Bytes::from(vec![9u8; 70_000])))
            .unwrap();
        pair.drive();
        assert_eq!(
            messages(&pair.server_events),
            [Message::from("héllo ✓"), Message::from(vec![0u8, 1, 2, 255])]
        );
        assert_eq!(messages(&pair.client_events), [Message::from(vec![9u8; 70_000])]);
    }
}

#[test]
fn subprotocol_is_chosen_from_the_offer() {
    let request = ClientRequest::new("ws://h/").unwrap().protocol("v1").protocol("v2");
    let mut pair = Pair::with(config(), config(), request);
    pair.accept = None;
    pair.drive();
    let Some(Event::Request(request)) = pair.server_events.first() else {
        panic!()
    };
    assert_eq!(request.protocols(), ["v1", "v2"]);
    assert!(pair.server.accept(pair.now, Accept::new().protocol("v3")).is_err());
    pair.server.accept(pair.now, Accept::new().protocol("v2")).unwrap();
    pair.drive();
    assert_eq!(pair.server.protocol(), Some("v2"));
    assert_eq!(pair.client.protocol(), Some("v2"));
    let Some(Event::Connected(response)) = pair.client_events.first() else {
        panic!()
    };
    assert_eq!(response.protocol(), Some("v2"));
}

#[test]
fn rejection_reaches_the_client_with_its_status() {
    let mut pair = Pair::new();
    pair.accept = None;
    pair.drive();
    pair.server
        .reject(Reject::new(StatusCode::UNAUTHORIZED).body("token expired"))
        .unwrap();
    pair.drive();
    assert!(matches!(
        pair.server_events.last(),
        Some(Event::HandshakeFailed(HandshakeError::Rejected(
            StatusCode::UNAUTHORIZED
        )))
    ));
    assert!(matches!(
        pair.client_events.last(),
        Some(Event::HandshakeFailed(HandshakeError::UnexpectedStatus(
            StatusCode::UNAUTHORIZED
        )))
    ));
    assert!(String::from_utf8_lossy(&pair.server_wire).ends_with("\r\n\r\ntoken expired"));
    assert_eq!(pair.is_transport_closed(), (true, true));
}

#[test]
fn client_initiated_close() {
    let mut pair = Pair::open();
    pair.client.send("last words").unwrap();
    pair.client.close(pair.now, CloseCode(4001), "bye").unwrap();
    assert!(pair.client.send("too late").is_err());
    pair.drive();
    assert_eq!(messages(&pair.server_events), [Message::from("last words")]);
    let server = closed(&pair.server_events);
    assert_eq!(
        (server.code, server.reason.as_str(), server.clean),
        (CloseCode(4001), "bye", true)
    );
    assert_eq!(server.initiator(), Initiator::Remote);
    let client = closed(&pair.client_events);
    assert_eq!(
        (client.code, client.cause.clone(), client.clean),
        (CloseCode(4001), CloseCause::LocalClose, true)
    );
    assert_eq!(client.initiator(), Initiator::Local);
    // The server closed its transport first; the client followed on end of stream.
    assert_eq!(pair.is_transport_closed(), (true, true));
    assert!(pair.client.close_expected() && pair.server.close_expected());
}

/// 1012–1014 are registered at IANA after RFC 6455: a peer may send them, and so may we.
#[test]
fn service_restart_try_again_and_bad_gateway_close_cleanly() {
    for code in [1012u16, 1013, 1014] {
        // Sent by us, given as a plain number.
        let mut pair = Pair::open();
        pair.server.close(pair.now, code, "later").unwrap();
        pair.drive();
        let client = closed(&pair.client_events);
        assert_eq!(
            (client.code, client.reason.as_str(), client.clean),
            (CloseCode(code), "later", true)
        );
        assert_eq!(closed(&pair.server_events).code, CloseCode(code));

        // Received from a peer as raw bytes: accepted and echoed, not failed with 1002.
        let mut pair = Pair::open();
        let [hi, lo] = code.to_be_bytes();
        pair.server.handle_data(pair.now, &[0x88, 0x82, 0, 0, 0, 0, hi, lo]);
        pair.drive();
        let info = closed(&pair.server_events);
        assert_eq!((info.code, info.clean), (CloseCode(code), true), "{code}");
        assert!(
            pair.server_wire.ends_with(&[0x88, 0x02, hi, lo]),
            "the reply echoes {code}"
        );
    }
}

#[test]
fn server_initiated_close_waits_for_the_client() {
    let mut pair = Pair::open();
    pair.server.close(pair.now, CloseCode::GOING_AWAY, "restart").unwrap();
    pair.drive();
    assert_eq!(closed(&pair.client_events).code, CloseCode::GOING_AWAY);
    assert_eq!(closed(&pair.client_events).cause, CloseCause::RemoteClose);
    assert_eq!(closed(&pair.server_events).cause, CloseCause::LocalClose);
    assert!(pair.client.is_closed() && pair.server.is_closed());
    assert_eq!(pair.is_transport_closed(), (true, true));
}

#[test]
fn empty_close_is_reported_as_no_status() {
    let mut pair = Pair::open();
    // A close frame with no payload, masked, straight onto the server's wire.
    pair.server.handle_data(pair.now, b"\x88\x80\x01\x02\x03\x04");
    pair.drive();
    let info = closed(&pair.server_events);
    assert_eq!((info.code, info.clean), (CloseCode::NO_STATUS, true));
    // The reply is an empty close too.
    assert!(pair.server_wire.ends_with(b"\x88\x00"));
}

#[test]
fn end_of_stream_without_close_is_abnormal() {
    let mut pair = Pair::open();
    pair.server.handle_eof(pair.now);
    let Some(Event::Closed(info)) = pair.server.poll_event() else {
        panic!()
    };
    assert_eq!(
        (info.code, info.cause, info.clean),
        (CloseCode::ABNORMAL, CloseCause::Eof, false)
    );
    assert!(pair.server.close_expected());
    assert!(pair.server.poll_event().is_none(), "nothing after the final event");
}

#[test]
fn fragmented_send_with_interleaved_pings() {
    for deliver_fragments in [false, true] {
        let mut server_config = config();
        server_config.deliver_fragments = deliver_fragments;
        let mut pair = Pair::with(config(), server_config, ClientRequest::new("ws://h/").unwrap());
        pair.drive();
        pair.server_events.clear();
        let text = "ab€cd".as_bytes();
        pair.client
            .send_fragment(MessageKind::Text, Bytes::copy_from_slice(&text[..3]), false)
            .unwrap();
        pair.client.ping(Bytes::from_static(b"mid")).unwrap();
        // Binary while a text message is unfinished is out of sequence.
        assert!(
            pair.client
                .send_fragment(MessageKind::Binary, Bytes::new(), true)
                .is_err()
        );
        assert!(pair.client.send("whole").is_err());
        pair.client
            .send_fragment(MessageKind::Text, Bytes::copy_from_slice(&text[3..]), true)
            .unwrap();
        pair.drive();
        assert!(
            pair.server_events
                .iter()
                .any(|e| matches!(e, Event::Ping(p) if &p[..] == b"mid"))
        );
        assert!(
            pair.client_events
                .iter()
                .any(|e| matches!(e, Event::Pong(p) if &p[..] == b"mid"))
        );
        if deliver_fragments {
            let joined: Vec<u8> = pair
                .server_events
                .iter()
                .filter_map(|e| match e {
                    Event::Fragment(f) => Some(f.data.to_vec()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(joined, text);
        } else {
            assert_eq!(messages(&pair.server_events), [Message::from("ab€cd")]);
        }
    }
}

#[test]
fn large_message_arrives_in_pieces() {
    let mut pair = Pair::open();
    pair.chunk = 1000;
    let payload: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    pair.client.send(payload.clone()).unwrap();
    pair.server.send(payload.clone()).unwrap();
    pair.drive();
    assert_eq!(messages(&pair.server_events), [Message::from(payload.clone())]);
    assert_eq!(messages(&pair.client_events), [Message::from(payload)]);
}

#[test]
fn server_payloads_are_not_copied() {
    let mut pair = Pair::open();
    let payload = Bytes::from(vec![1u8; 4096]);
    pair.server.send(payload.clone()).unwrap();
    let transmit = pair.server.poll_transmit().unwrap();
    assert_eq!(transmit.header(), b"\x82\x7e\x10\x00");
    assert_eq!(transmit.payload().as_ptr(), payload.as_ptr());
}

#[test]
fn frames_behind_the_request_wait_for_the_decision() {
    // The client pipelines a message right behind its request.
    let mut pipelined = Pair::new();
    let request = pipelined.client.poll_transmit().unwrap();
    let mut wire = request.payload().to_vec();
    wire.extend_from_slice(b"\x81\x82\x00\x00\x00\x00hi");
    pipelined.server.handle_data(pipelined.now, &wire);
    let Some(Event::Request(_)) = pipelined.server.poll_event() else {
        panic!()
    };
    assert!(
        pipelined.server.poll_event().is_none(),
        "the message waits for the decision"
    );
    pipelined.server.accept(pipelined.now, Accept::new()).unwrap();
    assert!(matches!(pipelined.server.poll_event(), Some(Event::Message(m)) if m == Message::from("hi")));
}

#[test]
fn messages_before_a_violation_are_answered_before_the_close() {
    let mut pair = Pair::open();
    // A valid masked "hi", then a frame with RSV2 set, in one read.
    pair.server
        .handle_data(pair.now, b"\x81\x82\x00\x00\x00\x00hi\xA1\x80\x00\x00\x00\x00");
    let Some(Event::Message(message)) = pair.server.poll_event() else {
        panic!()
    };
    pair.server.send(message).unwrap();
    let Some(Event::Closed(info)) = pair.server.poll_event() else {
        panic!()
    };
    assert_eq!(info.code, CloseCode::PROTOCOL_ERROR);
    let wire = crate::pair::drain(&mut pair.server);
    assert!(wire.starts_with(b"\x81\x02hi\x88"), "echo first, then close: {wire:x?}");
    assert!(pair.server.close_expected());
}

#[test]
fn upgraded_connections_start_open() {
    let now = std::time::Instant::now();
    let mut conn = wsengine::Connection::upgraded(
        wsengine::Role::Server,
        Config::default(),
        &wsengine::Negotiated::default(),
        now,
    );
    assert!(conn.is_open());
    conn.send("x").unwrap();
    assert_eq!(conn.poll_transmit().unwrap().header(), b"\x81\x01");
}
