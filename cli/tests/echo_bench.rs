//! `wsengine echo` and `wsengine bench` against each other, as child processes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// A running `wsengine echo` on a free port; killed when dropped.
struct Echo {
    child: Child,
    url: String,
}

impl Echo {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsengine"))
            .args(["--log", "warn", "echo", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("wsengine echo: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, url }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args(["--log", "warn", "bench"])
        .args(args)
        .output()
        .unwrap()
}

/// `bench --json`'s line, after checking that it succeeded.
fn json_of(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn bench_measures_echoes_in_flight_and_at_a_rate() {
    let echo = Echo::start(&[]);
    let result = json_of(&bench(&[
        &echo.url, "-c", "4", "-k", "2", "-s", "100", "-d", "1", "--warmup", "0.2", "--json",
    ]));
    assert_eq!(result["connected"], 4, "{result}");
    assert_eq!(result["errors"], 0, "{result}");
    assert_eq!(result["deflate"], 0, "the server was not asked for deflate: {result}");
    assert!(result["messages"].as_u64().unwrap() > 0, "{result}");
    let (p50, p99, max) = (
        result["p50_us"].as_u64().unwrap(),
        result["p99_us"].as_u64().unwrap(),
        result["max_us"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{result}");

    // Open loop, text: every message is due on a schedule; none skipped.
    let result = json_of(&bench(&[
        &echo.url, "-c", "2", "--rate", "200", "--text", "-d", "1", "--warmup", "0", "--json",
    ]));
    assert_eq!(
        (result["errors"].as_u64(), result["skipped"].as_u64()),
        (Some(0), Some(0)),
        "{result}"
    );
    assert!(result["messages"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(result["in_flight"], serde_json::Value::Null, "{result}");
}

#[test]
fn echo_negotiates_deflate_only_when_asked() {
    let echo = Echo::start(&["--deflate"]);
    let result = json_of(&bench(&[
        &echo.url,
        "-c",
        "3",
        "-s",
        "4096",
        "--text",
        "--deflate",
        "-d",
        "0.5",
        "--warmup",
        "0",
        "--json",
    ]));
    assert_eq!(
        (result["deflate"].as_u64(), result["errors"].as_u64()),
        (Some(3), Some(0)),
        "{result}"
    );
    assert!(result["messages"].as_u64().unwrap() > 0, "{result}");
}

#[test]
fn bench_refuses_bad_arguments_and_fails_when_nothing_connects() {
    for args in [
        &["ws://127.0.0.1:9/", "-c", "0"][..],
        &["ws://127.0.0.1:9/", "-k", "0"][..],
        &["ws://127.0.0.1:9/", "-d", "-1"][..],
        &["ws://127.0.0.1:9/", "--rate", "0"][..],
        &["not a url"][..],
    ] {
        let output = bench(args);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(!output.stderr.is_empty(), "{args:?}: no message");
    }
    // Nothing listens on port 9 on loopback (discard is not run here): refused at once.
    let output = bench(&["ws://127.0.0.1:9/", "-c", "2", "-d", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no connection could be opened (2 tried)"), "{stderr}");
}
