//! Micro benchmarks of wsengine's core next to the same operation in tungstenite and
//! fastwebsockets (where their public API exposes it), in the same criterion groups, so one run
//! prints both and the ratio can be read off directly.
//!
//! ```text
//! cargo bench -p wsengine-benches --bench micro
//! ```

use std::hint::black_box;
use std::io::Cursor;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wsengine::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, apply_mask};
use wsengine::{Accept, ClientRequest, Config, Connection, Event, Negotiated, Role};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn mask(c: &mut Criterion) {
    for size in [64usize, 256, 1024, 4096, 64 << 10, 1 << 20] {
        let mut group = c.benchmark_group(format!("mask/{size}"));
        group.throughput(Throughput::Bytes(size as u64));
        let source = vec![0xA5u8; size];
        let mut buf = source.clone();
        group.bench_function("memcpy", |b| b.iter(|| buf.copy_from_slice(black_box(&source))));
        group.bench_function("wsengine", |b| b.iter(|| apply_mask(black_box(&mut buf), KEY, 0)));
        group.bench_function("fastwebsockets", |b| {
            b.iter(|| fastwebsockets::unmask(black_box(&mut buf), KEY))
        });
        group.finish();
    }
}

fn utf8(c: &mut Criterion) {
    let ascii = "The quick brown fox jumps over the lazy dog. ".repeat(1500);
    let mixed = "Grüße, κόσμε, naïve café — ✓ ".repeat(1500);
    let cjk = "数据压缩是一种减少数据大小的技术。".repeat(1300);
    for (name, text) in [("ascii", &ascii), ("mixed", &mixed), ("cjk", &cjk)] {
        let bytes = text.as_bytes();
        let mut group = c.benchmark_group(format!("utf8/{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("wsengine", |b| {
            b.iter(|| {
                let mut v = wsengine::utf8::Utf8Validator::new();
                v.feed(black_box(bytes)).unwrap();
                v.finish().unwrap();
            })
        });
        group.bench_function("simdutf8", |b| {
            b.iter(|| simdutf8::basic::from_utf8(black_box(bytes)).unwrap())
        });
        group.bench_function("std (tungstenite)", |b| {
            b.iter(|| std::str::from_utf8(black_box(bytes)).unwrap())
        });
        group.finish();
    }
}

fn header(c: &mut Criterion) {
    let wire: &[u8] = &[0x82, 0xFE, 0x10, 0x00, 0x37, 0xfa, 0x21, 0x3d];
    let mut group = c.benchmark_group("header/parse");
    group.bench_function("wsengine", |b| b.iter(|| FrameHeader::parse(black_box(wire)).unwrap()));
    group.bench_function("tungstenite", |b| {
        b.iter(|| tungstenite::protocol::frame::FrameHeader::parse(&mut Cursor::new(black_box(wire))).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("header/encode");
    let ours = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::BINARY,
        mask: Some(KEY),
        payload_len: 4096,
    };
    group.bench_function("wsengine", |b| {
        b.iter(|| {
            let mut out = [0u8; MAX_HEADER_LEN];
            black_box(black_box(&ours).encode(&mut out));
            out
        })
    });
    let theirs = tungstenite::protocol::frame::FrameHeader {
        is_final: true,
        opcode: tungstenite::protocol::frame::coding::OpCode::Data(tungstenite::protocol::frame::coding::Data::Binary),
        mask: Some(KEY),
        ..Default::default()
    };
    group.bench_function("tungstenite", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(MAX_HEADER_LEN);
            black_box(&theirs).format(4096, &mut out).unwrap();
            out
        })
    });
    group.finish();
}

