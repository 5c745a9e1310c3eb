//! The frame layer: headers, opcodes, masking and close payloads (RFC 6455 §5).

mod close;
mod header;
mod mask;
mod opcode;

pub use close::{CloseCode, ClosePayloadError, MAX_CLOSE_REASON_LEN, parse_close_payload};
pub use header::{FrameHeader, HeaderError, MAX_HEADER_LEN, RSV1, RSV2, RSV3};
pub use mask::{apply_mask, apply_mask_bytewise};
pub use opcode::OpCode;

/// The largest payload a control frame may carry (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
