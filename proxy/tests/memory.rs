//! A large message relayed in fragments with bounded memory. Its own test binary, so no other
//! test shares the process whose peak RSS it measures.
//!
//! `PROXY_MEMORY_MIB=256 cargo test --release -p wsengine-proxy --test memory -- --nocapture`
//! runs the 256 MiB case; the default keeps debug builds quick.

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpListener;
use wsengine_tokio::{ClientRequest, CloseCode, ConnectOptions, Incoming, Message, MessageKind};

/// Peak resident set (VmHWM) in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Resets the peak to the current RSS (Linux: `echo 5 > /proc/self/clear_refs`).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_passes_in_fragments_with_bounded_memory() {
    let mib: usize = std::env::var("PROXY_MEMORY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    // Backend: counts what arrives fragment by fragment and answers the total.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut config = wsengine_tokio::Config::default();
        config.deliver_fragments = true;
        config.max_message_size = usize::MAX / 2;
        config.max_fragments = usize::MAX / 2;
        let mut ws = wsengine_tokio::accept(tcp, config).await.unwrap();
        let (mut total, mut frames) = (0usize, 0usize);
        loop {
            match ws.recv_incoming().await {
                Ok(Incoming::Fragment(f)) => {
                    total += f.data.len();
                    frames += 1;
                    if f.is_final {
                        ws.send(format!("{total} {frames}")).await.unwrap();
                        (total, frames) = (0, 0);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[health_check]\ninterval = \"0s\"\n[[routes]]\npath = \"/\"\nupstream = \"b\"\n[[upstreams]]\nname = \"b\"\nurl = \"ws://{backend}\"\n"
    );
    let proxy = wsengine_proxy::Proxy::new(wsengine_proxy::Config::parse(&text, "t").unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { proxy.serve(listener).await });

    let request = ClientRequest::new(format!("ws://{addr}/")).unwrap();
    let (mut ws, _) = wsengine_tokio::connect_with(&request, &ConnectOptions::new(Arc::new(Default::default())))
        .await
        .unwrap();
    let chunk = Bytes::from(vec![0x5a; 1 << 20]);
    // Warm up: one small message so buffers that stay allocated exist before the baseline.
    ws.send_fragment(MessageKind::Binary, chunk.clone(), true)
        .await
        .unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from("1048576 1"));
    reset_peak();
    let before = peak_rss_kib();
    for i in 0..mib {
        ws.send_fragment(MessageKind::Binary, chunk.clone(), i + 1 == mib)
            .await
            .unwrap();
    }
    let answer = ws.recv().await.unwrap();
    let growth_mib = (peak_rss_kib().saturating_sub(before)) as f64 / 1024.0;
    println!("relayed {mib} MiB in 1 MiB fragments: peak RSS grew {growth_mib:.1} MiB");
    assert_eq!(answer, Message::from(format!("{} {mib}", mib << 20)));
    assert!(growth_mib < 16.0, "peak RSS grew {growth_mib:.1} MiB");
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}
