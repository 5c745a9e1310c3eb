//! Compressing and inflating messages with zlib-rs (raw deflate, RFC 7692 §7.2).

use std::mem::MaybeUninit;

use bytes::BytesMut;
use zlib_rs::{DeflateFlush, InflateFlush, Status};

use super::DeflateConfig;
use crate::frame::apply_mask;

/// The empty stored block that a sync flush ends with and RFC 7692 §7.2.1 strips (and the
/// receiver appends back, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Why inflating failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The output would exceed the limit.
    TooLarge,
    /// Not valid deflate data.
    Corrupt,
}

/// Compressing failed: zlib reported an error, or could not take all the input or finish the
/// flush. Nothing of the message may be sent; the compressor was reset, so the next message
/// starts a fresh stream (which any peer's inflater can read, whatever history it holds).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CompressError;

/// One direction's compressor: allocated on first use, dropped after each message when there
/// is no context takeover.
pub(crate) struct Compressor {
    state: Option<Box<zlib_rs::Deflate>>,
    window_bits: u8,
    level: u8,
    mem_level: u8,
    no_context_takeover: bool,
    threshold: usize,
    /// Makes the next `compress` fail, to test the error path (zlib itself does not fail on
    /// a valid stream with output room).
    #[cfg(test)]
    pub(crate) fail_next: bool,
}

impl Compressor {
    pub(crate) fn new(config: &DeflateConfig, window_bits: u8, no_context_takeover: bool) -> Self {
        let config = config.sanitized();
        Self {
            state: None,
            window_bits: window_bits.clamp(9, 15),
            level: config.level,
            mem_level: config.mem_level,
            no_context_takeover,
            threshold: config.threshold,
            #[cfg(test)]
            fail_next: false,
        }
    }

    /// Messages shorter than this go uncompressed.
    pub(crate) fn threshold(&self) -> usize {
        self.threshold
    }

    /// Compresses one piece of a message, appending to `out`. At the end of the message the
    /// trailing `00 00 ff ff` is removed and, without context takeover, the state released.
    ///
    /// On error `out` is left as it was and the state is dropped: a stream that took part of
    /// a piece cannot go on, and its partial output must never reach the wire.
    pub(crate) fn compress(&mut self, input: &[u8], is_final: bool, out: &mut BytesMut) -> Result<(), CompressError> {
        let start = out.len();
        let result = self.compress_into(input, out);
        if result.is_err() {
            out.truncate(start);
            self.state = None;
            return result;
        }
        if is_final {
            if out[start..].ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            }
            if self.no_context_takeover {
                self.state = None;
            }
        }
        Ok(())
    }

    fn compress_into(&mut self, mut input: &[u8], out: &mut BytesMut) -> Result<(), CompressError> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next) {
            // Stands for a zlib failure mid-piece: some output already written.
            out.extend_from_slice(&[0xf2, 0x48]);
            return Err(CompressError);
        }
        let (window_bits, level, mem_level) = (self.window_bits, self.level, self.mem_level);
        let state = self.state.get_or_insert_with(|| {
            Box::new(zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
                level: i32::from(level),
                method: zlib_rs::Method::Deflated,
                window_bits: -i32::from(window_bits),
                mem_level: i32::from(mem_level),
                strategy: zlib_rs::Strategy::Default,
            }))
        });
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve((input.len() / 2).max(1024));
            }
            let in_before = state.total_in();
            let out_before = state.total_out();
            let spare = spare(out);
            let room = spare.len();
            let status = state.compress_uninit(input, spare, DeflateFlush::SyncFlush);
            let consumed = (state.total_in() - in_before) as usize;
            let produced = (state.total_out() - out_before) as usize;
            // SAFETY: zlib-rs initialised `produced` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + produced) };
            input = input.get(consumed..).ok_or(CompressError)?;
            // Stream, data or memory errors; "no progress possible" is `Ok(BufError)` and is
            // caught below.
            if status.is_err() {
                return Err(CompressError);
            }
            // Done once all input is taken and the flush fit (room was left over).
            if input.is_empty() && produced < room {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                // Stuck with input left or the flush unfinished: the output is incomplete.
                return Err(CompressError);
            }
        }
    }

    /// Forgets the context (the next message starts a fresh stream).
    pub(crate) fn reset(&mut self) {
        self.state = None;
    }

    pub(crate) fn window_bits(&self) -> u8 {
        self.window_bits
    }
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("allocated", &self.state.is_some())
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

/// One direction's decompressor, with the same lifetime rules as [`Compressor`].
pub(crate) struct Decompressor {
    state: Option<Box<zlib_rs::Inflate>>,
    window_bits: u8,
    no_context_takeover: bool,
}

