//! Frame header parsing and encoding (RFC 6455 §5.2).

use super::OpCode;

/// The longest possible frame header: 2 fixed bytes, 8 bytes of extended length, 4 of mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// The first reserved bit, used by permessage-deflate (RFC 7692) to mark compressed messages.
pub const RSV1: u8 = 0x40;
/// The second reserved bit.
pub const RSV2: u8 = 0x20;
/// The third reserved bit.
pub const RSV3: u8 = 0x10;

/// A parsed frame header.
///
/// Parsing checks only what the header alone can tell (length encoding); whether the opcode,
/// reserved bits and mask are acceptable depends on the connection and is checked there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Whether this is the final frame of a message.
    pub fin: bool,
    /// The three reserved bits, in their wire positions (`RSV1 | RSV2 | RSV3` mask).
    pub rsv: u8,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The masking key, present on every frame a client sends.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// A header that no conforming peer can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A length that fits in a shorter form was sent in a longer one (§5.2: "the minimal number
    /// of bytes MUST be used").
    #[error("frame length is not minimally encoded")]
    NonMinimalLength,
    /// The most significant bit of a 64-bit length was set (§5.2).
    #[error("frame length has its most significant bit set")]
    LengthTooLarge,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold the whole header (nothing is consumed),
    /// or the header and its encoded length.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, HeaderError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let (payload_len, len_bytes) = match b1 & 0x7F {
            126 => {
                let Some(bytes) = rest.first_chunk::<2>() else {
                    return Ok(None);
                };
                let len = u16::from_be_bytes(*bytes);
                if len < 126 {
                    return Err(HeaderError::NonMinimalLength);
                }
                (u64::from(len), 2)
            }
            127 => {
                let Some(bytes) = rest.first_chunk::<8>() else {
                    return Ok(None);
                };
                let len = u64::from_be_bytes(*bytes);
                if len >> 63 != 0 {
                    return Err(HeaderError::LengthTooLarge);
                }
                if len <= u64::from(u16::MAX) {
                    return Err(HeaderError::NonMinimalLength);
                }
                (len, 8)
            }
            short => (u64::from(short), 0),
        };
        let mut consumed = 2 + len_bytes;
        let mask = if masked {
            let Some(key) = buf.get(consumed..).and_then(|tail| tail.first_chunk::<4>()) else {
                return Ok(None);
            };
            consumed += 4;
            Some(*key)
        } else {
            None
        };
        Ok(Some((
            Self {
                fin: b0 & 0x80 != 0,
                rsv: b0 & (RSV1 | RSV2 | RSV3),
                opcode: OpCode::from_bits(*b0),
                mask,
                payload_len,
            },
            consumed,
        )))
    }

    /// The number of bytes [`encode`](Self::encode) writes for this header.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header into `out` and returns the number of bytes written.
    ///
    /// Lengths are always minimally encoded. A `payload_len` with the top bit set cannot be
    /// represented and is clamped by the caller's limits long before it reaches here.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | (self.rsv & (RSV1 | RSV2 | RSV3)) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.payload_len {
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(buf: &[u8]) -> (FrameHeader, usize) {
        FrameHeader::parse(buf).unwrap().unwrap()
    }

    #[test]
    fn every_length_form_round_trips() {
        for len in [0u64, 1, 125, 126, 127, 0xFFFF, 0x1_0000, 1 << 32, (1 << 63) - 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let header = FrameHeader {
                    fin: len % 2 == 0,
                    rsv: RSV1,
                    opcode: OpCode::BINARY,
                    mask,
                    payload_len: len,
                };
                let mut out = [0; MAX_HEADER_LEN];
                let n = header.encode(&mut out);
                assert_eq!(n, header.encoded_len());
                assert_eq!(parse_all(&out[..n]), (header, n));
                for short in 0..n {
                    assert_eq!(FrameHeader::parse(&out[..short]), Ok(None), "prefix {short}");
                }
            }
        }
    }

    #[test]
    fn rejects_non_minimal_lengths() {
        assert_eq!(
            FrameHeader::parse(&[0x82, 126, 0, 125]),
            Err(HeaderError::NonMinimalLength)
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]),
            Err(HeaderError::NonMinimalLength)
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 1, 0, 0]),
            Err(HeaderError::LengthTooLarge)
        );
        // The smallest values of each form are fine.
        assert_eq!(parse_all(&[0x82, 126, 0, 126]).0.payload_len, 126);
        assert_eq!(parse_all(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]).0.payload_len, 0x1_0000);
    }

    #[test]
    fn reserved_bits_and_opcode_are_reported_not_judged() {
        let (header, _) = parse_all(&[0x7B, 0x00]);
        assert!(!header.fin);
        assert_eq!(header.rsv, RSV1 | RSV2 | RSV3);
        assert_eq!(header.opcode, OpCode::from_bits(0xB));
    }
}
