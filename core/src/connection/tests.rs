//! Tests that reach inside the connection (its compressor) to provoke failures the public API
//! cannot.

#[cfg(feature = "deflate")]
mod compression_failure {
    use std::time::Instant;

    use crate::{Accept, ApiMisuse, ClientRequest, Config, Connection, Event, Message, MessageKind};

    fn pump(from: &mut Connection, to: &mut Connection, now: Instant) -> usize {
        let mut sent = 0;
        while let Some(transmit) = from.poll_transmit() {
            sent += transmit.len();
            to.handle_data(now, transmit.header());
            to.handle_data(now, transmit.payload());
        }
        sent
    }

    fn open_compressed_pair() -> (Connection, Connection, Instant) {
        let now = Instant::now();
        let config = Config {
            rng_seed: Some(3),
            deflate: Some(crate::DeflateConfig::default().with_context_takeover()),
            ..Config::default()
        };
        let request = ClientRequest::new("ws://localhost/").unwrap();
        let mut client = Connection::client(config.clone(), &request, now);
        let mut server = Connection::server(config, now);
        pump(&mut client, &mut server, now);
        while let Some(event) = server.poll_event() {
            if let Event::Request(_) = event {
                server.accept(now, Accept::new()).unwrap();
            }
        }
        pump(&mut server, &mut client, now);
        while client.poll_event().is_some() {}
        assert!(server.compressor.is_some(), "compression agreed");
        (client, server, now)
    }

    fn received(conn: &mut Connection) -> Vec<Message> {
        std::iter::from_fn(|| conn.poll_event())
            .filter_map(|event| match event {
                Event::Message(message) => Some(message),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_failed_compression_fails_the_send_and_sends_nothing() {
        let (mut client, mut server, now) = open_compressed_pair();
        let text = "compress me ".repeat(50);
        server.send(text.as_str()).unwrap();
        pump(&mut server, &mut client, now);
        assert_eq!(received(&mut client), [Message::from(text.as_str())]);

        server.compressor.as_mut().unwrap().fail_next = true;
        assert_eq!(server.send(text.as_str()), Err(ApiMisuse::CompressionFailed));
        assert!(server.poll_transmit().is_none(), "no frame reached the wire");
        assert!(server.is_open());

        // The next message starts a fresh stream the client (which kept its context) reads.
        server.send(text.as_str()).unwrap();
        pump(&mut server, &mut client, now);
        assert_eq!(received(&mut client), [Message::from(text.as_str())]);
        assert!(client.is_open(), "the client saw no corrupt frame");
    }

    #[test]
    fn a_failed_fragment_can_be_sent_again() {
        let (mut client, mut server, now) = open_compressed_pair();
        server
            .send_fragment(MessageKind::Text, "first, ".into(), false)
            .unwrap();
        server.compressor.as_mut().unwrap().fail_next = true;
        assert_eq!(
            server.send_fragment(MessageKind::Text, "second".into(), true),
            Err(ApiMisuse::CompressionFailed)
        );
        // The message is still under way: the same fragment goes through on a retry.
        server.send_fragment(MessageKind::Text, "second".into(), true).unwrap();
        pump(&mut server, &mut client, now);
        assert_eq!(received(&mut client), [Message::from("first, second")]);
        assert!(client.is_open());
    }
}
