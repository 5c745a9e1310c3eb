//! Active HTTP health checks (`[health_check] path`), over plain TCP and over TLS.

use crate::support::{HttpBackend, body, eventually, http_get, proxy};

/// Two backends behind one route; `b`'s health path answers 503, so checks mark it down and
/// requests all go to `a`; once it answers 200 again it is back in rotation.
async fn health_path_ejects_and_restores(tls: bool) {
    let dir = std::env::temp_dir().join(format!(
        "wsengine-proxy-health-{}-{}",
        std::process::id(),
        if tls { "tls" } else { "plain" }
    ));
    let (scheme, host, trust, acceptor) = if tls {
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key, der) = crate::tls::self_signed();
        let ca = dir.join("back.pem");
        std::fs::write(&ca, cert).unwrap();
        let trust = format!("[upstream_tls]\nca = \"{}\"\n", ca.display());
        ("https", "localhost", trust, Some(crate::tls::acceptor(&key, der)))
    } else {
        ("http", "127.0.0.1", String::new(), None)
    };
    let a = HttpBackend::start("a", acceptor.clone()).await;
    let b = HttpBackend::start("b", acceptor).await;
    b.set_health(503);
    let text = format!(
        "listen = \"127.0.0.1:0\"\n\
         [health_check]\ninterval = \"50ms\"\ntimeout = \"2s\"\npath = \"/health\"\n\
         unhealthy_threshold = 2\nhealthy_threshold = 1\nmax_fails = 0\n{trust}\
         [[routes]]\npath = \"/\"\nupstream = \"p\"\n\
         [[upstreams]]\nname = \"p\"\nurl = \"{scheme}://{host}:{}\"\n\
         [[upstreams]]\nname = \"p\"\nurl = \"{scheme}://{host}:{}\"\n",
        a.port, b.port
    );
    let (proxy, addr) = proxy(&text).await;
    let pool = proxy.pool("p").unwrap();
    let healthy = |port: u16| {
        pool.backends()
            .iter()
            .find(|x| x.url.port == port)
            .unwrap()
            .is_healthy()
    };
    eventually("b marked down by its health path", || !healthy(b.port)).await;
    assert!(healthy(a.port), "a answers 200 and stays up");
    for _ in 0..4 {
        let response = http_get(addr, "/whoami", "").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(body(&response), "a", "{response}");
    }
    // The checks are real requests for the configured path, naming the backend as Host.
    let checks = b.checks();
    assert!(checks.len() >= 2, "{checks:?}");
    assert!(
        checks[0].contains(&format!("\r\nhost: {host}:{}\r\n", b.port)),
        "{checks:?}"
    );

    b.set_health(200);
    eventually("b marked up again", || healthy(b.port)).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let response = http_get(addr, "/whoami", "").await;
        seen.push(body(&response).to_owned());
    }
    assert!(
        seen.iter().any(|id| id == "a") && seen.iter().any(|id| id == "b"),
        "{seen:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn http_health_check_ejects_and_restores_a_backend() {
    health_path_ejects_and_restores(false).await;
}

#[tokio::test]
async fn http_health_check_over_tls_ejects_and_restores_a_backend() {
    health_path_ejects_and_restores(true).await;
}

/// A `wss://` backend whose certificate the proxy does not trust fails its HTTP check, as its
/// WebSocket leg would fail to connect.
#[tokio::test]
async fn http_health_check_over_tls_fails_an_untrusted_certificate() {
    let (_, key, der) = crate::tls::self_signed();
    let backend = HttpBackend::start("a", Some(crate::tls::acceptor(&key, der))).await;
    let text = format!(
        "listen = \"127.0.0.1:0\"\n\
         [health_check]\ninterval = \"50ms\"\ntimeout = \"2s\"\npath = \"/health\"\nunhealthy_threshold = 1\n\
         [[routes]]\npath = \"/\"\nupstream = \"p\"\n\
         [[upstreams]]\nname = \"p\"\nurl = \"https://localhost:{}\"\n",
        backend.port
    );
    let (proxy, _addr) = proxy(&text).await;
    let pool = proxy.pool("p").unwrap();
    eventually("the untrusted backend marked down", || {
        pool.backends().iter().all(|x| !x.is_healthy())
    })
    .await;
    assert!(
        backend.checks().is_empty(),
        "no request is sent over an untrusted connection"
    );
}
