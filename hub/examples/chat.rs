//! A chat server with rooms and presence, on tokio, in one file.
//!
//! ```text
//! cargo run -p wsengine-hub --example chat -- 127.0.0.1:9000
//! ```
//!
//! Clients speak the native JSON protocol on `/ws?user_id=NAME` (see docs/protocol.md):
//!
//! ```text
//! {"action":"subscribe","channel":"presence-lobby"}        join a room, see who is there
//! {"action":"broadcast","channel":"presence-lobby","event":"chat","data":{"text":"hi"}}
//! {"action":"whisper","channel":"presence-lobby","event":"typing","data":true}
//! {"action":"presence","channel":"presence-lobby"}         who is there now
//! ```
//!
//! Tank clients connect on `/tank?user_id=NAME` and send `sub:news`; the server posts the time
//! to `news` every ten seconds, to native and tank subscribers alike. Ctrl-C shuts down
//! gracefully: every client gets what was queued for it, then a 1001 close.

use std::time::Duration;

use tokio::net::TcpListener;
use wsengine_hub::auth::QueryUserId;
use wsengine_hub::{ChannelKey, ClientPublish, CodecId, Hub, HubConfig, HubEvent, ShutdownOptions};
use wsengine_tokio::{TokioIo, TokioTimer};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".into());
    let mut config = HubConfig::default();
    // Clients post to rooms they are in, and whisper (typing indicators) in presence rooms.
    config.client_publish = ClientPublish::Subscribed;
    config.whispers = true;
    let hub = Hub::builder()
        .config(config)
        // The user id comes from `?user_id=`; anyone may enter private and presence rooms.
        .authorizer(QueryUserId { allow_protected: true })
        .build();

    let mut events = hub.events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                HubEvent::PresenceJoined { channel, user_id } => println!("{user_id} joined {channel}"),
                HubEvent::PresenceLeft { channel, user_id } => println!("{user_id} left {channel}"),
                HubEvent::Disconnected {
                    user_id, code, cause, ..
                } => {
                    println!("{user_id} disconnected ({}, {cause:?})", code.0);
                }
                HubEvent::Error(error) => println!("error: {:?} {}", error.kind, error.message),
                _ => {}
            }
        }
    });

    let news = hub.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            news.publish(&ChannelKey::named("news"), Some("time"), format!("unix time {now}"));
        }
    });

    let listener = TcpListener::bind(&addr).await?;
    println!("chat on ws://{addr}/ws?user_id=NAME (tank: /tank)");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                let hub = hub.clone();
                tokio::spawn(async move {
                    let codec = |request: &wsengine::Request| {
                        if request.path() == "/tank" { CodecId::TANK } else { CodecId::NATIVE }
                    };
                    if let Err(error) = hub.accept::<_, TokioTimer>(TokioIo::new(stream), Some(peer), codec).await {
                        println!("{peer}: {error}");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("shutting down");
    let report = hub.shutdown::<TokioTimer>(ShutdownOptions::default()).await;
    println!(
        "closed {} connections ({} stopped at the deadline)",
        report.closing, report.aborted
    );
    Ok(())
}