impl Decompressor {
    pub(crate) fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        // A peer's zlib compresses "8-bit" windows with 9 bits (§7.1.2 notes the quirk);
        // a larger inflate window reads any smaller one.
        Self {
            state: None,
            window_bits: window_bits.clamp(9, 15),
            no_context_takeover,
        }
    }

    /// Inflates a piece of a message's (masked, if `mask` is given) compressed payload into
    /// `out`, never letting `out` grow past `limit` bytes.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        mask: Option<([u8; 4], &mut usize)>,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        match mask {
            None => self.inflate_plain(input, out, limit),
            Some((key, offset)) => {
                // Unmask through a stack buffer: the caller's bytes are borrowed, not ours.
                let mut scratch = [0u8; 4096];
                for piece in input.chunks(scratch.len()) {
                    let buf = &mut scratch[..piece.len()];
                    buf.copy_from_slice(piece);
                    *offset = apply_mask(buf, key, *offset);
                    self.inflate_plain(buf, out, limit)?;
                }
                Ok(())
            }
        }
    }

    /// Ends a message: inflates the stripped tail (§7.2.2) and, without context takeover,
    /// releases the state.
    pub(crate) fn finish(&mut self, out: &mut BytesMut, limit: usize) -> Result<(), InflateError> {
        let result = self.inflate_plain(&TAIL, out, limit);
        if self.no_context_takeover || result.is_err() {
            self.state = None;
        }
        result
    }

    fn inflate_plain(&mut self, mut input: &[u8], out: &mut BytesMut, limit: usize) -> Result<(), InflateError> {
        let window_bits = self.window_bits;
        let state = self
            .state
            .get_or_insert_with(|| Box::new(zlib_rs::Inflate::new(false, window_bits)));
        loop {
            if out.len() > limit {
                return Err(InflateError::TooLarge);
            }
            if out.capacity() == out.len() {
                // Grow geometrically, but never past one byte over the limit: that byte is how
                // an overflow is noticed, and it bounds memory whatever the input claims.
                let want = out.len().max(input.len().saturating_mul(2)).max(4096);
                // Once doubling would reach the limit, go to the limit at once: growing to it and
                // then by one byte more would copy the whole buffer for nothing.
                // Saturating: with `max_message_size = usize::MAX` there is no byte past the limit.
                let target = if out.len().saturating_add(want) >= limit {
                    limit.saturating_add(1)
                } else {
                    out.len() + want
                };
                grow_exact(out, target);
            }
            let allowed = (limit.saturating_add(1) - out.len()).min(out.capacity() - out.len());
            let in_before = state.total_in();
            let out_before = state.total_out();
            let spare = &mut spare(out)[..allowed];
            let status = state.decompress_uninit(input, spare, InflateFlush::SyncFlush);
            let consumed = (state.total_in() - in_before) as usize;
            let produced = (state.total_out() - out_before) as usize;
            // SAFETY: zlib-rs initialised `produced` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + produced) };
            input = &input[consumed..];
            match status {
                Ok(Status::StreamEnd) => {
                    // The peer ended the deflate stream (BFINAL); what follows starts afresh.
                    **state = zlib_rs::Inflate::new(false, window_bits);
                }
                Ok(Status::Ok | Status::BufError) => {}
                Err(_) => return Err(InflateError::Corrupt),
            }
            if out.len() > limit {
                return Err(InflateError::TooLarge);
            }
            let output_full = produced == allowed;
            if input.is_empty() && !output_full {
                return Ok(());
            }
            if consumed == 0 && produced == 0 && !output_full {
                return Ok(()); // needs more input than this piece holds
            }
        }
    }
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("allocated", &self.state.is_some())
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

/// Grows `buf` to exactly `capacity` bytes (`BytesMut::reserve` may double, which would let an
/// inflating message hold up to twice its limit).
fn grow_exact(buf: &mut BytesMut, capacity: usize) {
    if buf.is_empty() {
        *buf = BytesMut::with_capacity(capacity);
    } else {
        let mut grown = BytesMut::with_capacity(capacity);
        grown.extend_from_slice(buf);
        *buf = grown;
    }
}

