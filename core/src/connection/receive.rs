//! Turning received bytes into frames and messages (RFC 6455 §5).
//!
//! Nothing is buffered twice: a partial header waits in a 14-byte array, and payload bytes go
//! straight from the caller's slice into the buffer of the message (or control frame) they
//! belong to, unmasked and UTF-8-checked on the way. A complete message's buffer is handed out
//! as `Bytes` without another copy, and an idle receiver owns no heap memory.

use bytes::{Bytes, BytesMut};

use super::codec::{Decompressor, InflateError};
use super::slab::{SMALL_PAYLOAD, copy_small};
use super::{Fragment, Role};
use crate::config::Config;
use crate::error::ProtocolError;
use crate::frame::{
    CloseCode, FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, RSV1, apply_mask, parse_close_payload,
};
use crate::message::{Message, MessageKind, Utf8Bytes};
use crate::utf8::{Utf8Validator, is_valid_message};

/// A unit of received traffic the connection acts on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    Message(Message),
    Fragment(Fragment),
    Ping(Bytes),
    Pong(Bytes),
    /// A valid close frame: its code and reason, if it had any.
    Close(Option<(CloseCode, String)>),
}

#[derive(Debug)]
pub(crate) struct Receiver {
    role: Role,
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    control: BytesMut,
    utf8: Utf8Validator,
    /// Set once permessage-deflate is agreed: RSV1 then marks compressed messages.
    inflater: Option<Box<Decompressor>>,
}

/// The frame whose payload is being read.
#[derive(Clone, Copy, Debug)]
struct InFrame {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    mask_offset: usize,
    remaining: u64,
}

/// The data message being reassembled.
#[derive(Debug)]
struct InMessage {
    kind: MessageKind,
    /// The payload so far; in fragment mode, only the current frame's.
    buf: BytesMut,
    /// Bytes received for the whole message, for the size limit.
    len: usize,
    fragments: usize,
    /// Fragment mode: whether the first fragment was delivered.
    started: bool,
    /// Compressed (RSV1 on its first frame): `buf` receives inflated bytes.
    compressed: bool,
    /// Fragment mode: inflated bytes already delivered, which count against the size limit.
    delivered: usize,
}

impl Receiver {
    pub(crate) fn new(role: Role) -> Self {
        Self {
            role,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            control: BytesMut::new(),
            utf8: Utf8Validator::new(),
            inflater: None,
        }
    }

    /// Accepts compressed messages from now on (RFC 7692).
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    pub(crate) fn enable_inflate(&mut self, inflater: Decompressor) {
        self.inflater = Some(Box::new(inflater));
    }

    /// Consumes bytes from the front of `data` until something complete arrives (returned) or
    /// `data` is exhausted (`None`). A violation ends the stream: don't call again after `Err`.
    pub(crate) fn next(&mut self, data: &mut &[u8], config: &Config) -> Result<Option<Received>, ProtocolError> {
        loop {
            let mut frame = match self.frame {
                Some(frame) => frame,
                None => match self.read_header(data)? {
                    Some(header) => {
                        if let Some(message) = self.whole_small_message(&header, data, config)? {
                            return Ok(Some(Received::Message(message)));
                        }
                        self.start_frame(header, config)?
                    }
                    None => return Ok(None),
                },
            };
            let take = data.len().min(usize::try_from(frame.remaining).unwrap_or(usize::MAX));
            let (chunk, rest) = data.split_at(take);
            *data = rest;
            self.absorb(&mut frame, chunk, config)?;
            frame.remaining -= take as u64;
            if frame.remaining > 0 {
                self.frame = Some(frame);
                return Ok(None);
            }
            self.frame = None;
            if let Some(received) = self.finish_frame(frame, config)? {
                return Ok(Some(received));
            }
        }
    }

