//! Reading a large frame's payload straight into its message buffer: the transport writes the
//! bytes where the message will keep them, instead of into a read buffer the core copies from.

use std::time::Instant;

use super::Connection;

impl Connection {
    /// While a large uncompressed data frame is arriving: up to `max` bytes of room at the end
    /// of its message buffer, for the transport to read the frame's next payload bytes into.
    /// After the read, call [`handle_payload`](Self::handle_payload) with the number of bytes
    /// it brought, 0 included (nothing came, the read would block or failed): the room is
    /// given back then. `None` in every other case (a header or a small frame is next, a
    /// compressed message, a control frame, or the room is not reserved yet): read into your
    /// own buffer and call [`handle_data`](Self::handle_data).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use wsengine::{Config, Connection, Event, Negotiated, Role};
    /// let now = Instant::now();
    /// let mut conn = Connection::upgraded(Role::Client, Config::default(), &Negotiated::default(), now);
    /// // A 100 000-byte binary frame from the server: its header and first bytes...
    /// let mut head = vec![0x82, 127];
    /// head.extend_from_slice(&100_000u64.to_be_bytes());
    /// head.extend(std::iter::repeat_n(7u8, 20_000));
    /// conn.handle_data(now, &head);
    /// // ...then the rest, read straight into the message.
    /// let mut left = 80_000;
    /// while left > 0 {
    ///     let room = conn.payload_buf(64 * 1024).expect("room for the rest of the frame");
    ///     let n = room.len().min(left);
    ///     room[..n].fill(7); // what a socket read would do
    ///     conn.handle_payload(now, n);
    ///     left -= n;
    /// }
    /// let Some(Event::Message(message)) = conn.poll_event() else { panic!("a message") };
    /// assert_eq!(message.len(), 100_000);
    /// ```
    pub fn payload_buf(&mut self, max: usize) -> Option<&mut [u8]> {
        if self.pending_failure.is_some() || !self.state.is_receiving() {
            return None;
        }
        self.receiver.payload_room(max)
    }

