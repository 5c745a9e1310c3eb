//! Split halves that never stall: writers without reader activity, the end of a connection
//! reaching every waiting half, slow peers that are alive, publishers that never wait for a
//! busy connection's lock; and the handshake timeout covering an asynchronous decision.

use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{join, select};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use wsengine::{Accept, CloseCause, CloseCode, Config, HandshakeError, Message};

use super::{Harness, closed, pair, quick_config, raw_exchange_with, upgrade_request, within};
use crate::{Error, Incoming, TrySendError};

/// A writer's sends reach the peer while the reader half is never polled; so do pongs and
/// heartbeat pings, as long as some half waits on the connection (`closed()` here).
pub async fn writer_works_while_reader_is_idle<H: Harness>() {
    let mut server_config = quick_config();
    server_config.ping_interval = Some(Duration::from_millis(100));
    server_config.pong_timeout = Duration::from_secs(5);
    let (mut client, server) = pair::<H>(quick_config(), server_config).await;
    let (reader, writer) = server.split();
    within::<H, _>(20, "writer without reader", async {
        // An async send and a try_send, with nobody reading on the server.
        writer.send("sent").await.unwrap();
        writer.try_send("tried").unwrap();
        let driving = writer.clone();
        H::spawn(async move {
            driving.closed().await;
        });
        assert_eq!(client.recv().await.unwrap(), Message::from("sent"));
        assert_eq!(client.recv().await.unwrap(), Message::from("tried"));
        // Our ping is answered, and the server's heartbeat pings keep coming.
        client.ping("are you there").await.unwrap();
        let (mut pongs, mut pings) = (0, 0);
        while pongs < 1 || pings < 3 {
            match client.recv_incoming().await.unwrap() {
                Incoming::Pong(payload) => {
                    assert_eq!(&payload[..], b"are you there");
                    pongs += 1;
                }
                Incoming::Ping(_) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        // The pings the client answered kept the server side alive, and the reader still gets
        // what arrived meanwhile, in order, then the close.
        client.send("late").await.unwrap();
        client.close(CloseCode::NORMAL, "bye").await.unwrap();
        let mut reader = reader;
        assert_eq!(reader.recv().await.unwrap(), Message::from("late"));
        let info = closed(reader.recv().await.unwrap_err());
        assert_eq!((info.code, info.clean), (CloseCode::NORMAL, true), "{info:?}");
    })
    .await;
}

/// When the connection ends under them, parked writers wake up: a send waiting for room, a
/// flush, `closed()`; and `Writer::close` to a peer that stopped reading returns by itself
/// within the close timeout.
pub async fn parked_writers_wake_when_the_connection_ends<H: Harness>() {
    let mut config = quick_config();
    config.close_timeout = Duration::from_millis(300);
    let (_client, mut server) = pair::<H>(quick_config(), config).await;
    server.set_write_buffer_limit(64 * 1024);
    let (_reader, writer) = server.split();
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    within::<H, _>(20, "parked writers", async {
        // The client never reads: fill everything between us and it.
        let mut full = 0;
        while full < 20 {
            match writer.try_send(chunk.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => full += 1,
                Err(TrySendError::Error(e)) => panic!("{e}"),
            }
            let _ = select(pin!(writer.flush()), pin!(H::sleep(Duration::from_millis(2)))).await;
        }
        let parked_send = async { writer.send(chunk.clone()).await };
        let parked_flush = async { writer.flush().await };
        let closing = async {
            // Give the others time to park, then close: the close frame cannot leave.
            H::sleep(Duration::from_millis(50)).await;
            writer.close(CloseCode::GOING_AWAY, "").await.unwrap()
        };
        let ((send, flush), info) = join(join(parked_send, parked_flush), closing).await;
        // What matters is that both resolved (the join finished): a send that found room in
        // the last moment is fine, one that waited must hear of the end.
        assert!(matches!(send, Ok(()) | Err(Error::AlreadyClosed)), "{send:?}");
        assert!(
            flush.is_ok() || matches!(flush, Err(Error::AlreadyClosed | Error::Io(_))),
            "{flush:?}"
        );
        assert_eq!(info.cause, CloseCause::CloseTimeout, "{info:?}");
        assert_eq!(writer.closed().await, info);
        assert!(!writer.is_open());
    })
    .await;
}

/// `abort` ends the connection at once for every half, and the peer sees the transport end.
pub async fn abort_ends_every_half<H: Harness>() {
    let (mut client, server) = pair::<H>(quick_config(), quick_config()).await;
    let (mut reader, writer) = server.split();
    within::<H, _>(10, "abort", async {
        let pending_recv = async { reader.recv().await };
        let aborting = async {
            H::sleep(Duration::from_millis(20)).await;
            writer.abort();
        };
        let (received, ()) = join(pending_recv, aborting).await;
        assert!(matches!(received, Err(Error::Io(_))), "{received:?}");
        assert_eq!(writer.close_info().map(|info| info.code), Some(CloseCode::ABNORMAL));
        assert!(matches!(writer.send("x").await, Err(Error::AlreadyClosed)));
        let info = closed(client.recv().await.unwrap_err());
        assert_eq!((info.code, info.clean), (CloseCode::ABNORMAL, false), "{info:?}");
    })
    .await;
}

/// A peer that reads slowly is alive: while its unread data holds our reading paused, the pong
/// deadline stands still, and every message arrives before a clean close.
pub async fn slow_reader_is_not_declared_dead<H: Harness>() {
    const MESSAGES: usize = 160;
    let mut server_config = quick_config();
    server_config.ping_interval = Some(Duration::from_millis(50));
    server_config.pong_timeout = Duration::from_secs(1);
    // The close frame leaves after megabytes the slow reader still has to take: the close
    // timer (which starts when the close is queued) is not what this test is about.
    server_config.close_timeout = Duration::from_secs(30);
    let (mut client, mut server) = pair::<H>(quick_config(), server_config).await;
    server.set_write_buffer_limit(64 * 1024);
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    // The server's reader is polled all along (it runs the heartbeat), while its writer keeps
    // the queue over the limit, so reading stays paused for long stretches.
    let (mut server_reader, writer) = server.split();
    let sender = async {
        let reading = async { server_reader.recv().await };
        let writing = async {
            for _ in 0..MESSAGES {
                writer.send(chunk.clone()).await?;
            }
            writer.close(CloseCode::NORMAL, "done").await
        };
        let (read, written) = join(reading, writing).await;
        assert!(matches!(read, Err(Error::Closed(_))), "{read:?}");
        written
    };
    let slow_reader = async {
        let mut received = 0;
        loop {
            match client.recv().await {
                Ok(message) => {
                    assert_eq!(message.len(), chunk.len());
                    received += 1;
                    H::sleep(Duration::from_millis(25)).await;
                }
                Err(error) => return (received, closed(error)),
            }
        }
    };
    let (sent, (received, info)) = within::<H, _>(60, "slow reader", join(sender, slow_reader)).await;
    let sent = sent.unwrap();
    assert_eq!(sent.cause, CloseCause::LocalClose, "server side: {sent:?}");
    assert_eq!(received, MESSAGES);
    assert_eq!((info.code, info.clean), (CloseCode::NORMAL, true), "{info:?}");
}

/// A peer that stops reading altogether is still found dead while we keep sending to it: once
/// its buffers are full no byte leaves, and the pong deadline runs out.
pub async fn stuck_peer_is_declared_dead_while_we_send<H: Harness>() {
    let mut server_config = quick_config();
    server_config.ping_interval = Some(Duration::from_millis(50));
    server_config.pong_timeout = Duration::from_millis(300);
    let (_client, mut server) = pair::<H>(quick_config(), server_config).await;
    server.set_write_buffer_limit(64 * 1024);
    let (mut reader, writer) = server.split();
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let writing = async {
        loop {
            if writer.send(chunk.clone()).await.is_err() {
                break;
            }
        }
    };
    let ((), end) = within::<H, _>(30, "stuck peer", join(writing, reader.recv())).await;
    let info = closed(end.unwrap_err());
    assert_eq!(info.cause, CloseCause::PongTimeout, "{info:?}");
}

/// `try_send` never waits for the connection's lock (held here as a long inflate would hold
/// it): the message is handed off and leaves once the holder lets go.
pub async fn publisher_never_waits_for_a_busy_connection<H: Harness>() {
    let (mut client, server) = pair::<H>(quick_config(), quick_config()).await;
    let (reader, writer) = server.split();
    within::<H, _>(10, "hand-off", async {
        {
            let _busy = reader.__hold_connection_lock();
            for i in 0..3 {
                writer.try_send(format!("publication {i}")).unwrap();
            }
            let prepared = wsengine::PreparedMessage::new("prepared");
            writer.try_send_prepared(&prepared).unwrap();
            assert!(writer.buffered_amount() > 0);
        }
        // Whoever polls next (a flush here; the reader in a server) moves them out.
        writer.flush().await.unwrap();
        for i in 0..3 {
            assert_eq!(client.recv().await.unwrap(), Message::from(format!("publication {i}")));
        }
        assert_eq!(client.recv().await.unwrap(), Message::from("prepared"));
    })
    .await;
}

/// The opening-handshake timeout covers an asynchronous decision: a decision that takes too
/// long gets 408, and frames pipelined behind the request do not count as handshake bytes.
pub async fn handshake_timeout_covers_the_decision<H: Harness>() {
    let mut config = quick_config();
    config.handshake_timeout = Some(Duration::from_millis(200));
    let slow = async {
        H::sleep(Duration::from_secs(30)).await;
        Ok(Accept::new())
    };
    let (response, error) =
        raw_exchange_with::<H, _, _>(upgrade_request("/", "13"), config, |pending| pending.decide(slow)).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(matches!(error, Error::Handshake(HandshakeError::Timeout)), "{error:?}");

    // 20 KiB of frames right behind the request (more than max_handshake_size = 8 KiB).
    let mut config = Config::default();
    config.max_handshake_size = 8 * 1024;
    let mut bytes = upgrade_request("/", "13");
    for _ in 0..20 {
        let mut frame = vec![0x82, 0xfe, 0x04, 0x00, 0, 0, 0, 0];
        frame.extend_from_slice(&[1u8; 1024]);
        bytes.extend_from_slice(&frame);
    }
    let (listener, port) = H::listen().await;
    let server = async {
        let stream = H::accept(&listener).await;
        let pending = crate::accept_request::<_, H::Timer>(stream, config).await.unwrap();
        H::sleep(Duration::from_millis(50)).await;
        let mut ws = pending.accept(Accept::new()).await.unwrap();
        let mut count = 0;
        while let Ok(message) = ws.recv().await {
            assert_eq!(message.len(), 1024);
            count += 1;
            if count == 20 {
                break;
            }
        }
        count
    };
    let client = async {
        let mut stream = H::tcp_connect(port).await;
        stream.write_all(&bytes).await.unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        H::sleep(Duration::from_millis(200)).await;
        head
    };
    let (count, head) = within::<H, _>(10, "pipelined frames", join(server, client)).await;
    assert_eq!(&head, b"HTTP/1.1 101");
    assert_eq!(count, 20);
}

/// The peer's address is known after accept.
pub async fn peer_address_after_accept<H: Harness>() {
    let (listener, port) = H::listen().await;
    let server = async {
        let stream = H::accept(&listener).await;
        let mut pending = crate::accept_request::<_, H::Timer>(stream, quick_config())
            .await
            .unwrap();
        let addr = "127.0.0.9:4321".parse().unwrap();
        pending.set_peer_addr(addr);
        let mut ws = pending.accept(Accept::new()).await.unwrap();
        assert_eq!(ws.peer_addr(), Some(addr));
        assert_eq!(
            ws.request().map(|request| request.path().to_owned()).as_deref(),
            Some("/")
        );
        let request = ws.take_request().unwrap();
        assert_eq!(request.path(), "/");
        assert!(ws.request().is_none());
        let (_, writer) = ws.split();
        writer.peer_addr()
    };
    let client = async {
        let mut stream = H::tcp_connect(port).await;
        stream.write_all(&upgrade_request("/", "13")).await.unwrap();
        stream
    };
    let (addr, _stream) = within::<H, _>(10, "peer address", join(server, client)).await;
    assert_eq!(addr, Some("127.0.0.9:4321".parse().unwrap()));
}

/// A peer that floods us with data and never answers our close frame cannot keep the close
/// timeout from running out: timers run between reads that always find data, not only when a
/// read finds nothing.
pub async fn close_times_out_while_peer_floods<H: Harness>() {
    let (listener, port) = H::listen().await;
    let mut config = quick_config();
    config.close_timeout = Duration::from_millis(300);
    let server = async {
        let stream = H::accept(&listener).await;
        let mut ws = crate::accept::<_, H::Timer>(stream, config)
            .await
            .expect("server handshake");
        ws.close(CloseCode::NORMAL, "bye").await
    };
    // The flood runs in its own task (on another thread where the runtime has one), so the
    // server's reads keep finding data. Bounded: it stops when the server drops the transport,
    // after 2 GiB, or with the test.
    let (flood_done, flood_ended) = futures_channel::oneshot::channel::<()>();
    let mut stream = H::tcp_connect(port).await;
    H::spawn(async move {
        if stream.write_all(&upgrade_request("/", "13")).await.is_err() {
            return;
        }
        let mut frame = vec![0x82, 0xfe, 0x04, 0x00, 0x11, 0x22, 0x33, 0x44];
        frame.extend(std::iter::repeat_n(0x5a, 1024));
        let burst = frame.repeat(64);
        for _ in 0..32 * 1024 {
            if stream.write_all(&burst).await.is_err() {
                break;
            }
        }
        let _ = flood_done.send(());
    });
    let end = within::<H, _>(30, "close under a flood", server).await;
    match end {
        // The close handshake never completed: the timeout ended it.
        Ok(info) => assert!(!info.clean, "{info:?}"),
        Err(error) => panic!("close under a flood: {error:?}"),
    }
    // The flood stops once the server has dropped the transport.
    within::<H, _>(30, "flood ends", flood_ended).await.ok();
}