    /// Reads a header from `data`, keeping a partial one in `self.header` across calls.
    fn read_header(&mut self, data: &mut &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
        let have = usize::from(self.header_len);
        if have == 0 {
            if let Some((header, len)) = FrameHeader::parse(data)? {
                *data = &data[len..];
                return Ok(Some(header));
            }
            // `parse` wants at most 14 bytes, so a partial header always fits.
            self.header[..data.len()].copy_from_slice(data);
            self.header_len = data.len() as u8;
            *data = &[];
            return Ok(None);
        }
        let take = (MAX_HEADER_LEN - have).min(data.len());
        self.header[have..have + take].copy_from_slice(&data[..take]);
        match FrameHeader::parse(&self.header[..have + take])? {
            Some((header, len)) => {
                *data = &data[len - have..];
                self.header_len = 0;
                Ok(Some(header))
            }
            None => {
                self.header_len = (have + take) as u8;
                *data = &data[take..];
                Ok(None)
            }
        }
    }

    /// The fast path for the most common frame: a small unfragmented, uncompressed data
    /// message whose whole payload is already in `data`. It skips the per-frame bookkeeping of
    /// [`start_frame`](Self::start_frame) and takes its buffer from the thread's slab, but
    /// applies the same rules; a frame it does not take (`Ok(None)`, `data` untouched) goes the
    /// general way, which also reports every violation.
    fn whole_small_message(
        &mut self,
        header: &FrameHeader,
        data: &mut &[u8],
        config: &Config,
    ) -> Result<Option<Message>, ProtocolError> {
        let len = header.payload_len;
        let kind = match header.opcode {
            OpCode::TEXT => MessageKind::Text,
            OpCode::BINARY => MessageKind::Binary,
            _ => return Ok(None),
        };
        // §5.1: a server receives only masked frames, a client only unmasked ones.
        let mask_ok = header.mask.is_some() == (self.role == Role::Server);
        let fits = len <= SMALL_PAYLOAD as u64
            && len <= data.len() as u64
            && len <= config.max_frame_size as u64
            && len <= config.max_message_size as u64
            && config.max_fragments >= 1;
        if !header.fin || header.rsv != 0 || !mask_ok || !fits || self.message.is_some() || config.deliver_fragments {
            return Ok(None);
        }
        let (payload, rest) = data.split_at(len as usize);
        let mut buf = copy_small(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut buf, key, 0);
        }
        if kind == MessageKind::Text && !is_valid_message(&buf) {
            return Err(ProtocolError::InvalidUtf8);
        }
        *data = rest;
        let payload = buf.freeze();
        Ok(Some(match kind {
            MessageKind::Text => Message::Text(Utf8Bytes::from_bytes_unchecked(payload)),
            MessageKind::Binary => Message::Binary(payload),
        }))
    }

    /// Checks a header against the connection's rules and limits (§5.1, §5.2, §5.4, §5.5).
    fn start_frame(&mut self, header: FrameHeader, config: &Config) -> Result<InFrame, ProtocolError> {
        let opcode = header.opcode;
        // RSV1 marks a compressed message, on its first frame only (RFC 7692 §6.1).
        let compressed =
            header.rsv == RSV1 && self.inflater.is_some() && matches!(opcode, OpCode::TEXT | OpCode::BINARY);
        if header.rsv != 0 && !compressed {
            return Err(ProtocolError::ReservedBits);
        }
        if !opcode.is_known() {
            return Err(ProtocolError::UnknownOpCode(opcode.bits()));
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if opcode.is_control() {
            if !header.fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if header.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlTooLong);
            }
            self.control.clear();
        } else {
            if header.payload_len > config.max_frame_size as u64 {
                return Err(ProtocolError::FrameTooLarge {
                    len: header.payload_len,
                    limit: config.max_frame_size,
                });
            }
            let message = match (opcode, &mut self.message) {
                (OpCode::CONTINUATION, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::CONTINUATION, Some(message)) => message,
                (_, Some(_)) => return Err(ProtocolError::UnfinishedMessage),
                (_, None) => {
                    let kind = if opcode == OpCode::TEXT {
                        MessageKind::Text
                    } else {
                        MessageKind::Binary
                    };
                    self.utf8.reset();
                    self.message.insert(InMessage {
                        kind,
                        buf: BytesMut::new(),
                        len: 0,
                        fragments: 0,
                        started: false,
                        compressed,
                        delivered: 0,
                    })
                }
            };
            // Checked before any payload is read, so an oversized message costs nothing.
            if message.len as u64 + header.payload_len > config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooLarge {
                    limit: config.max_message_size,
                });
            }
            message.fragments += 1;
            if message.fragments > config.max_fragments {
                return Err(ProtocolError::TooManyFragments {
                    limit: config.max_fragments,
                });
            }
        }
        Ok(InFrame {
            opcode,
            fin: header.fin,
            mask: header.mask,
            mask_offset: 0,
            remaining: header.payload_len,
        })
    }

    /// Appends a piece of the current frame's payload to its buffer, unmasking (and inflating)
    /// and validating.
    fn absorb(&mut self, frame: &mut InFrame, chunk: &[u8], config: &Config) -> Result<(), ProtocolError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let Some(message) = self.message.as_mut().filter(|_| !frame.opcode.is_control()) else {
            append_unmasked(&mut self.control, frame, chunk);
            return Ok(());
        };
        message.len += chunk.len();
        let start = message.buf.len();
        match self.inflater.as_mut().filter(|_| message.compressed) {
            Some(inflater) => {
                let limit = config.max_message_size - message.delivered;
                let mask = frame.mask.map(|key| (key, &mut frame.mask_offset));
                inflater
                    .inflate(chunk, mask, &mut message.buf, limit)
                    .map_err(|e| inflate_error(e, config))?;
            }
            None => append_unmasked(&mut message.buf, frame, chunk),
        }
        if message.kind == MessageKind::Text {
            self.utf8.feed(&message.buf[start..])?;
        }
        Ok(())
    }

    fn finish_frame(&mut self, frame: InFrame, config: &Config) -> Result<Option<Received>, ProtocolError> {
        match frame.opcode {
            OpCode::PING => return Ok(Some(Received::Ping(std::mem::take(&mut self.control).freeze()))),
            OpCode::PONG => return Ok(Some(Received::Pong(std::mem::take(&mut self.control).freeze()))),
            OpCode::CLOSE => {
                let close = parse_close_payload(&self.control)?.map(|(code, reason)| (code, reason.to_owned()));
                self.control = BytesMut::new();
                return Ok(Some(Received::Close(close)));
            }
            _ => {}
        }
        let Some(message) = &mut self.message else {
            return Ok(None); // unreachable: data frames always have a message
        };
        if frame.fin {
            if let Some(inflater) = self.inflater.as_mut().filter(|_| message.compressed) {
                let start = message.buf.len();
                let limit = config.max_message_size - message.delivered;
                inflater
                    .finish(&mut message.buf, limit)
                    .map_err(|e| inflate_error(e, config))?;
                if message.kind == MessageKind::Text {
                    self.utf8.feed(&message.buf[start..])?;
                }
            }
            if message.kind == MessageKind::Text {
                self.utf8.finish()?;
            }
        }
        if config.deliver_fragments {
            let fragment = Fragment {
                kind: message.kind,
                data: std::mem::take(&mut message.buf).freeze(),
                is_first: !message.started,
                is_final: frame.fin,
            };
            message.started = true;
            message.delivered += fragment.data.len();
            if frame.fin {
                self.message = None;
            }
            return Ok(Some(Received::Fragment(fragment)));
        }
        if !frame.fin {
            return Ok(None);
        }
        let Some(message) = self.message.take() else {
            return Ok(None);
        };
        let payload = message.buf.freeze();
        Ok(Some(Received::Message(match message.kind {
            MessageKind::Text => Message::Text(Utf8Bytes::from_bytes_unchecked(payload)),
            MessageKind::Binary => Message::Binary(payload),
        })))
    }
}