/// 100 000 masked 20-byte text messages in one buffer, decoded into messages.
fn decode(c: &mut Criterion) {
    const COUNT: usize = 100_000;
    let mut wire = Vec::with_capacity(COUNT * 26);
    for i in 0..COUNT {
        let mut payload = format!("message number {i:05}").into_bytes();
        payload.truncate(20);
        wire.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
        wire.extend_from_slice(&KEY);
        apply_mask(&mut payload, KEY, 0);
        wire.extend_from_slice(&payload);
    }
    let mut group = c.benchmark_group("decode/100k_small_messages");
    group.throughput(Throughput::Elements(COUNT as u64));
    group.sample_size(20);
    let mut config = Config::default();
    config.ping_interval = None;
    let config = std::sync::Arc::new(config);
    group.bench_function("wsengine", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut conn = Connection::upgraded(Role::Server, config.clone(), &Negotiated::default(), now);
            let mut count = 0;
            for chunk in wire.chunks(64 << 10) {
                conn.handle_data(now, chunk);
                while let Some(event) = conn.poll_event() {
                    if let Event::Message(m) = event {
                        black_box(m);
                        count += 1;
                    }
                }
            }
            assert_eq!(count, COUNT);
        })
    });
    group.bench_function("tungstenite", |b| {
        b.iter_batched(
            || Cursor::new(wire.clone()),
            |cursor| {
                let mut ws = tungstenite::WebSocket::from_raw_socket(cursor, tungstenite::protocol::Role::Server, None);
                for _ in 0..COUNT {
                    black_box(ws.read().unwrap());
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn handshake(c: &mut Criterion) {
    let request: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com:8080\r\nConnection: Upgrade\r\n\
        Pragma: no-cache\r\nCache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) \
        AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36\r\nUpgrade: websocket\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
        Accept-Language: en-US,en;q=0.9\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    let mut group = c.benchmark_group("handshake/browser_request");
    let config = std::sync::Arc::new(Config::default());
    group.bench_function("wsengine (parse, validate, accept)", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut conn = Connection::server(config.clone(), now);
            conn.handle_data(now, black_box(request));
            let Some(Event::Request(_)) = conn.poll_event() else {
                panic!()
            };
            conn.accept(now, Accept::new()).unwrap();
            black_box(conn.poll_transmit())
        })
    });
    group.bench_function("tungstenite (parse, create response)", |b| {
        use tungstenite::handshake::machine::TryParse;
        b.iter(|| {
            let (_, request) = tungstenite::handshake::server::Request::try_parse(black_box(request))
                .unwrap()
                .unwrap();
            black_box(tungstenite::handshake::server::create_response(&request).unwrap())
        })
    });
    group.finish();
}

/// Compressing and inflating a 16 KiB JSON-like message through a compressed pair.
fn deflate(c: &mut Criterion) {
    let item = r#"{"id":12345,"user":"alice","text":"hello there, how are you?","tags":["a","b"]},"#;
    let json = format!("[{}]", item.repeat(16 * 1024 / item.len()));
    let mut config = Config::default();
    config.ping_interval = None;
    config.deflate = Some(wsengine::DeflateConfig::default());
    let config = std::sync::Arc::new(config);
    let now = Instant::now();
    let request = ClientRequest::new("ws://localhost/").unwrap();
    let open = || {
        let mut client = Connection::client(config.clone(), &request, now);
        let mut server = Connection::server(config.clone(), now);
        let head = client.poll_transmit().unwrap();
        server.handle_data(now, head.payload());
        let Some(Event::Request(_)) = server.poll_event() else {
            panic!()
        };
        server.accept(now, Accept::new()).unwrap();
        let response = server.poll_transmit().unwrap();
        client.handle_data(now, response.payload());
        assert!(matches!(client.poll_event(), Some(Event::Connected(_))));
        (client, server)
    };
    let (mut client, mut server) = open();
    let mut group = c.benchmark_group("deflate/16KiB_json");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("wsengine compress", |b| {
        b.iter(|| {
            server.send(black_box(json.as_str())).unwrap();
            black_box(server.poll_transmit().unwrap())
        })
    });
    server.send(json.as_str()).unwrap();
    let frame = server.poll_transmit().unwrap();
    let wire = [frame.header(), frame.payload()].concat();
    eprintln!("deflate: {} B of JSON compress to {} B", json.len(), wire.len());
    group.bench_function("wsengine inflate", |b| {
        b.iter(|| {
            client.handle_data(now, black_box(&wire));
            black_box(client.poll_event().unwrap())
        })
    });
    group.finish();
}

/// A client sending one binary message and taking its frame: header, masking key, masked copy.
/// The masking key's cost shows at the small sizes.
fn client_send(c: &mut Criterion) {
    let mut config = Config::default();
    config.ping_interval = None;
    let config = std::sync::Arc::new(config);
    for size in [16usize, 1024] {
        let mut group = c.benchmark_group(format!("client_send/{size}"));
        group.throughput(Throughput::Elements(1));
        let payload = bytes::Bytes::from(vec![0xA5u8; size]);
        let mut client = Connection::upgraded(Role::Client, config.clone(), &Negotiated::default(), Instant::now());
        group.bench_function("wsengine", |b| {
            b.iter(|| {
                client.send(black_box(payload.clone())).unwrap();
                black_box(client.poll_transmit().unwrap())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, mask, utf8, header, decode, handshake, deflate, client_send);
criterion_main!(benches);
