//! Framing outgoing messages and queueing them for the transport.

use bytes::{Bytes, BytesMut};

use super::Role;
use super::spare::SpareQueue;
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, apply_mask};
use crate::rng::Rng;

/// Bytes for the transport: a frame header and a payload that may be shared with other
/// connections, for a vectored write, or a handshake head (with an empty frame header).
///
/// A driver writes `header()` then `payload()`. Many small transmits are best copied into one
/// write buffer ([`write_to`](Self::write_to)); large payloads are best written in place.
#[derive(Clone)]
pub struct Transmit {
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    payload: Bytes,
}

impl Transmit {
    /// The frame header (empty for a handshake head).
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    /// The payload, already masked on a client.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Total bytes to write.
    pub fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }

    /// Whether there is nothing to write (never true for a queued transmit).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a ping or a pong, which may go out between the frames of data already
    /// queued (§5.4: control frames may be injected in the middle of a fragmented message). A
    /// close frame may not: it is the last frame. A driver with its own queue uses this to let
    /// heartbeats and replies overtake queued data at the next frame boundary.
    pub fn can_overtake_data(&self) -> bool {
        self.header()
            .first()
            .is_some_and(|b| matches!(OpCode::from_bits(b & 0x0F), OpCode::PING | OpCode::PONG))
    }

    /// Appends header and payload to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.header());
        out.extend_from_slice(&self.payload);
    }

    pub(crate) fn raw(bytes: Bytes) -> Self {
        Self {
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            payload: bytes,
        }
    }
}

impl std::fmt::Debug for Transmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transmit")
            .field("header", &self.header())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Frames waiting for the transport, in the order they must go out.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// The handshake head: always first, and never dropped. Boxed: an open connection would
    /// carry its size for nothing.
    head: Option<Box<Bytes>>,
    /// Pings and pongs: they may go between the frames of a fragmented message (§5.4), so
    /// they overtake queued data to keep heartbeats and replies timely.
    control: SpareQueue<Transmit>,
    /// Data frames, then at most one close frame, which is last of all.
    data: SpareQueue<Transmit>,
    /// Unsent pongs in `control`. Past [`MAX_QUEUED_PONGS`] a newer ping's pong replaces the
    /// newest one (§5.5.3 allows answering only the latest), so a ping flood from a peer that
    /// does not read cannot grow the queue.
    pongs_queued: usize,
    buffered: usize,
}

impl Outbox {
    pub(crate) fn push_head(&mut self, head: Bytes) {
        self.buffered += head.len();
        self.head = Some(Box::new(head));
    }

    pub(crate) fn push_data(&mut self, transmit: Transmit) {
        self.buffered += transmit.len();
        self.data.push_back(transmit);
    }

    pub(crate) fn push_control(&mut self, transmit: Transmit) {
        self.buffered += transmit.len();
        self.control.push_back(transmit);
    }

    /// Queues a pong; past the bound it replaces the newest unsent one.
    pub(crate) fn push_pong(&mut self, transmit: Transmit) {
        if self.pongs_queued >= MAX_QUEUED_PONGS {
            if let Some(old) = self.control.iter_mut().rev().find(|t| is_pong(t)) {
                self.buffered = self.buffered - old.len() + transmit.len();
                *old = transmit;
                return;
            }
        }
        self.pongs_queued += 1;
        self.push_control(transmit);
    }

    /// Drops every queued frame (not the handshake head): the connection is failing.
    pub(crate) fn discard_frames(&mut self) {
        self.control.clear();
        self.data.clear();
        self.pongs_queued = 0;
        self.buffered = self.head.as_deref().map_or(0, Bytes::len);
    }

    pub(crate) fn pop(&mut self) -> Option<Transmit> {
        let transmit = if let Some(head) = self.head.take() {
            Transmit::raw(*head)
        } else if let Some(control) = self.control.pop_front() {
            if is_pong(&control) {
                self.pongs_queued -= 1;
            }
            control
        } else {
            self.data.pop_front()?
        };
        // A drained queue parks its buffer with the thread (see `spare`): an idle connection
        // holds none, and the next burst allocates none.
        self.buffered -= transmit.len();
        Some(transmit)
    }

    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none() && self.control.is_empty() && self.data.is_empty()
    }
}

/// How many unsent pongs may queue up before new ones replace the newest.
pub(crate) const MAX_QUEUED_PONGS: usize = 16;

fn is_pong(transmit: &Transmit) -> bool {
    transmit
        .header()
        .first()
        .is_some_and(|b| b & 0x0F == OpCode::PONG.bits())
}

