//! Payload masking (RFC 6455 §5.3).

/// XORs `buf` with the masking `key`, starting `offset` bytes into the key's cycle.
///
/// Returns the key offset for the byte after `buf`, so a payload that arrives in pieces can be
/// unmasked piece by piece. Masking is an involution: applying it twice restores the input.
#[inline(always)]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let end = (offset % 4 + buf.len() % 4) % 4;
    // Rotate the key so that index 0 of `buf` lines up with key byte `offset`.
    let rotated = rotate(key, offset);
    // Short payloads (most messages) are masked inline; the vector loops stay out of line.
    if buf.len() < SHORT_BELOW {
        mask_short(buf, rotated);
    } else {
        mask_long(buf, rotated);
    }
    end
}

/// [`apply_mask`] from [`SHORT_BELOW`] bytes up, with `rotated` lined up with `buf[0]`.
#[inline]
fn mask_long(buf: &mut [u8], rotated: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= AVX2_FROM && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `mask_avx2` only requires the CPU to support AVX2, which was just checked.
        unsafe { mask_avx2(buf, rotated) };
        return;
    }
    mask_blocks(buf, rotated);
}

/// Payloads shorter than this are masked a word at a time in a general-purpose register:
/// setting up the vector loop cost 66 instructions for 20 bytes.
const SHORT_BELOW: usize = 64;

/// A short payload masked with `key` (already rotated to the payload's first byte), eight
/// bytes at a time in a general-purpose register.
#[inline(always)]
fn mask_short(buf: &mut [u8], key: [u8; 4]) {
    let [a, b, c, d] = key;
    let word = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = buf.chunks_exact_mut(8);
    for chunk in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Every word is a multiple of 4 bytes long, so the rest starts at key byte 0.
    let mut rest = words.into_remainder();
    if rest.len() >= 4 {
        let (head, tail) = rest.split_at_mut(4);
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(head);
        head.copy_from_slice(&(u32::from_ne_bytes(bytes) ^ u32::from_ne_bytes(key)).to_ne_bytes());
        rest = tail;
    }
    for (byte, mask) in rest.iter_mut().zip(key) {
        *byte ^= mask;
    }
}

/// `key` rotated so that its byte `by` (modulo 4) comes first: in little-endian order byte
/// `by` becomes byte 0.
#[inline(always)]
fn rotate(key: [u8; 4], by: usize) -> [u8; 4] {
    u32::from_le_bytes(key).rotate_right(8 * (by % 4) as u32).to_le_bytes()
}

/// Bytes masked per step: two 16-byte vectors on baseline x86-64, one with AVX2.
const BLOCK: usize = 32;

/// Below this the inlined baseline loop is faster than calling the AVX2 one (which cannot be
/// inlined into baseline code): criterion mask/64 took 8.6 ns through AVX2, 3.3 ns inlined,
/// against memcpy's 2.7-3.9 ns.
#[cfg(target_arch = "x86_64")]
const AVX2_FROM: usize = 128;

/// From this length the AVX2 path aligns its stores first (see [`mask_avx2`]).
#[cfg(target_arch = "x86_64")]
const ALIGN_FROM: usize = 1024;

/// The AVX2 path: each block is one 32-byte load, XOR and store instead of two 16-byte ones,
/// four blocks per loop step, which is what it takes to keep up with `memcpy` (which uses AVX)
/// from 128 B to 4 KiB. The code is the same portable loop; only the instruction set differs.
/// Compiled with AVX2 it cannot be inlined into baseline code, so it is one call, with the
/// alignment head inside. With the tail below, a 256-byte mask went from 94 to 74
/// instructions and a 1 KiB one from 222 to 188 (criterion's iteration, under callgrind).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mask_avx2(buf: &mut [u8], rotated: [u8; 4]) {
    // Up to the first 32-byte boundary with the narrower steps, so that no 32-byte store
    // straddles two cache lines (each such store costs two): mask/1024 took 17 ns unaligned,
    // 12.8 ns aligned, against memcpy's 13-14 (which aligns its stores the same way).
    // Below `ALIGN_FROM` the head's extra steps cost more than the split stores they save.
    let head_len = if buf.len() >= ALIGN_FROM {
        buf.as_ptr().align_offset(BLOCK).min(buf.len())
    } else {
        0
    };
    let (head, body) = buf.split_at_mut(head_len);
    let rotated_body = rotate(rotated, head_len);
    if !head.is_empty() {
        mask_blocks(head, rotated);
    }
    // The last block is read before anything is written and written last: the bytes that
    // follow the whole blocks get masked in one step instead of 16-, 8-, 4- and 1-byte ones,
    // and where it overlaps the whole blocks it writes what they wrote (`memcpy` ends the same
    // way).
    let Some(last_at) = body.len().checked_sub(BLOCK) else {
        mask_blocks(body, rotated_body);
        return;
    };
    let mut last = [0u8; BLOCK];
    last.copy_from_slice(&body[last_at..]);
    for (byte, mask) in last.iter_mut().zip(block_pattern(rotate(rotated_body, last_at))) {
        *byte ^= mask;
    }
    let pattern = block_pattern(rotated_body);
    // Four blocks per step: a quarter of the loop overhead, and four independent vectors.
    let mut quads = body.chunks_exact_mut(4 * BLOCK);
    for quad in &mut quads {
        for block in quad.chunks_exact_mut(BLOCK) {
            for (byte, mask) in block.iter_mut().zip(pattern) {
                *byte ^= mask;
            }
        }
    }
    for block in quads.into_remainder().chunks_exact_mut(BLOCK) {
        for (byte, mask) in block.iter_mut().zip(pattern) {
            *byte ^= mask;
        }
    }
    if let Some(end) = body.get_mut(last_at..) {
        end.copy_from_slice(&last);
    }
}

