//! Bodies of the fuzz targets in `fuzz/`, compiled only with the hidden `__fuzz` feature. Each
//! takes arbitrary bytes, must never panic, and asserts the invariants its target checks. The
//! corpus replay test runs them on stable Rust.

use std::time::{Duration, Instant};

use crate::connection::{Event, Role};
use crate::frame::FrameHeader;
use crate::utf8::Utf8Validator;
use crate::{Accept, ClientRequest, CloseCode, Config, Connection, MessageKind};

/// Frame header parsing: a parsed header re-encodes to the same bytes.
pub fn frame_header(data: &[u8]) {
    if let Ok(Some((header, len))) = FrameHeader::parse(data) {
        let mut out = [0u8; crate::frame::MAX_HEADER_LEN];
        let n = header.encode(&mut out);
        assert_eq!(&out[..n], &data[..len]);
    }
}

/// Incremental UTF-8 validation over random chunks agrees with `std::str::from_utf8` on the
/// whole buffer. The first byte picks the chunk size.
pub fn utf8_chunks(data: &[u8]) {
    let Some((&size, bytes)) = data.split_first() else {
        return;
    };
    let mut validator = Utf8Validator::new();
    let pieces = bytes
        .chunks(usize::from(size % 16) + 1)
        .try_for_each(|piece| validator.feed(piece));
    let incremental = pieces.and_then(|()| validator.finish()).is_ok();
    assert_eq!(incremental, std::str::from_utf8(bytes).is_ok());
}

/// Server handshake parsing, fed in chunks, then end of stream: never panics, and exactly one
/// final event (a request left undecided fails at end of stream).
pub fn server_handshake(data: &[u8]) {
    let now = Instant::now();
    let mut server = Connection::server(Config::default(), now);
    for piece in data.chunks(61) {
        server.handle_data(now, piece);
    }
    server.handle_eof(now);
    check_single_final_event(&mut server, 0);
}

/// Client handshake response parsing.
pub fn client_handshake(data: &[u8]) {
    let now = Instant::now();
    let mut client = Connection::client(deflate_config(), &request(), now);
    while client.poll_transmit().is_some() {}
    client.handle_data(now, data);
    // A complete response opens the connection; anything else fails it. End of stream ends
    // either way.
    client.handle_eof(now);
    check_single_final_event(&mut client, 0);
}