/// Frames a payload: a client masks it with a fresh key (§5.3), in place when the caller holds
/// the only reference to the payload, otherwise with exactly one copy.
pub(crate) fn frame(role: Role, rng: &mut Rng, opcode: OpCode, fin: bool, payload: Bytes) -> Transmit {
    frame_with_rsv(role, rng, opcode, fin, 0, payload)
}

/// [`frame`] with reserved bits set (RSV1 marks a compressed message).
pub(crate) fn frame_with_rsv(
    role: Role,
    rng: &mut Rng,
    opcode: OpCode,
    fin: bool,
    rsv: u8,
    payload: Bytes,
) -> Transmit {
    let mask = match role {
        Role::Client => Some(rng.mask_key()),
        Role::Server => None,
    };
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let mut bytes = [0; MAX_HEADER_LEN];
    let header_len = header.encode(&mut bytes) as u8;
    let payload = match mask {
        Some(key) if !payload.is_empty() => {
            let mut owned = payload
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            apply_mask(&mut owned, key, 0);
            owned.freeze()
        }
        _ => payload,
    };
    Transmit {
        header: bytes,
        header_len,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl(opcode: OpCode, payload: &'static [u8]) -> Transmit {
        frame(
            Role::Server,
            &mut Rng::new(Some(1)),
            opcode,
            true,
            Bytes::from_static(payload),
        )
    }

    #[test]
    fn order_is_head_control_data() {
        let mut outbox = Outbox::default();
        outbox.push_data(ctl(OpCode::TEXT, b"data"));
        outbox.push_pong(ctl(OpCode::PONG, b"1"));
        outbox.push_control(ctl(OpCode::PING, b"p"));
        outbox.push_pong(ctl(OpCode::PONG, b"22"));
        outbox.push_head(Bytes::from_static(b"HTTP/1.1 101\r\n\r\n"));
        assert_eq!(outbox.buffered(), 16 + (2 + 4) + (2 + 1) + (2 + 1) + (2 + 2));
        let order: Vec<_> = std::iter::from_fn(|| outbox.pop())
            .map(|t| t.payload().clone())
            .collect();
        assert_eq!(order, [&b"HTTP/1.1 101\r\n\r\n"[..], b"1", b"p", b"22", b"data"]);
        assert_eq!(outbox.buffered(), 0);
        assert!(outbox.is_empty());
    }

    #[test]
    fn pongs_are_bounded() {
        let mut outbox = Outbox::default();
        static PAYLOADS: [[u8; 1]; 40] = {
            let mut p = [[0u8; 1]; 40];
            let mut i = 0;
            while i < 40 {
                p[i][0] = i as u8;
                i += 1;
            }
            p
        };
        for payload in &PAYLOADS {
            outbox.push_pong(ctl(OpCode::PONG, payload));
        }
        let sent: Vec<u8> = std::iter::from_fn(|| outbox.pop()).map(|t| t.payload()[0]).collect();
        let mut expected: Vec<u8> = (0..MAX_QUEUED_PONGS as u8 - 1).collect();
        expected.push(39); // the newest replaced the ones in between
        assert_eq!(sent, expected);
        // Once drained, pongs queue individually again.
        outbox.push_pong(ctl(OpCode::PONG, b"a"));
        outbox.push_pong(ctl(OpCode::PONG, b"b"));
        assert_eq!(std::iter::from_fn(|| outbox.pop()).count(), 2);
    }

    #[test]
    fn client_frames_are_masked_and_server_frames_shared() {
        let payload = Bytes::from_static(b"Hello");
        let server = frame(
            Role::Server,
            &mut Rng::new(Some(1)),
            OpCode::TEXT,
            true,
            payload.clone(),
        );
        assert_eq!(server.header(), b"\x81\x05");
        assert_eq!(server.payload().as_ptr(), payload.as_ptr(), "no copy on a server");
        let client = frame(
            Role::Client,
            &mut Rng::new(Some(1)),
            OpCode::TEXT,
            true,
            payload.clone(),
        );
        let (header, _) = FrameHeader::parse(client.header()).unwrap().unwrap();
        let mut unmasked = client.payload().to_vec();
        apply_mask(&mut unmasked, header.mask.unwrap(), 0);
        assert_eq!(unmasked, b"Hello");
        let unique = Bytes::from(vec![1u8; 64]);
        let ptr = unique.as_ptr();
        let masked = frame(Role::Client, &mut Rng::new(Some(1)), OpCode::BINARY, true, unique);
        assert_eq!(
            masked.payload().as_ptr(),
            ptr,
            "a uniquely owned payload is masked in place"
        );
    }
}
