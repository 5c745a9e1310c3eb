//! The `wsengine` binary: config errors name key and line and exit non-zero.

use std::process::Command;

fn run(config: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("wsengine-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.toml", config.len()));
    std::fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args(["proxy", "--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    output
}

#[test]
fn bad_config_names_key_and_line_and_fails() {
    let output = run("listen = \"127.0.0.1:8080\"\n\n[heartbeat]\ninterval = \"15 fortnights\"\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(":4: interval: "), "{stderr}");
    let output = run("listen = \"127.0.0.1:8080\"\n[[routes]]\npath = \"/ws\"\nupstream = \"missing\"\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(":4: upstream: no [[upstreams]] entry is named \"missing\""),
        "{stderr}"
    );
}

#[test]
fn good_config_checks_ok() {
    let output = run(
        "listen = \"127.0.0.1:8080\"\n[[routes]]\npath = \"/ws\"\nupstream = \"u\"\n[[upstreams]]\nname = \"u\"\nurl = \"ws://127.0.0.1:9\"\n",
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// One GET over a fresh connection; the status line.
fn status_line(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn sighup_reloads_and_a_bad_file_keeps_the_running_config() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("wsengine-cli-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    let config = |metrics: &str| format!("listen = \"127.0.0.1:0\"\nmetrics_path = \"{metrics}\"\n");
    std::fs::write(&path, config("/one")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args(["--log", "info", "proxy", "--threads", "1", "--config"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(|l| l.map(|l| plain(&l)));
    // The log names the bound address: "... wsengine proxy listening addr=127.0.0.1:PORT".
    let addr = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .find_map(|l| l.split("addr=").nth(1).map(|a| a.trim().to_owned()))
        .expect("listening line");
    assert!(status_line(&addr, "/one").contains(" 200 "));
    let hup = |child: &std::process::Child| {
        let ok = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    std::fs::write(&path, config("/two")).unwrap();
    hup(&child);
    let reloaded = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .any(|l| l.contains("configuration reloaded"));
    assert!(reloaded);
    assert!(status_line(&addr, "/two").contains(" 200 "));
    assert!(status_line(&addr, "/one").contains(" 404 "));
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\nmetrics_path = 5\n").unwrap();
    hup(&child);
    let refused = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .find(|l| l.contains("reload failed"));
    assert!(
        refused.as_deref().is_some_and(|l| l.contains(":2: metrics_path")),
        "{refused:?}"
    );
    assert!(status_line(&addr, "/two").contains(" 200 "));
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `line` without ANSI colour sequences (the log may be coloured even into a pipe).
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