    /// `n` bytes were read into the room [`payload_buf`](Self::payload_buf) gave (0 when the
    /// read brought nothing): they are unmasked and checked like bytes given to
    /// [`handle_data`](Self::handle_data), and the rest of the room is given back.
    pub fn handle_payload(&mut self, now: Instant, n: usize) {
        if self.pending_failure.is_some() || !self.state.is_receiving() {
            return;
        }
        if n > 0 {
            self.traffic_arrived(now);
        }
        match self.receiver.payload_arrived(n, &self.config) {
            Ok(Some(received)) => self.on_received(now, received),
            Ok(None) => {}
            Err(error) => self.pending_failure = Some(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::frame::apply_mask;
    use crate::{CloseCode, Config, Connection, Event, Message, Negotiated, Role};

    const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

    fn server() -> (Connection, Instant) {
        let now = Instant::now();
        (
            Connection::upgraded(Role::Server, Config::default(), &Negotiated::default(), now),
            now,
        )
    }

    /// A masked frame as a client sends it.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut wire = vec![first];
        match payload.len() {
            n @ 0..=125 => wire.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                wire.push(0x80 | 126);
                wire.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                wire.push(0x80 | 127);
                wire.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        wire.extend_from_slice(&KEY);
        let mut masked = payload.to_vec();
        apply_mask(&mut masked, KEY, 0);
        wire.extend_from_slice(&masked);
        wire
    }

    /// Feeds `wire` the way the driver does: straight into the message buffer whenever the
    /// core offers room (`step` bytes at most per read, some reads bringing nothing), else
    /// through `handle_data` in `step`-byte reads. Returns how many bytes went straight in.
    fn feed(conn: &mut Connection, now: Instant, wire: &[u8], step: usize) -> usize {
        let mut pos = 0;
        let mut direct = 0;
        let mut reads = 0usize;
        while pos < wire.len() {
            reads += 1;
            if let Some(room) = conn.payload_buf(step) {
                if reads % 5 == 0 {
                    // A read that would block: nothing arrives, the room is given back.
                    conn.handle_payload(now, 0);
                    continue;
                }
                let n = room.len().min(wire.len() - pos);
                room[..n].copy_from_slice(&wire[pos..pos + n]);
                conn.handle_payload(now, n);
                pos += n;
                direct += n;
            } else {
                let n = step.min(wire.len() - pos);
                conn.handle_data(now, &wire[pos..pos + n]);
                pos += n;
            }
        }
        direct
    }

    fn events(conn: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| conn.poll_event()).collect()
    }

    #[test]
    fn direct_reads_give_the_same_messages_as_handle_data() {
        let text: String = (0..150_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        let mut wire = frame(0x81, text.as_bytes());
        wire.extend(frame(0x82, &binary));
        wire.extend(frame(0x89, b"ping"));
        wire.extend(frame(0x82, b"small"));
        // A fragmented message: a large first fragment, a ping between, a large last one.
        wire.extend(frame(0x02, &binary[..70_000]));
        wire.extend(frame(0x89, b""));
        wire.extend(frame(0x80, &binary[70_000..]));
        for step in [1000, 4096, 16_384, 65_536] {
            let (mut conn, now) = server();
            let direct = feed(&mut conn, now, &wire, step);
            assert!(direct > 0, "step {step}: nothing went straight in");
            let messages: Vec<Message> = events(&mut conn)
                .into_iter()
                .filter_map(|event| match event {
                    Event::Message(message) => Some(message),
                    _ => None,
                })
                .collect();
            assert_eq!(
                messages,
                [
                    Message::from(text.as_str()),
                    Message::from(binary.clone()),
                    Message::from(&b"small"[..]),
                    Message::from(binary.clone()),
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn direct_reads_in_fragment_mode() {
        let binary: Vec<u8> = (0..200_000u32).map(|i| (i * 13) as u8).collect();
        let mut wire = frame(0x02, &binary[..120_000]);
        wire.extend(frame(0x80, &binary[120_000..]));
        let now = Instant::now();
        let config = Config {
            deliver_fragments: true,
            ..Config::default()
        };
        let mut conn = Connection::upgraded(Role::Server, config, &Negotiated::default(), now);
        assert!(feed(&mut conn, now, &wire, 8192) > 0);
        let mut whole = Vec::new();
        let mut finals = 0;
        for event in events(&mut conn) {
            if let Event::Fragment(fragment) = event {
                whole.extend_from_slice(&fragment.data);
                finals += usize::from(fragment.is_final);
            }
        }
        assert_eq!((whole, finals), (binary, 1));
    }

    #[test]
    fn invalid_utf8_read_straight_in_fails_the_connection() {
        let mut text = "x".repeat(100_000).into_bytes();
        text[90_000] = 0xff;
        let (mut conn, now) = server();
        let direct = feed(&mut conn, now, &frame(0x81, &text), 16 * 1024);
        assert!(direct > 0);
        let closed = events(&mut conn).into_iter().find_map(|event| match event {
            Event::Closed(info) => Some(info),
            _ => None,
        });
        // The failure is reported once the queued close is out; what matters here is the code.
        let code = closed.map(|info| info.code).or_else(|| {
            let mut out = Vec::new();
            while let Some(transmit) = conn.poll_transmit() {
                out.extend_from_slice(transmit.header());
                out.extend_from_slice(transmit.payload());
            }
            (out.len() >= 4 && out[0] == 0x88).then(|| CloseCode(u16::from_be_bytes([out[2], out[3]])))
        });
        assert_eq!(code, Some(CloseCode::INVALID_PAYLOAD));
    }

    #[test]
    fn no_room_for_control_frames_small_frames_or_before_reserving() {
        let (mut conn, now) = server();
        assert!(conn.payload_buf(1 << 16).is_none(), "no frame yet");
        // A ping's header and part of its payload.
        conn.handle_data(now, &frame(0x89, &[1; 100])[..20]);
        assert!(conn.payload_buf(1 << 16).is_none(), "control frame");
        let (mut conn, now) = server();
        // A large frame's header alone: nothing reserved for it yet.
        conn.handle_data(now, &frame(0x82, &[1; 100_000])[..14]);
        assert!(conn.payload_buf(1 << 16).is_none(), "nothing reserved yet");
    }
}