/// A whole open server connection fed arbitrary bytes (in chunks sized by the first byte),
/// then end of stream: exactly one final event, and nothing is sent after the close.
pub fn server_connection(data: &[u8]) {
    let Some((&size, bytes)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut server = open_server(now);
    let mut finals = 0;
    for piece in bytes.chunks(usize::from(size) + 1) {
        feed(&mut server, now, piece);
        finals += echo_events(&mut server);
    }
    server.handle_eof(now);
    check_single_final_event(&mut server, finals);
}

/// The same for a client connection (unmasked frames, compression agreed).
pub fn client_connection(data: &[u8]) {
    let Some((&size, bytes)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut client = Connection::client(deflate_config(), &request(), now);
    let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Accept: ";
    let request_head = client.poll_transmit().map(|t| t.payload().clone()).unwrap_or_default();
    let key = header_value(&request_head, b"Sec-WebSocket-Key: ");
    let mut head = response.to_vec();
    head.extend_from_slice(crate::handshake::accept_key(key).as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
    client.handle_data(now, &head);
    let mut finals = 0;
    for piece in bytes.chunks(usize::from(size) + 1) {
        feed(&mut client, now, piece);
        finals += echo_events(&mut client);
    }
    client.handle_eof(now);
    check_single_final_event(&mut client, finals);
}

/// Feeds a read's worth of bytes as the driver does: straight into a large frame's message
/// buffer while the core offers room there (a read that brings nothing first, as a transport
/// that would block does), through `handle_data` otherwise.
fn feed(conn: &mut Connection, now: Instant, mut piece: &[u8]) {
    let mut gave_back = false;
    while !piece.is_empty() {
        let Some(room) = conn.payload_buf(piece.len()) else {
            conn.handle_data(now, piece);
            return;
        };
        let n = room.len().min(piece.len());
        room[..n].copy_from_slice(&piece[..n]);
        if n % 7 == 0 && !gave_back {
            // Give the room back unread once, then ask again.
            gave_back = true;
            conn.handle_payload(now, 0);
            continue;
        }
        conn.handle_payload(now, n);
        piece = &piece[n..];
    }
}

/// Inflating arbitrary data under a size cap: never panics, never exceeds the cap.
#[cfg(feature = "deflate")]
pub fn inflate(data: &[u8]) {
    const LIMIT: usize = 1 << 16;
    let mut decompressor = crate::deflate::Decompressor::new(15, false);
    let mut out = bytes::BytesMut::new();
    let result = decompressor
        .inflate(data, None, &mut out, LIMIT)
        .and_then(|()| decompressor.finish(&mut out, LIMIT));
    assert!(out.len() <= LIMIT + 1);
    if result.is_ok() {
        assert!(out.len() <= LIMIT);
    }
}

/// Operations on a client/server pair, decoded from the input two bytes at a time: an opcode
/// byte and an argument byte. Invariants: no panic, exactly one final event per side, nothing
/// transmitted after a side's transport is closed, deadlines never in the past after
/// `handle_timeout`.
pub fn operations(data: &[u8]) {
    let start = Instant::now();
    let mut now = start;
    let mut client = Connection::client(deflate_config(), &request(), now);
    let mut server = Connection::server(deflate_config(), now);
    let mut finals = [0usize; 2];
    for op in data.chunks(2) {
        let (code, arg) = (op[0], op.get(1).copied().unwrap_or(0));
        let (conn, other) = if code & 1 == 0 {
            (&mut client, &mut server)
        } else {
            (&mut server, &mut client)
        };
        let payload = bytes::Bytes::from(vec![arg; usize::from(arg) * 3]);
        match code >> 1 {
            0 => {
                let _ = conn.send(crate::Message::Binary(payload));
            }
            1 => {
                let text: String = std::iter::repeat_n('é', usize::from(arg)).collect();
                let _ = conn.send(text.as_str());
            }
            2 => {
                let _ = conn.send_fragment(
                    MessageKind::Text,
                    bytes::Bytes::from_static("ab€".as_bytes()).slice(..usize::from(arg % 6)),
                    arg & 1 == 1,
                );
            }
            3 => {
                let _ = conn.ping(payload.slice(..payload.len().min(125)));
            }
            4 => {
                let _ = conn.close(now, CloseCode(1000 + u16::from(arg % 16)), "bye");
            }
            5 => {
                now += Duration::from_millis(u64::from(arg) * 250);
                for c in [&mut *conn, &mut *other] {
                    c.handle_timeout(now);
                    if let Some(deadline) = c.poll_timeout() {
                        assert!(deadline > now, "a due deadline survived handle_timeout");
                    }
                }
            }
            6 => conn.handle_eof(now),
            7 => {
                // Raw garbage onto the wire.
                conn.handle_data(now, op);
            }
            _ => {
                // Deliver: move every pending transmit across, in chunks of `arg` bytes.
                let mut wire = Vec::new();
                while let Some(t) = conn.poll_transmit() {
                    t.write_to(&mut wire);
                }
                for piece in wire.chunks(usize::from(arg) + 1) {
                    other.handle_data(now, piece);
                }
            }
        }
        for (i, c) in [&mut client, &mut server].into_iter().enumerate() {
            while let Some(event) = c.poll_event() {
                assert_eq!(finals[i], 0, "an event after the final one: {event:?}");
                match event {
                    Event::Request(_) => {
                        let _ = c.accept(now, Accept::new());
                    }
                    Event::Closed(_) | Event::HandshakeFailed(_) => finals[i] += 1,
                    _ => {}
                }
            }
            if c.close_expected() {
                assert!(
                    c.poll_transmit().is_none(),
                    "nothing to send once the transport may close"
                );
                assert!(c.send("late").is_err(), "nothing is sent after the end");
            }
        }
    }
    for (i, c) in [&mut client, &mut server].into_iter().enumerate() {
        c.handle_eof(now);
        while let Some(event) = c.poll_event() {
            assert_eq!(finals[i], 0, "an event after the final one: {event:?}");
            if matches!(event, Event::Closed(_) | Event::HandshakeFailed(_)) {
                finals[i] += 1;
            }
        }
        assert_eq!(finals[i], 1, "exactly one final event");
    }
}

fn deflate_config() -> Config {
    Config {
        rng_seed: Some(1),
        max_message_size: 1 << 20,
        #[cfg(feature = "deflate")]
        deflate: Some(crate::deflate::DeflateConfig::default().with_context_takeover()),
        ..Config::default()
    }
}

fn request() -> ClientRequest {
    ClientRequest::new("ws://fuzz.invalid/").unwrap_or_else(|_| unreachable!("a valid constant URI"))
}

fn open_server(now: Instant) -> Connection {
    let mut server = Connection::server(deflate_config(), now);
    server.handle_data(
        now,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    );
    while let Some(event) = server.poll_event() {
        if let Event::Request(_) = event {
            let _ = server.accept(now, Accept::new());
        }
    }
    while server.poll_transmit().is_some() {}
    assert_eq!(server.role(), Role::Server);
    server
}

/// Echoes every message back; returns how many final events it saw (0 or 1).
fn echo_events(conn: &mut Connection) -> usize {
    let mut finals = 0;
    while let Some(event) = conn.poll_event() {
        match event {
            Event::Message(message) => {
                let _ = conn.send(message);
            }
            Event::Closed(_) | Event::HandshakeFailed(_) => {
                finals += 1;
                assert!(conn.poll_event().is_none(), "an event after the final one");
            }
            _ => {}
        }
    }
    while conn.poll_transmit().is_some() {}
    finals
}

/// After end of stream: the connection reported exactly one final event over its life (`seen`
/// of them before this call), nothing after it, and refuses to send.
fn check_single_final_event(conn: &mut Connection, seen: usize) {
    let mut finals = seen;
    while let Some(event) = conn.poll_event() {
        assert_eq!(finals, 0, "an event after the final one: {event:?}");
        if matches!(event, Event::Closed(_) | Event::HandshakeFailed(_)) {
            finals += 1;
        }
    }
    assert_eq!(finals, 1, "exactly one final event");
    assert!(conn.is_closed(), "closed after end of stream");
    assert!(conn.send("late").is_err());
}

fn header_value<'a>(head: &'a [u8], name: &[u8]) -> &'a [u8] {
    head.windows(name.len())
        .position(|w| w == name)
        .map(|at| {
            let rest = &head[at + name.len()..];
            &rest[..rest.iter().position(|&b| b == b'\r').unwrap_or(rest.len())]
        })
        .unwrap_or_default()
}
