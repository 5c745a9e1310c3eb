//! Two connections wired to each other, with a virtual clock.

use std::time::{Duration, Instant};

use wsengine::{Accept, ClientRequest, Config, Connection, Event, Transmit};

/// A client and a server exchanging bytes in memory. `chunk` limits how many bytes each
/// `handle_data` call gets (1 = one byte at a time).
pub(crate) struct Pair {
    pub(crate) client: Connection,
    pub(crate) server: Connection,
    pub(crate) now: Instant,
    pub(crate) chunk: usize,
    /// Accept requests automatically with this answer; `None` leaves them to the test.
    pub(crate) accept: Option<Accept>,
    /// Deliver bytes at all (false simulates a peer that stopped reading and answering).
    pub(crate) deliver_to_server: bool,
    pub(crate) deliver_to_client: bool,
    pub(crate) client_events: Vec<Event>,
    pub(crate) server_events: Vec<Event>,
    /// Bytes each side put on the wire, for checks on raw frames.
    pub(crate) client_wire: Vec<u8>,
    pub(crate) server_wire: Vec<u8>,
    client_transport_closed: bool,
    server_transport_closed: bool,
}

pub(crate) fn config() -> Config {
    let mut config = Config::default();
    config.rng_seed = Some(7);
    config
}

impl Pair {
    pub(crate) fn new() -> Self {
        Self::with(config(), config(), ClientRequest::new("ws://example.com/chat").unwrap())
    }

    pub(crate) fn with(client: Config, server: Config, request: ClientRequest) -> Self {
        let now = Instant::now();
        Self {
            client: Connection::client(client, &request, now),
            server: Connection::server(server, now),
            now,
            chunk: usize::MAX,
            accept: Some(Accept::new()),
            deliver_to_server: true,
            deliver_to_client: true,
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_wire: Vec::new(),
            server_wire: Vec::new(),
            client_transport_closed: false,
            server_transport_closed: false,
        }
    }

    /// A pair that has completed the opening handshake, with its events cleared.
    pub(crate) fn open() -> Self {
        let mut pair = Self::new();
        pair.drive();
        assert!(pair.client.is_open() && pair.server.is_open());
        pair.client_events.clear();
        pair.server_events.clear();
        pair
    }

    /// Moves bytes both ways and collects events until nothing more happens.
    pub(crate) fn drive(&mut self) {
        for _ in 0..100_000 {
            let mut progressed = false;
            while let Some(event) = self.server.poll_event() {
                if let (Event::Request(_), Some(accept)) = (&event, &self.accept) {
                    self.server.accept(self.now, accept.clone()).unwrap();
                }
                self.server_events.push(event);
                progressed = true;
            }
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
                progressed = true;
            }
            let to_server = drain(&mut self.client);
            self.client_wire.extend_from_slice(&to_server);
            if self.deliver_to_server && !self.server_transport_closed {
                progressed |= feed(&mut self.server, self.now, &to_server, self.chunk);
            }
            let to_client = drain(&mut self.server);
            self.server_wire.extend_from_slice(&to_client);
            if self.deliver_to_client && !self.client_transport_closed {
                progressed |= feed(&mut self.client, self.now, &to_client, self.chunk);
            }
            // A side that is done closes its transport: the other side reads end of stream.
            if self.server.close_expected() && !self.server_transport_closed {
                self.server_transport_closed = true;
                self.client.handle_eof(self.now);
                progressed = true;
            }
            if self.client.close_expected() && !self.client_transport_closed {
                self.client_transport_closed = true;
                self.server.handle_eof(self.now);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
        panic!("the pair did not settle");
    }

    /// Advances the virtual clock, runs both sides' timers, and drives.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.drive();
    }

    pub(crate) fn is_transport_closed(&self) -> (bool, bool) {
        (self.client_transport_closed, self.server_transport_closed)
    }
}

pub(crate) fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(transmit) = conn.poll_transmit() {
        write(&transmit, &mut out);
    }
    out
}

fn write(transmit: &Transmit, out: &mut Vec<u8>) {
    assert!(!transmit.is_empty());
    transmit.write_to(out);
}

fn feed(conn: &mut Connection, now: Instant, bytes: &[u8], chunk: usize) -> bool {
    for piece in bytes.chunks(chunk.max(1)) {
        conn.handle_data(now, piece);
    }
    !bytes.is_empty()
}

/// The last `Closed` event in `events`, asserting it is the final event.
pub(crate) fn closed(events: &[Event]) -> &wsengine::CloseInfo {
    match events.last() {
        Some(Event::Closed(info)) => info,
        other => panic!("expected a final Closed event, got {other:?} in {events:?}"),
    }
}

pub(crate) fn messages(events: &[Event]) -> Vec<wsengine::Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}
