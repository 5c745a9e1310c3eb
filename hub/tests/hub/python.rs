//! Python `websockets` as the client of both protocols. The virtualenv is made on first use
//! (as scripts/interop.sh does); a failure to make it fails the test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use wsengine_hub::{ChannelKey, ClientPublish, Hub, HubEvent};

use crate::rt::{Rt, Tokio};
use crate::suite::config;
use crate::support::serve;

fn python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    let venv = std::env::var_os("INTEROP_VENV").map_or_else(|| cache.join("wsengine/interop-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    // Tests run in parallel: one makes the virtualenv, the others wait for it.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let ready = Command::new(&python)
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let venv_made = || {
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
        };
        // Debian's python3 lacks the venv module until python3-venv is installed.
        let made = venv_made() || {
            let _ = Command::new("sh")
                .args([
                    "-c",
                    "(apt-get update && apt-get install -y python3-venv) >/dev/null 2>&1",
                ])
                .status();
            venv_made()
        };
        assert!(made, "cannot create a virtualenv at {venv:?} (python3-venv)");
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "websockets"])
            .status();
        assert!(pip.is_ok_and(|s| s.success()), "cannot install websockets from PyPI");
    }
    python
}

fn run_script(script: &str, port: u16) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let output = Command::new(python())
        .arg(&path)
        .arg(format!("ws://127.0.0.1:{port}"))
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "{script} failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn python_websockets_native_protocol() {
    Tokio::block_on(async {
        let mut config = config();
        config.client_publish = ClientPublish::Subscribed;
        config.whispers = true;
        // Python offers permessage-deflate: publications are then compressed once for all.
        let mut ws = (*config.websocket).clone();
        let mut deflate = wsengine::DeflateConfig::default();
        deflate.threshold = 0;
        ws.deflate = Some(deflate);
        config.websocket = Arc::new(ws);
        let hub = Hub::new(config);
        let addr = serve::<Tokio>(&hub).await;
        tokio::task::spawn_blocking(move || run_script("native_client.py", addr.port()))
            .await
            .unwrap();
    });
}

#[test]
fn python_websockets_tank_protocol() {
    Tokio::block_on(async {
        let hub = Hub::new(config());
        let publisher = Arc::new(hub.clone());
        hub.on_event(move |event| {
            if let HubEvent::Subscribed { channel, .. } = event {
                if publisher.channel_size(channel) == 2 {
                    publisher.publish(&ChannelKey::named("news"), None, "from server");
                }
            }
        });
        let addr = serve::<Tokio>(&hub).await;
        tokio::task::spawn_blocking(move || run_script("tank_client.py", addr.port()))
            .await
            .unwrap();
    });
}