/// The spare capacity of `buf`, for zlib to write into.
fn spare(buf: &mut BytesMut) -> &mut [MaybeUninit<u8>] {
    buf.spare_capacity_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(config: &DeflateConfig, messages: &[&[u8]], takeover: bool) {
        let mut compressor = Compressor::new(config, 15, !takeover);
        let mut decompressor = Decompressor::new(15, !takeover);
        for message in messages {
            let mut wire = BytesMut::new();
            compressor.compress(message, true, &mut wire).unwrap();
            let mut out = BytesMut::new();
            decompressor.inflate(&wire, None, &mut out, 1 << 20).unwrap();
            decompressor.finish(&mut out, 1 << 20).unwrap();
            assert_eq!(&out[..], *message);
        }
    }

    #[test]
    fn rfc_7692_examples() {
        // §7.2.3.1: "Hello" compressed.
        let mut d = Decompressor::new(15, false);
        let mut out = BytesMut::new();
        d.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], None, &mut out, 100)
            .unwrap();
        d.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");
        // §7.2.3.2: the second "Hello" with context takeover is shorter.
        out.clear();
        d.inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], None, &mut out, 100).unwrap();
        d.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");
        // §7.2.3.3: no compression (a stored block).
        let mut d = Decompressor::new(15, true);
        out.clear();
        d.inflate(
            &[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00],
            None,
            &mut out,
            100,
        )
        .unwrap();
        d.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");
        // §7.2.3.4: BFINAL set.
        let mut d = Decompressor::new(15, true);
        out.clear();
        d.inflate(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], None, &mut out, 100)
            .unwrap();
        d.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");
        // Our compressor's output for "Hello" is exactly the RFC's.
        let mut c = Compressor::new(&DeflateConfig::default(), 15, false);
        let mut wire = BytesMut::new();
        c.compress(b"Hello", true, &mut wire).unwrap();
        assert_eq!(&wire[..], [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        wire.clear();
        c.compress(b"Hello", true, &mut wire).unwrap();
        assert_eq!(&wire[..], [0xf2, 0x00, 0x11, 0x00, 0x00], "context takeover");
    }

    #[test]
    fn round_trips_with_and_without_takeover() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
        let messages: [&[u8]; 4] = [b"", b"a", &big, b"Hello Hello Hello"];
        round_trip(&DeflateConfig::default(), &messages, false);
        round_trip(&DeflateConfig::default(), &messages, true);
    }

    #[test]
    fn state_is_released_without_takeover() {
        let mut c = Compressor::new(&DeflateConfig::default(), 15, true);
        let mut wire = BytesMut::new();
        c.compress(b"part one ", false, &mut wire).unwrap();
        assert!(c.state.is_some(), "kept within a message");
        c.compress(b"part two", true, &mut wire).unwrap();
        assert!(c.state.is_none(), "released after it");
        let mut d = Decompressor::new(15, true);
        let mut out = BytesMut::new();
        d.inflate(&wire, None, &mut out, 100).unwrap();
        d.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"part one part two");
        assert!(d.state.is_none());
    }

    #[test]
    fn inflation_stops_at_the_limit() {
        // 10 MiB of zeros compress to about 10 KiB.
        let zeros = vec![0u8; 10 << 20];
        let mut wire = BytesMut::new();
        Compressor::new(&DeflateConfig::default(), 15, true)
            .compress(&zeros, true, &mut wire)
            .unwrap();
        assert!(wire.len() < 20 << 10, "{}", wire.len());
        let mut out = BytesMut::new();
        let mut d = Decompressor::new(15, true);
        assert_eq!(d.inflate(&wire, None, &mut out, 1 << 20), Err(InflateError::TooLarge));
        assert!(
            out.capacity() <= (1 << 20) + 1,
            "never allocated past the limit: {}",
            out.capacity()
        );
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let mut d = Decompressor::new(15, true);
        let mut out = BytesMut::new();
        // BTYPE=11 is reserved.
        assert_eq!(
            d.inflate(&[0xff, 0xff, 0xff], None, &mut out, 100),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn no_limit_means_no_overflow() {
        // `max_message_size = usize::MAX`: the "one byte past the limit" arithmetic saturates.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let mut wire = BytesMut::new();
        Compressor::new(&DeflateConfig::default(), 15, true)
            .compress(&big, true, &mut wire)
            .unwrap();
        let mut d = Decompressor::new(15, true);
        let mut out = BytesMut::new();
        d.inflate(&wire, None, &mut out, usize::MAX).unwrap();
        d.finish(&mut out, usize::MAX).unwrap();
        assert_eq!(&out[..], &big[..]);
        // And a limit just below the maximum, where `out.len() + want` nears it.
        let mut out = BytesMut::new();
        d.inflate(&wire, None, &mut out, usize::MAX - 1).unwrap();
        d.finish(&mut out, usize::MAX - 1).unwrap();
        assert_eq!(out.len(), big.len());
    }

    #[test]
    fn a_failed_compression_leaves_no_output_and_a_usable_stream() {
        let mut c = Compressor::new(&DeflateConfig::default(), 15, false);
        let mut d = Decompressor::new(15, false);
        let mut wire = BytesMut::from(&b"before"[..]);
        c.compress(b"Hello", true, &mut wire).unwrap();
        let mut out = BytesMut::new();
        d.inflate(&wire[6..], None, &mut out, 100).unwrap();
        d.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");

        let kept = wire.clone();
        c.fail_next = true;
        assert_eq!(c.compress(b"Hello again", true, &mut wire), Err(CompressError));
        assert_eq!(wire, kept, "partial output removed");
        assert!(c.state.is_none(), "the broken stream is dropped");

        // The next message starts a fresh stream, which the peer's inflater (still holding the
        // first message's context) reads correctly.
        wire.clear();
        c.compress(b"Hello", true, &mut wire).unwrap();
        out.clear();
        d.inflate(&wire, None, &mut out, 100).unwrap();
        d.finish(&mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");
    }
}
