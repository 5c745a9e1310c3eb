//! The Pusher HTTP API refuses a publication other nodes cannot get while Redis is down.

use bytes::Bytes;
use serde_json::{Value, json};
use wsengine_hub::pusher::Pusher;
use wsengine_hub::pusher::sign::{hmac_hex, md5_hex};

use crate::support::{RedisServer, cluster, eventually, subscriptions_settled, within};

/// POSTs `body` to `/apps/1/<route>`, signed as the server SDKs sign it.
fn post(pusher: &Pusher, route: &str, body: &str) -> (u16, Value) {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string();
    let path = format!("/apps/1/{route}");
    let query = format!(
        "auth_key=key&auth_timestamp={timestamp}&auth_version=1.0&body_md5={}",
        md5_hex(body.as_bytes())
    );
    let signature = hmac_hex("secret", &format!("POST\n{path}\n{query}"));
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{path}?{query}&auth_signature={signature}"))
        .body(Bytes::from(body.to_owned()))
        .expect("request");
    let response = pusher.handle(request);
    let status = response.status().as_u16();
    (status, serde_json::from_slice(response.body()).unwrap_or(Value::Null))
}

fn trigger(pusher: &Pusher, body: &str) -> (u16, Value) {
    post(pusher, "events", body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_publications_fail_with_503_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let nodes = cluster(&redis, "http", |_| {}).await;
    let pusher = &nodes[0].pusher;
    let mut local = nodes[0].client("a").await;
    local.subscribe("news").await;
    let mut remote = nodes[1].client("b").await;
    remote.subscribe("news").await;
    subscriptions_settled(&nodes).await;
    let body = json!({"name":"update","channel":"news","data":"up"}).to_string();
    assert_eq!(trigger(pusher, &body), (200, json!({})));
    assert_eq!(local.recv_json().await["data"], "up");
    assert_eq!(within(10, "remote", remote.recv_json()).await["data"], "up");

    redis.kill();
    eventually(10, "outage seen", || !nodes[0].broker.is_connected()).await;
    let (status, answer) = trigger(pusher, &body);
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"].as_str().is_some_and(|e| e.contains("other nodes")),
        "{answer}"
    );
    let batch = json!({"batch":[{"name":"update","channel":"news","data":"b"}]}).to_string();
    let batch_path_status = post(pusher, "batch_events", &batch).0;
    assert_eq!(batch_path_status, 503);
    // Refused means not published at all, here either; a client's publication on this node
    // is still delivered here.
    local.nothing_pending().await;
    let delivery = nodes[0]
        .hub
        .publish(&wsengine_hub::ChannelKey::named("news"), None, "local");
    assert_eq!(delivery.queued, 1);
    assert_eq!(local.recv_json().await["data"], "local");

    redis.restart();
    eventually(10, "reconnected", || nodes.iter().all(|n| n.broker.is_connected())).await;
    subscriptions_settled(&nodes).await;
    assert_eq!(trigger(pusher, &body), (200, json!({})));
    assert_eq!(local.recv_json().await["data"], "up");
    assert_eq!(within(10, "remote after", remote.recv_json()).await["data"], "up");
    remote.nothing_pending().await;
}
