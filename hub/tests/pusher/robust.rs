//! Arbitrary input never panics: HTTP API requests always get a status, client frames are
//! answered or ignored.

use bytes::Bytes;
use proptest::prelude::*;
use wsengine_hub::ConnectionId;
use wsengine_hub::codec::Codec;

use crate::support::{APP_ID, SECRET, now, signed, start, test_app};

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("apps".to_owned()),
        Just(APP_ID.to_owned()),
        Just("events".to_owned()),
        Just("batch_events".to_owned()),
        Just("channels".to_owned()),
        Just("users".to_owned()),
        Just("terminate_connections".to_owned()),
        "[a-z%#0-9-]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn http_api_always_answers(
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT")],
        segments in prop::collection::vec(segment(), 0..5),
        query in "[a-z_=&%0-9,.-]{0,60}",
        body in prop::collection::vec(any::<u8>(), 0..200),
        sign in any::<bool>(),
    ) {
        let server = shared();
        let path = format!("/{}", segments.join("/"));
        let request = if sign {
            let text = String::from_utf8_lossy(&body).into_owned();
            signed(method, &path, &[], &text, SECRET, now())
        } else {
            let Ok(request) = http::Request::builder()
                .method(method)
                .uri(format!("{path}?{query}"))
                .body(Bytes::from(body))
            else {
                return Ok(());
            };
            request
        };
        let status = server.pusher.handle(request).status().as_u16();
        prop_assert!([200, 400, 401, 403, 404, 405, 413].contains(&status), "{status}");
    }

    #[test]
    fn frames_never_panic(
        event in prop_oneof![
            Just("pusher:subscribe"), Just("pusher:unsubscribe"), Just("pusher:signin"),
            Just("pusher:ping"), Just("client-x"), Just("other"),
        ],
        data in "[ -~]{0,80}",
        channel in "[a-z#-]{0,20}",
        raw in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let server = shared();
        let codec = server.pusher.codec();
        let frames = [
            serde_json::json!({"event": event, "channel": channel, "data": data}).to_string(),
            serde_json::json!({"event": event, "data": {"channel": channel, "auth": data, "channel_data": data}}).to_string(),
            String::from_utf8_lossy(&raw).into_owned(),
        ];
        for frame in frames {
            let _ = codec.decode_from(&wsengine::Message::from(frame), "x", ConnectionId(u64::MAX));
        }
    }
}

fn shared() -> &'static crate::support::Server {
    static SERVER: std::sync::OnceLock<crate::support::Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| start(vec![test_app()]))
}
