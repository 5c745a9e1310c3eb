//! A private redis-server on a loopback port, for the scale-out example and tests: the
//! `redis_fanout` example, the crate's cluster tests and `wsengine serve`'s Redis tests include
//! this file as a module with `#[path]`.
// Each includer uses only some of these.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Installs Debian's redis-server when it is missing (the tests must work on a fresh machine);
/// an error says why it is still missing.
pub(crate) fn ensure_installed() -> Result<(), String> {
    // Tests run in parallel: one installs, the others wait for it.
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let present = || Command::new("redis-server").arg("--version").output().is_ok();
    if present() {
        return Ok(());
    }
    let log = std::env::temp_dir().join("wsengine-redis-apt.log");
    let script = format!(
        "(apt-get update && apt-get install -y redis-server) >{} 2>&1",
        log.display()
    );
    let status = Command::new("sh").args(["-c", &script]).status();
    if present() {
        Ok(())
    } else {
        Err(format!(
            "redis-server is missing and could not be installed ({status:?}, see {})",
            log.display()
        ))
    }
}

/// Starts redis-server on 127.0.0.1:`port` without persistence, working in `dir`.
pub(crate) fn spawn(port: u16, dir: &Path) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Waits, up to `limit`, until the server on `port` answers PING.
pub(crate) fn answers(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 16];
            if stream.write_all(b"PING\r\n").is_ok()
                && stream.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