impl Receiver {
    /// Room at the end of the current data frame's message buffer for the transport to read
    /// the frame's next payload bytes into (see [`Connection::payload_buf`]): only while an
    /// uncompressed data frame is arriving, only in capacity already reserved (the growth
    /// policy of [`append_unmasked`] stays in charge of allocating), and only when that is at
    /// least [`DIRECT_READ_MIN`] bytes or the rest of the frame. The room is zeroed.
    ///
    /// [`Connection::payload_buf`]: super::Connection::payload_buf
    pub(crate) fn payload_room(&mut self, max: usize) -> Option<&mut [u8]> {
        let frame = self.frame.as_ref().filter(|frame| !frame.opcode.is_control())?;
        let message = self.message.as_mut().filter(|message| !message.compressed)?;
        let remaining = usize::try_from(frame.remaining).unwrap_or(usize::MAX);
        let spare = message.buf.capacity() - message.buf.len();
        let room = spare.min(remaining).min(max);
        if room == 0 || room < DIRECT_READ_MIN.min(remaining) {
            return None;
        }
        let start = message.buf.len();
        message.buf.resize(start + room, 0);
        Some(&mut message.buf[start..])
    }

    /// `n` bytes were read into the room [`payload_room`](Self::payload_room) gave (0 when
    /// the read brought nothing): they are unmasked and checked in place, the rest of the room
    /// is given back, and a finished frame is handled as if it had come through
    /// [`next`](Self::next).
    pub(crate) fn payload_arrived(&mut self, n: usize, config: &Config) -> Result<Option<Received>, ProtocolError> {
        let (Some(mut frame), Some(message)) = (self.frame, self.message.as_mut()) else {
            return Ok(None);
        };
        // Uncompressed, the buffer holds exactly what arrived of this message (of this
        // fragment in fragment mode), then the room.
        let start = message.len - message.delivered;
        let room = message.buf.len().saturating_sub(start);
        let n = n.min(room).min(usize::try_from(frame.remaining).unwrap_or(usize::MAX));
        message.buf.truncate(start + n);
        if n == 0 {
            return Ok(None);
        }
        message.len += n;
        if let Some(key) = frame.mask {
            frame.mask_offset = apply_mask(&mut message.buf[start..], key, frame.mask_offset);
        }
        if message.kind == MessageKind::Text {
            self.utf8.feed(&message.buf[start..])?;
        }
        frame.remaining -= n as u64;
        if frame.remaining > 0 {
            self.frame = Some(frame);
            return Ok(None);
        }
        self.frame = None;
        self.finish_frame(frame, config)
    }
}

