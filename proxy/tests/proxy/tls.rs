//! TLS on both legs: a `wss://` listener and a `wss://` backend trusted through `upstream_tls`.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::rustls;
use wsengine_tokio::{ClientRequest, CloseCode, ConnectOptions, Message};

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM, certificate DER).
pub(crate) fn self_signed() -> (String, String, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = certified.cert.der().clone();
    (certified.cert.pem(), certified.key_pair.serialize_pem(), der)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS acceptor for a backend with this key (PEM) and certificate.
pub(crate) fn acceptor(key_pem: &str, cert: rustls::pki_types::CertificateDer<'static>) -> tokio_rustls::TlsAcceptor {
    let key =
        rustls::pki_types::PrivateKeyDer::Pkcs8(rcgen::KeyPair::from_pem(key_pem).unwrap().serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(server))
}

#[tokio::test]
async fn wss_listener_in_front_of_a_wss_backend() {
    let dir = std::env::temp_dir().join(format!("wsengine-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (front_cert, front_key, front_der) = self_signed();
    let (back_cert, back_key, back_der) = self_signed();
    for (name, text) in [
        ("front.pem", &front_cert),
        ("front.key", &front_key),
        ("back.pem", &back_cert),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }

    // The backend: TLS, then an echo that reports the forwarded protocol.
    let acceptor = acceptor(&back_key, back_der);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let mut proto = String::new();
                let accepted = wsengine_tokio::accept_with(tls, wsengine_tokio::Config::default(), |request| {
                    let value = request.headers().get("x-forwarded-proto").and_then(|v| v.to_str().ok());
                    proto = value.unwrap_or("").to_owned();
                    Ok(wsengine_tokio::Accept::new())
                })
                .await;
                let Ok(mut ws) = accepted else { return };
                while let Ok(message) = ws.recv().await {
                    let reply = format!("{proto}:{}", message.as_text().unwrap_or(""));
                    if ws.send(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });

    let text = format!(
        "listen = \"127.0.0.1:0\"\n[health_check]\ninterval = \"0s\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[upstream_tls]\nca = \"{}\"\n[[routes]]\npath = \"/\"\nupstream = \"s\"\n[[upstreams]]\nname = \"s\"\nurl = \"wss://localhost:{backend_port}\"\n",
        dir.join("front.pem").display(),
        dir.join("front.key").display(),
        dir.join("back.pem").display(),
    );
    let (_proxy, addr) = crate::support::proxy(&text).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(front_der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let request = ClientRequest::new(format!("wss://localhost:{}/", addr.port())).unwrap();
    let options = ConnectOptions::default().tls(Arc::new(client));
    let (mut ws, _) = wsengine_tokio::connect_with(&request, &options).await.unwrap();
    ws.send("secret").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from("https:secret"));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn plain_http_reaches_a_wss_backend_over_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = std::env::temp_dir().join(format!("wsengine-proxy-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (back_cert, back_key, back_der) = self_signed();
    std::fs::write(dir.join("back.pem"), &back_cert).unwrap();
    let acceptor = acceptor(&back_key, back_der);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_port = listener.local_addr().unwrap().port();
    // The backend answers one request, over TLS, with its request line and forwarded protocol.
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let line = head.lines().next().unwrap_or("").to_owned();
        let proto = head
            .lines()
            .find_map(|l| l.strip_prefix("x-forwarded-proto: "))
            .unwrap_or("")
            .to_owned();
        let body = format!("{line} via {proto}");
        let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        let _ = tls.write_all(response.as_bytes()).await;
        let _ = tls.shutdown().await;
    });

    let text = format!(
        "listen = \"127.0.0.1:0\"\n[health_check]\ninterval = \"0s\"\n[upstream_tls]\nca = \"{}\"\n[[routes]]\npath = \"/\"\nupstream = \"s\"\n[[upstreams]]\nname = \"s\"\nurl = \"wss://localhost:{backend_port}\"\n",
        dir.join("back.pem").display(),
    );
    let (_proxy, addr) = crate::support::proxy(&text).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /status?x=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("get /status?x=1 http/1.1 via http"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
