//! Consumers that do not keep up: the slow-consumer policies and the write timeout, with a
//! client that subscribes and then never reads beside a healthy one that reads everything.

use std::time::Duration;

use wsengine::CloseCode;
use wsengine_hub::{DisconnectCause, ErrorKind, Hub, HubEvent, SlowConsumerPolicy};

use crate::rt::Rt;
use crate::suite::{config, key, subscribe};
use crate::support::{Client, eventually, serve, within};

/// A client that completes the handshake and then never reads.
pub async fn stalled_client<R: Rt>(addr: std::net::SocketAddr, hub: &Hub, channel: &str) -> R::Stream {
    use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    let before = hub.channel_size(&key(channel));
    let mut stream = R::connect_small(addr);
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    // A masked subscribe frame.
    let payload = format!(r#"{{"action":"subscribe","channel":"{channel}"}}"#);
    let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload.as_bytes());
    stream.write_all(&frame).await.unwrap();
    eventually::<R>(10, "stalled client subscribed", || {
        hub.channel_size(&key(channel)) == before + 1
    })
    .await;
    stream
}

fn slow_hub(policy: SlowConsumerPolicy) -> Hub {
    let mut config = config();
    config.slow_consumer = policy;
    config.max_queued_messages = 16;
    config.write_buffer_limit = 4096;
    config.write_timeout = None;
    Hub::new(config)
}

const FLOOD: usize = 4000;