/// Reads straight into the message buffer are offered from this much reserved room (or the
/// rest of the frame, when that is less): smaller pieces go through the transport's buffer.
const DIRECT_READ_MIN: usize = 4096;

/// Appends `chunk` to `buf`, unmasked. The buffer doubles until the peer has sent an eighth of
/// the frame, then takes the rest of the frame in one allocation: a 1 MiB frame costs one
/// regrowth instead of four (each copying what arrived so far), and a peer announcing 16 MiB
/// makes us allocate at most eight times what it actually sent (4 KiB for nothing).
fn append_unmasked(buf: &mut BytesMut, frame: &mut InFrame, chunk: &[u8]) {
    if buf.capacity() - buf.len() < chunk.len() {
        // `remaining` still counts this chunk.
        let rest_of_frame = usize::try_from(frame.remaining).unwrap_or(usize::MAX);
        let arrived = buf.len().saturating_add(chunk.len());
        let want = if arrived.saturating_mul(RESERVE_AFTER_ONE_IN) >= buf.len().saturating_add(rest_of_frame) {
            rest_of_frame
        } else {
            rest_of_frame.min(buf.len().max(4096))
        };
        buf.reserve(want.max(chunk.len()));
    }
    let start = buf.len();
    buf.extend_from_slice(chunk);
    if let Some(key) = frame.mask {
        frame.mask_offset = apply_mask(&mut buf[start..], key, frame.mask_offset);
    }
}

/// The frame's whole size is reserved once this fraction of it (one in N bytes) has arrived.
const RESERVE_AFTER_ONE_IN: usize = 8;

