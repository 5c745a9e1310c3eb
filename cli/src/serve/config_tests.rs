//! The configuration's parsing and checks: defaults, the soketi-shaped example, errors
//! naming key and line, environment overrides.

use super::*;

fn error_of(text: &str) -> (usize, String, String) {
    match Config::parse(text, "test.toml") {
        Err(ConfigError::Invalid { line, key, message, .. }) => (line, key, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

const SOKETI: &str = r#"listen = "127.0.0.1:6001"
[[apps]]
id = "app-id"
key = "app-key"
secret = "app-secret"
client_events = true
user_authentication = true
[[apps.webhooks]]
url = "http://127.0.0.1:3099/"
events = ["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event"]
"#;

#[test]
fn empty_file_is_the_embedded_default() {
    let config = Config::parse("", "x").unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:6001");
    let app = config.default_app();
    assert_eq!(
        (app.id.get_ref().as_str(), app.key.get_ref().as_str()),
        ("app-id", "app-key")
    );
    assert_eq!(app.secret, "app-secret");
    assert!(app.client_events);
    assert_eq!(config.broker, "in-process");
}

#[test]
fn parses_the_soketi_shaped_example() {
    let config = Config::parse(SOKETI, "x").unwrap();
    let app = config.default_app();
    assert!(app.user_authentication);
    assert_eq!(app.webhooks[0].events.len(), 5);
}

#[test]
fn errors_name_key_and_line() {
    let (line, key, message) = error_of("listen = \"127.0.0.1:6001\"\n\n[limits]\nmax_conections = 5\n");
    assert_eq!((line, key.as_str()), (4, "max_conections"), "{message}");
    let (line, key, _) = error_of("[heartbeat]\ninterval = \"15 fortnights\"\n");
    assert_eq!((line, key.as_str()), (2, "interval"));
    let (line, key, _) = error_of("listen = \"nowhere\"\n");
    assert_eq!((line, key.as_str()), (1, "listen"));
    let (line, key, _) = error_of(&SOKETI.replace("http://127", "ftp://127"));
    assert_eq!((line, key.as_str()), (9, "url"));
    let (line, key, _) = error_of(&SOKETI.replace("\"client_event\"", "\"client_evnt\""));
    assert_eq!((line, key.as_str()), (10, "events"));
    let (line, key, _) = error_of("default_app = \"nope\"\n");
    assert_eq!((line, key.as_str()), (1, "default_app"));
    let (line, key, _) = error_of("origins = [\"https://*\"]\n");
    assert_eq!((line, key.as_str()), (1, "origins"));
    let (line, key, _) = error_of("broker = \"rediss://127.0.0.1\"\n");
    assert_eq!((line, key.as_str()), (1, "broker"));
    assert_eq!(
        Config::parse("broker = \"redis://127.0.0.1:6379/\"\n", "x")
            .unwrap()
            .broker,
        "redis://127.0.0.1:6379/"
    );
    let (line, key, _) = error_of(
        "\n[[listeners]]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.key\"\n",
    );
    assert_eq!((line, key.as_str()), (4, "tls_cert"));
    let (line, key, _) = error_of(&format!(
        "{SOKETI}[[apps]]\nid = \"app-id\"\nkey = \"k2\"\nsecret = \"s\"\n"
    ));
    assert_eq!((line, key.as_str()), (12, "id"));
}

#[test]
fn webhook_urls_and_their_ca_files() {
    let https = SOKETI.replace("http://127", "https://127");
    assert_eq!(
        Config::parse(&https, "x").unwrap().apps[0].webhooks[0].url,
        "https://127.0.0.1:3099/"
    );
    // A CA file that is missing, empty, or given for a plain http:// URL is refused, at its
    // line.
    let missing = format!("{https}ca = \"/nonexistent/ca.pem\"\n");
    let (line, key, message) = error_of(&missing);
    assert_eq!((line, key.as_str()), (11, "ca"), "{message}");
    assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    let empty = std::env::temp_dir().join(format!("wsengine-empty-ca-{}.pem", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    let (line, key, message) = error_of(&format!("{https}ca = {:?}\n", empty.to_str().unwrap()));
    std::fs::remove_file(&empty).unwrap();
    assert_eq!((line, key.as_str()), (11, "ca"), "{message}");
    assert!(message.contains("no certificates"), "{message}");
    let (line, key, message) = error_of(&format!("{SOKETI}ca = \"/etc/ssl/ca.pem\"\n"));
    assert_eq!((line, key.as_str()), (11, "ca"), "{message}");
    assert!(message.contains("https://"), "{message}");
}

#[test]
fn app_settings_and_pusher_settings() {
    let text = "[[apps]]\nid = \"off\"\nkey = \"off-key\"\nsecret = \"s\"\n\
                enabled = false\nmax_connections = 5\nclient_events_per_second = 0\n\
                max_event_size = 100\nsignin_timeout = \"30s\"\n\
                [[apps]]\nid = \"main\"\nkey = \"main-key\"\nsecret = \"s\"\n\
                [pusher]\nactivity_timeout = \"60s\"\ncache_ttl = \"1m\"\nmax_batch_events = 3\n";
    let config = Config::parse(&format!("default_app = \"main\"\n{text}"), "x").unwrap();
    let app = &config.apps[0];
    assert!(!*app.enabled.get_ref());
    assert_eq!(
        (app.max_connections, app.client_events_per_second, app.max_event_size),
        (5, 0, 100)
    );
    assert_eq!(app.signin_timeout, Duration::from_secs(30));
    assert!(*config.apps[1].enabled.get_ref());
    assert_eq!(config.apps[1].client_events_per_second, 10);
    assert_eq!(config.pusher.activity_timeout, Duration::from_secs(60));
    assert_eq!(config.pusher.cache_ttl, Duration::from_secs(60));
    assert_eq!(config.pusher.max_batch_events, 3);
    assert_eq!(config.pusher.max_trigger_channels, 100);
    // The default app (the first, here) cannot be disabled.
    let (line, key, message) = error_of(text);
    assert_eq!((line, key.as_str()), (5, "enabled"), "{message}");
    let (line, key, _) = error_of("[pusher]\nactivity_timeout = \"1500ms\"\n");
    assert_eq!((line, key.as_str()), (2, "activity_timeout"));
}

#[test]
fn environment_overrides_the_file() {
    let env = [
        ("WSENGINE_LISTEN".to_owned(), "127.0.0.1:7001".to_owned()),
        ("WSENGINE_LIMITS__MAX_CONNECTIONS".to_owned(), "7".to_owned()),
        ("WSENGINE_LOG__FORMAT".to_owned(), "json".to_owned()),
        ("OTHER".to_owned(), "x".to_owned()),
    ];
    let config = Config::load(None, env, None).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:7001");
    assert_eq!(config.limits.max_connections, 7);
    assert_eq!(config.log.format, LogFormat::Json);
    let bad = [("WSENGINE_LIMITS__MAX_CONNECTIONS".to_owned(), "many".to_owned())];
    match Config::load(None, bad, None) {
        Err(ConfigError::Env { var, message }) => {
            assert_eq!(var, "WSENGINE_LIMITS__MAX_CONNECTIONS", "{message}");
        }
        other => panic!("{other:?}"),
    }
    let listen = SocketAddr::from(([127, 0, 0, 1], 9));
    let config = Config::load(None, Vec::new(), Some(listen)).unwrap();
    assert_eq!(config.listen, listen);
}

#[test]
fn missing_file_is_an_error() {
    let error = Config::load(Some(Path::new("/nonexistent/wsengine.toml")), Vec::new(), None).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/wsengine.toml"), "{error}");
}
