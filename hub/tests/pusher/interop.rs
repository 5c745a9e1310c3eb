//! Stock clients from npm (interop/pusher): pusher-js 8 and laravel-echo as WebSocket clients,
//! the `pusher` server SDK for signing, triggering and channel queries. Missing packages are
//! installed with `npm ci`; a failure to install fails the test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use serde_json::json;
use wsengine_hub::pusher::Webhook;

use crate::support::{APP_ID, KEY, MASTER_KEY, SECRET, Server, start, test_app};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop/pusher")
}

/// Installs the pinned packages once per test process.
fn npm_ready() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let dir = interop_dir();
    let installed = ["pusher-js", "pusher", "laravel-echo"]
        .iter()
        .all(|p| dir.join("node_modules").join(p).join("package.json").exists());
    if !installed {
        let output = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .expect("npm is required for the Pusher interop tests");
        assert!(
            output.status.success(),
            "npm ci failed in {}:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    *done = true;
}

/// Runs `node scenario.js NAME` against `server` (bounded by the script's own 40 s timer and
/// `timeout` 60 s); panics with its output unless it printed `OK NAME`.
fn scenario(server: &Server, name: &str, extra: serde_json::Value) {
    npm_ready();
    let mut env = json!({
        "wsPort": server.ws.port(),
        "apiPort": server.api.port(),
        "appId": APP_ID,
        "key": KEY,
        "secret": SECRET,
        "masterKey": MASTER_KEY,
    });
    if let (Some(env), Some(extra)) = (env.as_object_mut(), extra.as_object()) {
        env.extend(extra.clone());
    }
    let output = Command::new("timeout")
        .args(["60", "node", "scenario.js", name])
        .env("PUSHER_TEST", env.to_string())
        .current_dir(interop_dir())
        .output()
        .expect("node is required for the Pusher interop tests");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("OK {name}")),
        "scenario {name} failed ({:?}):\n{stdout}\n{stderr}",
        output.status
    );
}

fn webhook_names(hooks: &[Webhook]) -> Vec<(String, String)> {
    let mut names = Vec::new();
    for hook in hooks {
        let body: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
        for event in body["events"].as_array().unwrap() {
            names.push((
                event["name"].as_str().unwrap().to_owned(),
                event["channel"].as_str().unwrap().to_owned(),
            ));
        }
    }
    names
}

#[test]
fn pusher_js_public_private_presence_and_server_sdk() {
    let server = start(vec![test_app()]);
    scenario(&server, "channels", json!({}));
    // The webhooks the run caused verify with the server SDK.
    let hooks = server.webhooks.lock().unwrap().clone();
    let names = webhook_names(&hooks);
    for expected in [
        ("channel_occupied", "presence-room"),
        ("member_added", "presence-room"),
        ("member_removed", "presence-room"),
    ] {
        assert!(
            names.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not in {names:?}"
        );
    }
    let member_added = names.iter().filter(|(n, _)| n == "member_added").count();
    assert_eq!(member_added, 2, "users 1 and 2, once each: {names:?}");
    let hook = hooks.first().unwrap();
    let headers: serde_json::Map<String, serde_json::Value> =
        hook.headers.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    scenario(
        &server,
        "webhook",
        json!({"webhookHeaders": headers, "webhookBody": String::from_utf8_lossy(&hook.body)}),
    );
}

#[test]
fn pusher_js_client_events() {
    let server = start(vec![test_app()]);
    scenario(&server, "client_events", json!({}));
    let names = webhook_names(&server.webhooks.lock().unwrap());
    assert!(
        names.contains(&("client_event".to_owned(), "private-chat".to_owned())),
        "{names:?}"
    );
}

#[test]
fn pusher_js_errors() {
    let server = start(vec![test_app()]);
    scenario(&server, "errors", json!({}));
}

#[test]
fn pusher_js_signin_send_to_user_and_terminate() {
    let server = start(vec![test_app()]);
    scenario(&server, "signin", json!({}));
}

#[test]
fn pusher_js_cache_and_encrypted_channels() {
    let server = start(vec![test_app()]);
    scenario(&server, "cache_encrypted", json!({}));
    let names = webhook_names(&server.webhooks.lock().unwrap());
    assert!(
        names.contains(&("cache_miss".to_owned(), "cache-empty".to_owned())),
        "{names:?}"
    );
}

#[test]
fn laravel_echo_over_pusher_js() {
    let server = start(vec![test_app()]);
    scenario(&server, "echo", json!({}));
}