/// Publishes FLOOD messages of 8 KiB, pacing itself on the healthy subscriber `healthy` (so
/// only the stalled one falls behind).
async fn flood<R: Rt>(hub: &Hub, healthy: wsengine_hub::ConnectionId) -> usize {
    let mut dropped = 0;
    let filler = "x".repeat(8 << 10);
    for i in 0..FLOOD {
        let delivery = hub.publish(&key("feed"), None, format!("{i:04}{filler}"));
        dropped += delivery.dropped + delivery.disconnected;
        if i % 4 == 3 {
            for _ in 0..10_000 {
                if hub.connection(healthy).is_none_or(|c| c.queued() == 0) {
                    break;
                }
                R::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    dropped
}

async fn healthy_client<R: Rt>(addr: std::net::SocketAddr, hub: &Hub) -> (Client<R>, wsengine_hub::ConnectionId) {
    let mut client = Client::<R>::connect(addr, "/ws?user_id=healthy").await;
    subscribe(&mut client, "feed").await;
    let id = hub.user_connections("healthy")[0];
    (client, id)
}

/// Reads a healthy client's feed: every message, in order.
async fn read_all<R: Rt>(client: &mut Client<R>) {
    for i in 0..FLOOD {
        let value = client.recv_json().await;
        assert_eq!(&value["data"].as_str().unwrap()[..4], format!("{i:04}"));
    }
}

pub async fn slow_consumer_disconnect<R: Rt>() {
    let hub = slow_hub(SlowConsumerPolicy::Disconnect(CloseCode(1013)));
    let mut events = hub.events();
    let addr = serve::<R>(&hub).await;
    let (mut healthy, id) = healthy_client::<R>(addr, &hub).await;
    let _stalled = stalled_client::<R>(addr, &hub, "feed").await;
    let reader = async { read_all(&mut healthy).await };
    let (dropped, ()) = futures_util::future::join(flood::<R>(&hub, id), reader).await;
    assert!(dropped >= 1);
    eventually::<R>(10, "slow consumer gone", || hub.channel_size(&key("feed")) == 1).await;
    let mut saw = (false, false);
    while let Some(event) = events.try_next() {
        match event {
            HubEvent::Error(e) if e.kind == ErrorKind::SlowConsumer => saw.0 = true,
            HubEvent::Disconnected { cause, code, .. } => {
                assert_eq!((cause, code), (DisconnectCause::SlowConsumer, CloseCode(1013)));
                saw.1 = true;
            }
            _ => {}
        }
    }
    assert_eq!(saw, (true, true));
    assert!(hub.snapshot().dropped >= 1);
}

pub async fn slow_consumer_drop_newest_and_oldest<R: Rt>() {
    for policy in [SlowConsumerPolicy::DropNewest, SlowConsumerPolicy::DropOldest] {
        let hub = slow_hub(policy);
        let addr = serve::<R>(&hub).await;
        let (mut healthy, id) = healthy_client::<R>(addr, &hub).await;
        let stalled = stalled_client::<R>(addr, &hub, "feed").await;
        let (dropped, ()) = futures_util::future::join(flood::<R>(&hub, id), read_all(&mut healthy)).await;
        assert!(dropped >= 1, "{policy:?}");
        // Still connected; now read what the stalled one kept.
        assert_eq!(hub.channel_size(&key("feed")), 2);
        let received = read_raw_texts::<R>(stalled, hub.clone(), id).await;
        let last = received.last().map(|t| t[..4].to_owned());
        match policy {
            // The newest were dropped: the last one never arrives.
            SlowConsumerPolicy::DropNewest => assert_ne!(last.as_deref(), Some(&format!("{:04}", FLOOD - 1)[..])),
            // The oldest were dropped: the last one is there.
            _ => assert_eq!(last.as_deref(), Some(&format!("{:04}", FLOOD - 1)[..])),
        }
        assert!(received.len() < FLOOD, "{policy:?}: nothing dropped?");
        // In order, whatever was dropped.
        let numbers: Vec<usize> = received.iter().map(|t| t[..4].parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{policy:?}");
    }
}

/// Reads server frames (unmasked text) from a raw stream until a publication marker arrives
/// after the hub's queue and the socket are empty: publishes "done" and reads up to it.
async fn read_raw_texts<R: Rt>(mut stream: R::Stream, hub: Hub, healthy: wsengine_hub::ConnectionId) -> Vec<String> {
    use futures_util::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut texts = Vec::new();
    let mut marker_sent = false;
    for _ in 0..100_000 {
        // Parse complete frames.
        while let Some((payload, used)) = parse_frame(&buf) {
            let text = String::from_utf8(payload).unwrap();
            buf.drain(..used);
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let Some(data) = value["data"].as_str().map(str::to_owned) else {
                continue; // the subscription's reply
            };
            if data == "done" {
                return texts;
            }
            texts.push(data);
        }
        let stalled = hub.subscribers(&key("feed")).into_iter().find(|id| *id != healthy);
        if !marker_sent
            && stalled
                .and_then(|id| hub.connection(id))
                .is_some_and(|c| c.queued() == 0)
        {
            marker_sent = true;
            hub.publish(&key("feed"), None, "done");
        }
        let n = within::<R, _>(10, "raw read", stream.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
    panic!("no end marker");
}

fn parse_frame(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (&b1, rest) = buf.get(1).map(|b| (b, &buf[2..]))?;
    let (len, header) = match b1 & 0x7f {
        126 => (u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize, 4),
        127 => (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    let payload = buf.get(header..header + len)?;
    Some((payload.to_vec(), header + len))
}

pub async fn write_timeout_closes_a_stuck_consumer<R: Rt>() {
    let mut config = config();
    config.slow_consumer = SlowConsumerPolicy::DropNewest;
    config.max_queued_messages = 16;
    config.write_buffer_limit = 4096;
    config.write_timeout = Some(Duration::from_millis(300));
    let hub = Hub::new(config);
    let mut events = hub.events();
    let addr = serve::<R>(&hub).await;
    let (mut healthy, id) = healthy_client::<R>(addr, &hub).await;
    let _stalled = stalled_client::<R>(addr, &hub, "feed").await;
    let (_, ()) = futures_util::future::join(flood::<R>(&hub, id), read_all(&mut healthy)).await;
    eventually::<R>(20, "stuck consumer closed", || hub.channel_size(&key("feed")) == 1).await;
    let cause = within::<R, _>(10, "disconnect event", async {
        loop {
            if let Some(HubEvent::Disconnected { cause, code, .. }) = events.next().await {
                return (cause, code);
            }
        }
    })
    .await;
    assert_eq!(cause, (DisconnectCause::WriteTimeout, CloseCode::POLICY_VIOLATION));
    assert_eq!(hub.connection_count(), 1);
}
