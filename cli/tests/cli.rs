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
