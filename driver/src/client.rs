//! What a client needs besides the core's [`ClientRequest`](wsengine::ClientRequest): timeouts
//! and TLS settings, shared by the runtime crates' `connect` functions.

use std::sync::Arc;
use std::time::Duration;

use wsengine::Config;

/// How a runtime crate's `connect_with` connects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Limits, timers and compression for the connection.
    pub config: Arc<Config>,
    /// Bound on name resolution, TCP and TLS connect together (the opening handshake after it
    /// is bounded by `config.handshake_timeout`).
    pub connect_timeout: Duration,
    /// TLS settings for `wss://`; `None` uses the webpki (Mozilla) roots.
    #[cfg(feature = "rustls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            config: Arc::new(Config::default()),
            connect_timeout: Duration::from_secs(10),
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }
}

impl ConnectOptions {
    /// Options with `config` and the default timeout and TLS roots.
    pub fn new(config: impl Into<Arc<Config>>) -> Self {
        Self {
            config: config.into(),
            ..Self::default()
        }
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Uses `tls` for `wss://` (for a private CA or client certificates).
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// rustls client settings.
#[cfg(feature = "rustls")]
pub mod tls {
    use std::sync::{Arc, OnceLock};

    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, RootCertStore};

    use crate::Error;

    /// A client configuration trusting the webpki (Mozilla) roots, built once.
    pub fn default_client_config() -> Arc<ClientConfig> {
        static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                let roots = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                client_config(roots)
            })
            .clone()
    }

    /// A client configuration trusting exactly `roots`, with the ring provider and HTTP/1.1
    /// ALPN (a WebSocket handshake is HTTP/1.1).
    pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
            // The ring provider supports the default versions; this cannot fail.
            .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// What a TLS connector needs for `request`: the configuration from `options` (or the
    /// webpki default) and the name to verify and send as SNI.
    pub fn connector_parts(
        request: &wsengine::ClientRequest,
        options: &crate::ConnectOptions,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), Error> {
        let config = options.tls.clone().unwrap_or_else(default_client_config);
        Ok((config, server_name(request.host())?))
    }

    /// The name to verify the server's certificate against (SNI), from a URL's host.
    pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_owned())
            .map_err(|e| Error::Connect(format!("invalid TLS server name {host:?}: {e}")))
    }
}
