//! Frame opcodes (RFC 6455 §5.2, §11.8).

use std::fmt;

/// A frame opcode: the low four bits of a frame's first byte.
///
/// A newtype rather than a closed enum so that an unknown value read off the wire can be carried
/// (and rejected with the right close code) instead of being lost in parsing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpCode(u8);

impl OpCode {
    /// A continuation frame of a fragmented message.
    pub const CONTINUATION: Self = Self(0x0);
    /// The first (or only) frame of a text message.
    pub const TEXT: Self = Self(0x1);
    /// The first (or only) frame of a binary message.
    pub const BINARY: Self = Self(0x2);
    /// A close frame.
    pub const CLOSE: Self = Self(0x8);
    /// A ping frame.
    pub const PING: Self = Self(0x9);
    /// A pong frame.
    pub const PONG: Self = Self(0xA);

    /// The opcode of the low four bits of `bits` (higher bits are ignored).
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 0x0F)
    }

    /// The four-bit wire value.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Control frames have the high bit of the opcode set (§5.5).
    pub const fn is_control(self) -> bool {
        self.0 & 0x8 != 0
    }

    /// Whether RFC 6455 defines this opcode; the others are reserved (§5.2).
    pub const fn is_known(self) -> bool {
        matches!(self.0, 0x0..=0x2 | 0x8..=0xA)
    }
}

impl fmt::Debug for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::CONTINUATION => "CONTINUATION",
            Self::TEXT => "TEXT",
            Self::BINARY => "BINARY",
            Self::CLOSE => "CLOSE",
            Self::PING => "PING",
            Self::PONG => "PONG",
            _ => return write!(f, "OpCode({:#x})", self.0),
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for bits in 0..16u8 {
            let op = OpCode::from_bits(bits);
            assert_eq!(op.is_control(), bits >= 8);
            assert_eq!(op.is_known(), matches!(bits, 0 | 1 | 2 | 8 | 9 | 10));
        }
        assert_eq!(OpCode::from_bits(0xF1), OpCode::TEXT);
        assert_eq!(format!("{:?}", OpCode::from_bits(3)), "OpCode(0x3)");
    }
}