fn inflate_error(error: InflateError, config: &Config) -> ProtocolError {
    match error {
        InflateError::TooLarge => ProtocolError::MessageTooLarge {
            limit: config.max_message_size,
        },
        InflateError::Corrupt => ProtocolError::InvalidCompressedData,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive_all(role: Role, config: &Config, wire: &[u8]) -> Result<Vec<Received>, ProtocolError> {
        let mut receiver = Receiver::new(role);
        let mut data = wire;
        let mut out = Vec::new();
        while let Some(received) = receiver.next(&mut data, config)? {
            out.push(received);
        }
        assert!(data.is_empty());
        Ok(out)
    }

    fn text(s: &str) -> Received {
        Received::Message(Message::Text(s.into()))
    }

    /// RFC 6455 §5.7.
    #[test]
    fn rfc_examples() {
        let config = Config::default();
        let client = Role::Client; // receives unmasked frames
        let server = Role::Server; // receives masked frames
        // A single-frame unmasked text message.
        assert_eq!(
            receive_all(client, &config, b"\x81\x05\x48\x65\x6c\x6c\x6f").unwrap(),
            [text("Hello")]
        );
        // A single-frame masked text message.
        assert_eq!(
            receive_all(server, &config, b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58").unwrap(),
            [text("Hello")]
        );
        // A fragmented unmasked text message.
        assert_eq!(
            receive_all(client, &config, b"\x01\x03\x48\x65\x6c\x80\x02\x6c\x6f").unwrap(),
            [text("Hello")]
        );
        // Unmasked ping, and masked pong, each with "Hello".
        assert_eq!(
            receive_all(client, &config, b"\x89\x05\x48\x65\x6c\x6c\x6f").unwrap(),
            [Received::Ping(Bytes::from_static(b"Hello"))]
        );
        assert_eq!(
            receive_all(server, &config, b"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58").unwrap(),
            [Received::Pong(Bytes::from_static(b"Hello"))]
        );
        // 256 bytes and 64 KiB binary messages in a single unmasked frame.
        let mut wire = vec![0x82, 0x7E, 0x01, 0x00];
        wire.extend(std::iter::repeat_n(7u8, 256));
        wire.extend_from_slice(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        wire.extend(std::iter::repeat_n(9u8, 65536));
        let received = receive_all(client, &config, &wire).unwrap();
        assert_eq!(received.len(), 2);
        assert!(matches!(&received[0], Received::Message(Message::Binary(b)) if b.len() == 256 && b[0] == 7));
        assert!(matches!(&received[1], Received::Message(Message::Binary(b)) if b.len() == 65536 && b[0] == 9));
    }

    #[test]
    fn same_result_one_byte_at_a_time() {
        let config = Config::default();
        let wire = b"\x01\x83\x01\x02\x03\x04\x49\x67\x6f\x89\x82\x00\x00\x00\x00hi\x80\x82\x05\x06\x07\x08\x69\x69";
        let whole = receive_all(Role::Server, &config, wire).unwrap();
        let mut receiver = Receiver::new(Role::Server);
        let mut pieces = Vec::new();
        for byte in wire.chunks(1) {
            let mut data = byte;
            while let Some(r) = receiver.next(&mut data, &config).unwrap() {
                pieces.push(r);
            }
        }
        assert_eq!(whole, pieces);
        assert_eq!(whole, [Received::Ping(Bytes::from_static(b"hi")), text("Hello")]);
    }

    /// A masked frame as a client sends it.
    fn masked_frame(first_byte: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let header = FrameHeader {
            fin: first_byte & 0x80 != 0,
            rsv: first_byte & 0x70,
            opcode: OpCode::from_bits(first_byte & 0x0F),
            mask: Some(key),
            payload_len: payload.len() as u64,
        };
        let mut head = [0; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        let mut wire = head[..n].to_vec();
        let start = wire.len();
        wire.extend_from_slice(payload);
        apply_mask(&mut wire[start..], key, 0);
        wire
    }

    /// Whole small frames take the fast path when a read holds them, and the general path
    /// when they straddle reads: either way the same messages come out, wherever the reads
    /// split the stream.
    #[test]
    fn fast_path_equals_general_path_at_every_split() {
        let config = Config::default();
        let chars: String = "añb€c😀".repeat(40);
        let mut wire = Vec::new();
        for (i, len) in [0usize, 1, 20, 125, 126, 255, 256, 257, 300].into_iter().enumerate() {
            let key = [i as u8, 0x5A, 0xC3, 0x11];
            let binary: Vec<u8> = (0..len).map(|b| (b * 31 + i) as u8).collect();
            wire.extend(masked_frame(0x82, &binary, key));
            let cut = (0..=len.min(chars.len()))
                .rev()
                .find(|&c| chars.is_char_boundary(c))
                .unwrap_or(0);
            wire.extend(masked_frame(0x81, &chars.as_bytes()[..cut], key));
        }
        wire.extend(masked_frame(0x01, b"frag", [1, 2, 3, 4]));
        wire.extend(masked_frame(0x89, b"ping", [5, 6, 7, 8]));
        wire.extend(masked_frame(0x80, b"mented", [9, 10, 11, 12]));
        wire.extend(masked_frame(0x81, b"last", [13, 14, 15, 16]));
        let whole = receive_all(Role::Server, &config, &wire).unwrap();
        assert_eq!(whole.len(), 18 + 2 + 1);
        assert_eq!(whole[18], Received::Ping(Bytes::from_static(b"ping")));
        assert_eq!(whole[19], text("fragmented"));
        for split in 0..=wire.len() {
            let mut receiver = Receiver::new(Role::Server);
            let mut pieces = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                let mut data = part;
                while let Some(r) = receiver.next(&mut data, &config).unwrap() {
                    pieces.push(r);
                }
                assert!(data.is_empty());
            }
            assert_eq!(pieces, whole, "split at {split}");
        }
    }

    /// The fast path applies the general path's rules: the same errors for frames it sees whole.
    #[test]
    fn fast_path_keeps_every_rule() {
        let key = [1, 2, 3, 4];
        let small = Config {
            max_frame_size: 10,
            max_message_size: 8,
            ..Config::default()
        };
        assert!(matches!(
            receive_all(Role::Server, &small, &masked_frame(0x82, &[0; 11], key)),
            Err(ProtocolError::FrameTooLarge { len: 11, limit: 10 })
        ));
        assert!(matches!(
            receive_all(Role::Server, &small, &masked_frame(0x82, &[0; 9], key)),
            Err(ProtocolError::MessageTooLarge { limit: 8 })
        ));
        let none = Config {
            max_fragments: 0,
            ..Config::default()
        };
        assert!(matches!(
            receive_all(Role::Server, &none, &masked_frame(0x82, b"x", key)),
            Err(ProtocolError::TooManyFragments { limit: 0 })
        ));
        let config = Config::default();
        let cases: &[(Role, Vec<u8>, ProtocolError)] = &[
            (
                Role::Server,
                masked_frame(0x81, b"ab\xFFcd", key),
                ProtocolError::InvalidUtf8,
            ),
            (
                Role::Server,
                masked_frame(0x81, b"ab\xE2\x82", key),
                ProtocolError::InvalidUtf8,
            ),
            (Role::Server, b"\x82\x02ab".to_vec(), ProtocolError::UnmaskedFrame),
            (Role::Client, masked_frame(0x82, b"ab", key), ProtocolError::MaskedFrame),
            (
                Role::Server,
                masked_frame(0xC2, b"ab", key),
                ProtocolError::ReservedBits,
            ),
            (
                Role::Server,
                masked_frame(0x83, b"ab", key),
                ProtocolError::UnknownOpCode(3),
            ),
        ];
        for (role, wire, expected) in cases {
            assert_eq!(receive_all(*role, &config, wire).unwrap_err(), *expected, "{wire:x?}");
        }
        // A message in progress: a whole new data frame is an error, not a fast message.
        let mut unfinished = masked_frame(0x01, b"a", key);
        unfinished.extend(masked_frame(0x81, b"b", key));
        assert_eq!(
            receive_all(Role::Server, &config, &unfinished).unwrap_err(),
            ProtocolError::UnfinishedMessage
        );
        // Fragment mode delivers a whole small message as one first-and-final fragment.
        let fragments = Config {
            deliver_fragments: true,
            ..Config::default()
        };
        let received = receive_all(Role::Server, &fragments, &masked_frame(0x82, b"ab", key)).unwrap();
        assert!(matches!(&received[..], [Received::Fragment(f)] if f.is_first && f.is_final && f.data == "ab"));
    }

    #[test]
    fn violations() {
        let config = Config::default();
        let cases: &[(Role, &[u8], ProtocolError)] = &[
            (Role::Server, b"\x81\x00", ProtocolError::UnmaskedFrame),
            (Role::Client, b"\x81\x80\0\0\0\0", ProtocolError::MaskedFrame),
            (Role::Client, b"\xC1\x00", ProtocolError::ReservedBits),
            (Role::Client, b"\x83\x00", ProtocolError::UnknownOpCode(3)),
            (Role::Client, b"\x8B\x00", ProtocolError::UnknownOpCode(0xB)),
            (Role::Client, b"\x09\x00", ProtocolError::FragmentedControl),
            (Role::Client, b"\x89\x7E\x00\x7E", ProtocolError::ControlTooLong),
            (Role::Client, b"\x80\x00", ProtocolError::UnexpectedContinuation),
            (Role::Client, b"\x01\x00\x81\x00", ProtocolError::UnfinishedMessage),
            (Role::Client, b"\x81\x02\xC3\x28", ProtocolError::InvalidUtf8),
            (Role::Client, b"\x81\x01\xC3", ProtocolError::InvalidUtf8),
            (
                Role::Client,
                b"\x88\x01\x03",
                ProtocolError::ClosePayload(crate::frame::ClosePayloadError::OneByte),
            ),
            (
                Role::Client,
                b"\x82\x7E\x00\x10",
                ProtocolError::Header(crate::frame::HeaderError::NonMinimalLength),
            ),
        ];
        for (role, wire, expected) in cases {
            assert_eq!(receive_all(*role, &config, wire).unwrap_err(), *expected, "{wire:x?}");
        }
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_ends() {
        let config = Config::default();
        let mut receiver = Receiver::new(Role::Client);
        // A 100-byte text frame whose third byte is invalid: fails with only 3 bytes delivered.
        let mut data: &[u8] = b"\x81\x64ab\xFF";
        assert_eq!(receiver.next(&mut data, &config), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn limits_apply_before_payload_arrives() {
        let config = Config {
            max_frame_size: 100,
            max_message_size: 150,
            max_fragments: 3,
            ..Config::default()
        };
        let too_big_frame = b"\x82\x65";
        assert!(matches!(
            receive_all(Role::Client, &config, too_big_frame),
            Err(ProtocolError::FrameTooLarge { len: 101, limit: 100 })
        ));
        let mut two_frames = vec![0x02, 100];
        two_frames.extend([0; 100]);
        two_frames.extend([0x80, 51]);
        assert!(matches!(
            receive_all(Role::Client, &config, &two_frames),
            Err(ProtocolError::MessageTooLarge { limit: 150 })
        ));
        let four_fragments = b"\x02\x00\x00\x00\x00\x00\x80\x00";
        assert!(matches!(
            receive_all(Role::Client, &config, four_fragments),
            Err(ProtocolError::TooManyFragments { limit: 3 })
        ));
        assert_eq!(
            ProtocolError::TooManyFragments { limit: 3 }.close_code(),
            CloseCode::MESSAGE_TOO_BIG
        );
    }

    #[test]
    fn fragment_mode_delivers_each_frame() {
        let config = Config {
            deliver_fragments: true,
            ..Config::default()
        };
        let received = receive_all(Role::Client, &config, b"\x01\x02\xE2\x82\x89\x00\x80\x01\xAC").unwrap();
        let fragments: Vec<_> = received
            .into_iter()
            .filter_map(|r| match r {
                Received::Fragment(f) => Some((f.data.to_vec(), f.is_first, f.is_final)),
                _ => None,
            })
            .collect();
        assert_eq!(fragments, [(vec![0xE2, 0x82], true, false), (vec![0xAC], false, true)]);
    }

    #[test]
    fn idle_receiver_holds_no_buffers() {
        let config = Config::default();
        let mut receiver = Receiver::new(Role::Client);
        let mut wire = b"\x82\x7E\x10\x00".to_vec();
        wire.extend([1u8; 4096]);
        let mut data = &wire[..];
        assert!(receiver.next(&mut data, &config).unwrap().is_some());
        assert_eq!(receiver.control.capacity(), 0);
        assert!(receiver.message.is_none());
    }
}
