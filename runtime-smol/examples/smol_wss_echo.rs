//! `wss://` end to end on smol: generates a self-signed certificate for `localhost` (rcgen),
//! serves a TLS echo on it, and connects a client that trusts exactly that certificate.
//!
//! ```text
//! cargo run --release -p wsengine-smol --example smol_wss_echo
//! ```

use std::sync::Arc;

use futures_rustls::rustls::{self, RootCertStore, pki_types::PrivateKeyDer};
use smol::net::TcpListener;
use wsengine_smol::{ClientRequest, CloseCode, Config, ConnectOptions, accept, connect_with};

#[path = "../../core/examples/common/cli.rs"]
mod cli;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cli::Args::parse(
        "smol_wss_echo",
        "",
        "Serves a TLS echo on 127.0.0.1 with a fresh self-signed certificate and talks to it.",
        &[],
        0,
    );
    smol::block_on(async {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
        let key = PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)?;
        let acceptor = futures_rustls::TlsAcceptor::from(Arc::new(server_tls));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        println!("smol_wss_echo: serving wss://localhost:{port}/");
        smol::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                smol::spawn(async move {
                    let tcp = wsengine_smol::TcpStream::from(tcp);
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let Ok(mut ws) = accept(tls, Config::default()).await else {
                        return;
                    };
                    while let Ok(message) = ws.recv().await {
                        if ws.send(message).await.is_err() {
                            break;
                        }
                    }
                })
                .detach();
            }
        })
        .detach();

        let mut roots = RootCertStore::empty();
        roots.add(certified.cert.der().clone())?;
        let options = ConnectOptions::default().tls(wsengine_driver::tls::client_config(roots));
        let request = ClientRequest::new(format!("wss://localhost:{port}/").as_str())?;
        let (mut ws, _) = connect_with(&request, &options).await?;
        ws.send("hello over TLS").await?;
        println!("smol_wss_echo: echo: {:?}", ws.recv().await?);
        let info = ws.close(CloseCode::NORMAL, "bye").await?;
        println!("smol_wss_echo: closed cleanly: {}", info.clean);
        Ok(())
    })
}
