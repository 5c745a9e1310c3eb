//! Every timer, driven by the virtual clock.

use std::time::Duration;

use wsengine::{ClientRequest, CloseCause, CloseCode, Connection, Event, HandshakeError};

use crate::pair::{Pair, closed, config, drain};

#[test]
fn handshake_timeout_stops_a_trickling_client() {
    let mut config = config();
    config.handshake_timeout = Some(Duration::from_secs(10));
    let start = std::time::Instant::now();
    let mut server = Connection::server(config, start);
    // One byte a second of a request that never ends.
    for second in 0..10u64 {
        let now = start + Duration::from_secs(second);
        server.handle_data(now, b"G");
        server.handle_timeout(now);
        assert!(server.poll_event().is_none(), "still waiting at {second}s");
    }
    assert_eq!(server.poll_timeout(), Some(start + Duration::from_secs(10)));
    server.handle_timeout(start + Duration::from_secs(10));
    assert!(matches!(
        server.poll_event(),
        Some(Event::HandshakeFailed(HandshakeError::Timeout))
    ));
    let response = String::from_utf8(drain(&mut server)).unwrap();
    assert!(response.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{response}");
    assert!(server.close_expected());
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn client_handshake_times_out_too() {
    let mut pair = Pair::new();
    pair.deliver_to_server = false;
    pair.drive();
    pair.advance(Duration::from_secs(10));
    assert!(matches!(
        pair.client_events.last(),
        Some(Event::HandshakeFailed(HandshakeError::Timeout))
    ));
    assert!(pair.client.close_expected());
}

#[test]
fn heartbeat_keeps_a_live_peer() {
    let mut pair = Pair::open();
    // Default: ping after 30 s of silence, pong due 20 s later. The client answers.
    pair.advance(Duration::from_secs(30));
    assert!(pair.server_wire.windows(2).any(|w| w == b"\x89\x00"), "server pinged");
    assert!(pair.server_events.iter().any(|e| matches!(e, Event::Pong(_))));
    pair.advance(Duration::from_secs(25));
    assert!(pair.server.is_open() && pair.client.is_open());
}

#[test]
fn missing_pong_fails_the_connection() {
    let mut client = config();
    client.auto_pong = false;
    client.ping_interval = None;
    let mut server = config();
    server.ping_interval = Some(Duration::from_secs(5));
    server.pong_timeout = Duration::from_secs(3);
    let mut pair = Pair::with(client, server, ClientRequest::new("ws://h/").unwrap());
    pair.drive();
    pair.advance(Duration::from_secs(5));
    assert!(pair.server.is_open());
    pair.advance(Duration::from_secs(2));
    assert!(pair.server.is_open(), "pong not yet due");
    pair.advance(Duration::from_secs(1));
    let info = closed(&pair.server_events);
    assert_eq!(
        (info.code, info.cause.clone(), info.clean),
        (CloseCode::ABNORMAL, CloseCause::PongTimeout, false)
    );
    assert!(pair.server.close_expected());
}

#[test]
fn traffic_postpones_the_heartbeat() {
    let mut server = config();
    server.ping_interval = Some(Duration::from_secs(5));
    let mut pair = Pair::with(config(), server, ClientRequest::new("ws://h/").unwrap());
    pair.drive();
    for _ in 0..4 {
        pair.advance(Duration::from_secs(4));
        pair.client.send("busy").unwrap();
        pair.drive();
    }
    assert!(
        !pair.server_wire.windows(2).any(|w| w == b"\x89\x00"),
        "no ping while data flows"
    );
}

#[test]
fn close_timeout_gives_up_on_a_silent_peer() {
    let mut pair = Pair::open();
    pair.deliver_to_server = false;
    pair.client.close(pair.now, CloseCode::NORMAL, "").unwrap();
    pair.drive();
    assert!(!pair.client.close_expected());
    pair.advance(Duration::from_secs(5));
    let info = closed(&pair.client_events);
    assert_eq!((info.cause.clone(), info.clean), (CloseCause::CloseTimeout, false));
    assert!(pair.client.close_expected());
}

#[test]
fn client_waits_for_the_server_to_close_the_transport_then_gives_up() {
    let mut pair = Pair::open();
    // The server sends close; the client answers, then waits for end of stream that never comes
    // (we take the server's close frame by hand and do not let its transport close).
    pair.server.close(pair.now, CloseCode::NORMAL, "").unwrap();
    let close = drain(&mut pair.server);
    pair.client.handle_data(pair.now, &close);
    assert!(matches!(pair.client.poll_event(), Some(Event::Closed(_))));
    let _ = drain(&mut pair.client);
    assert!(pair.client.is_closed() && !pair.client.close_expected());
    let deadline = pair.client.poll_timeout().unwrap();
    assert_eq!(deadline, pair.now + Duration::from_secs(5));
    pair.client.handle_timeout(deadline);
    assert!(pair.client.close_expected());
    assert!(pair.client.poll_event().is_none(), "no second final event");
}

#[test]
fn idle_timeout_closes_with_going_away() {
    let mut server = config();
    server.idle_timeout = Some(Duration::from_secs(60));
    server.ping_interval = None;
    // Pings received count as activity, so the client must stay silent for the test.
    let mut client = config();
    client.ping_interval = None;
    let mut pair = Pair::with(client, server, ClientRequest::new("ws://h/").unwrap());
    pair.drive();
    pair.advance(Duration::from_secs(59));
    assert!(pair.server.is_open());
    pair.advance(Duration::from_secs(1));
    let info = closed(&pair.client_events);
    assert_eq!(
        (info.code, info.reason.as_str()),
        (CloseCode::GOING_AWAY, "idle timeout")
    );
}

#[test]
fn handle_timeout_is_idempotent() {
    let mut pair = Pair::open();
    let deadline = pair.server.poll_timeout().unwrap();
    pair.server.handle_timeout(deadline - Duration::from_millis(1));
    assert!(pair.server.poll_transmit().is_none(), "early call does nothing");
    pair.server.handle_timeout(deadline);
    assert!(pair.server.poll_transmit().is_some(), "the ping");
    pair.server.handle_timeout(deadline);
    assert!(pair.server.poll_transmit().is_none(), "second call does nothing");
}