/// XORs `buf` with `rotated` repeated, a block at a time. Fixed-size blocks zipped with a
/// fixed-size pattern compile to whole-vector XORs with no `unsafe` and no alignment
/// requirement; the tail is a shorter zip with the same pattern, since every block is a
/// multiple of 4 bytes and so ends at key byte 0.
#[inline(always)]
fn mask_blocks(buf: &mut [u8], rotated: [u8; 4]) {
    let pattern = block_pattern(rotated);
    let mut blocks = buf.chunks_exact_mut(BLOCK);
    for block in &mut blocks {
        for (byte, mask) in block.iter_mut().zip(pattern) {
            *byte ^= mask;
        }
    }
    // The tail in 16-, 8- and 4-byte steps (one vector or word each) and then the last bytes,
    // instead of a byte loop of up to 31 steps.
    let mut rest = blocks.into_remainder();
    mask_step::<16>(&mut rest, &pattern);
    mask_step::<8>(&mut rest, &pattern);
    mask_step::<4>(&mut rest, &pattern);
    for (byte, mask) in rest.iter_mut().zip(pattern) {
        *byte ^= mask;
    }
}

/// `rotated` repeated over a block.
#[inline(always)]
fn block_pattern(rotated: [u8; 4]) -> [u8; BLOCK] {
    let mut pattern = [0u8; BLOCK];
    for (i, byte) in pattern.iter_mut().enumerate() {
        *byte = rotated[i % 4];
    }
    pattern
}

/// Masks the first `N` bytes of `rest` if there are that many and moves past them. `N` is a
/// multiple of 4 (or the caller is done), so the pattern stays aligned with the key.
#[inline(always)]
fn mask_step<const N: usize>(rest: &mut &mut [u8], pattern: &[u8; BLOCK]) {
    if rest.len() >= N {
        let (head, tail) = std::mem::take(rest).split_at_mut(N);
        for (byte, mask) in head.iter_mut().zip(pattern) {
            *byte ^= mask;
        }
        *rest = tail;
    }
}

/// The byte-at-a-time reference implementation that [`apply_mask`] must equal.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
    (offset + buf.len()) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x6d, 0xb6, 0xb2, 0x80];

    /// Masks `len` bytes at `start` in place both ways: the same bytes must change (nothing
    /// outside the slice may), and the same key offset must come back.
    fn check_in_place(source: &[u8], start: usize, len: usize, offset: usize) {
        let mut fast = source.to_vec();
        let mut slow = source.to_vec();
        let a = apply_mask(&mut fast[start..start + len], KEY, offset);
        let b = apply_mask_bytewise(&mut slow[start..start + len], KEY, offset);
        assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
        assert_eq!(a, b);
    }

    #[test]
    fn fast_path_equals_byte_loop_at_every_length_and_offset() {
        let source: Vec<u8> = (0..340u16).map(|i| (i * 7 + 3) as u8).collect();
        // Every start alignment within a 32-byte block, and every length across the 32-byte
        // blocks, the 4-block steps, the 8-byte steps and the byte tail.
        for start in 0..32 {
            for len in 0..=300 {
                for offset in 0..4 {
                    check_in_place(&source, start, len, offset);
                }
            }
        }
    }

    #[test]
    fn aligned_long_path_equals_byte_loop() {
        // From `ALIGN_FROM` the AVX2 path first masks up to a 32-byte boundary.
        let source: Vec<u8> = (0..1200u16).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..32 {
            for len in [1023, 1024, 1025, 1031, 1055, 1056, 1057, 1100, 1151] {
                check_in_place(&source, start, len, start % 4);
            }
        }
    }

    #[test]
    fn portable_blocks_equal_byte_loop_at_every_length_and_offset() {
        // `apply_mask` takes the AVX2 path for 32 bytes and more where the CPU has it; this
        // checks the portable path at the same lengths whatever the CPU.
        let key = [0x6d, 0xb6, 0xb2, 0x80];
        let source: Vec<u8> = (0..340u16).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..32 {
            for len in (0..=130).chain([255, 256, 257, 268]) {
                for offset in 0..4 {
                    let mut fast = source[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    mask_blocks(&mut fast, rotate(key, offset));
                    apply_mask_bytewise(&mut slow, key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn short_path_equals_byte_loop() {
        let key = [0x6d, 0xb6, 0xb2, 0x80];
        let source: Vec<u8> = (0..340u16).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..=260 {
                for offset in 0..4 {
                    let mut fast = source.clone();
                    let mut slow = source.clone();
                    mask_short(&mut fast[start..start + len], rotate(key, offset));
                    apply_mask_bytewise(&mut slow[start..start + len], key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn offsets_beyond_the_key_wrap() {
        let key = [9, 8, 7, 6];
        for offset in 0..12 {
            let mut fast = vec![0u8; 70];
            let mut slow = fast.clone();
            assert_eq!(
                apply_mask(&mut fast, key, offset),
                apply_mask_bytewise(&mut slow, key, offset % 4)
            );
            assert_eq!(fast, slow, "offset {offset}");
        }
    }

    #[test]
    fn split_application_equals_whole() {
        let key = [1, 2, 3, 250];
        let original: Vec<u8> = (0..=255).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..original.len() {
            let mut parts = original.clone();
            let (a, b) = parts.split_at_mut(split);
            let offset = apply_mask(a, key, 0);
            apply_mask(b, key, offset);
            assert_eq!(parts, whole, "split at {split}");
        }
    }
}
