//! Incremental UTF-8 validation across frames and reads.
//!
//! Text messages arrive in pieces: fragments, and pieces of a frame as reads deliver them. The
//! validator keeps at most three bytes of an unfinished code point between pieces and fails on
//! the first byte that can no longer start or continue valid UTF-8, so a peer streaming garbage
//! is stopped at once, not at the end of a 16 MiB message (RFC 6455 §8.1).

/// Input that is not UTF-8, or a text message that ended inside a code point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8 in text message")]
pub struct Utf8Error;

/// An incremental UTF-8 validator.
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Self {
            partial: [0; 4],
            partial_len: 0,
        }
    }

    /// Validates the next piece of the message.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Utf8Error> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let want = sequence_len(self.partial[0]).ok_or(Utf8Error)?;
            let take = (want - have).min(bytes.len());
            self.partial[have..have + take].copy_from_slice(&bytes[..take]);
            self.partial_len += take as u8;
            bytes = &bytes[take..];
            match std::str::from_utf8(&self.partial[..usize::from(self.partial_len)]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_none() => return Ok(()), // still unfinished, `bytes` empty
                Err(_) => return Err(Utf8Error),
            }
        }
        // Most pieces are whole code points: validate those with simdutf8's basic API, the
        // fastest (it reports no position; utf8/ascii with the compat API ran at 0.8x of it),
        // and look at an unfinished code point at the end, at most three bytes, on its own.
        let split = unfinished_tail(bytes);
        let (whole, tail) = bytes.split_at_checked(split).ok_or(Utf8Error)?;
        if simdutf8::basic::from_utf8(whole).is_err() {
            return Err(Utf8Error);
        }
        if tail.is_empty() {
            return Ok(());
        }
        // The tail must be a valid prefix of a code point: std checks each continuation byte's
        // range as it goes, so an impossible prefix reports `error_len() == Some`.
        match std::str::from_utf8(tail) {
            Err(e) if e.valid_up_to() == 0 && e.error_len().is_none() => {
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
            _ => Err(Utf8Error),
        }
    }

    /// Ends the message: fails if it stopped inside a code point. Resets the validator.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete { Ok(()) } else { Err(Utf8Error) }
    }

    /// Forgets any unfinished code point.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}

/// Whether a whole message is UTF-8. Most small text messages are ASCII, which a word-at-a-time
/// check confirms in a few instructions; simdutf8's setup costs more than that on short input
/// (a 20-byte message took 78 instructions through it).
pub(crate) fn is_valid_message(bytes: &[u8]) -> bool {
    bytes.is_ascii() || simdutf8::basic::from_utf8(bytes).is_ok()
}

/// Where a code point that `bytes` ends in the middle of starts, or `bytes.len()` if the last
/// lead byte's sequence is complete (or the end is invalid, which validation then reports).
fn unfinished_tail(bytes: &[u8]) -> usize {
    let len = bytes.len();
    // The last byte that is not a continuation byte, among the last three.
    let Some(back) = bytes.iter().rev().take(3).position(|&b| b & 0xC0 != 0x80) else {
        return len;
    };
    let lead_at = len - 1 - back;
    match bytes.get(lead_at).copied().and_then(sequence_len) {
        Some(need) if need > back + 1 => lead_at,
        _ => len,
    }
}

/// The length of the sequence a valid lead byte starts.
fn sequence_len(lead: u8) -> Option<usize> {
    match lead {
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_in_pieces(bytes: &[u8], cuts: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, bytes.len());
            v.feed(&bytes[start..cut])?;
            start = cut;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    #[test]
    fn fails_on_the_first_impossible_byte() {
        let mut v = Utf8Validator::new();
        // U+10FFFF is F4 8F BF BF; F4 90 can never start a valid sequence.
        assert_eq!(v.feed(&[b'a', 0xF4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(Utf8Error));
        let mut v = Utf8Validator::new();
        // A surrogate (ED A0 80) is rejected at its second byte.
        assert_eq!(v.feed(&[0xED]), Ok(()));
        assert_eq!(v.feed(&[0xA0]), Err(Utf8Error));
    }

    #[test]
    fn one_piece_verdict_matches_std_for_every_short_ending() {
        // A fresh validator accepts a piece exactly when std finds it valid or a valid prefix
        // cut short, for every ending of up to four bytes over the bytes that matter.
        let alphabet = [
            b'a', 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5,
        ];
        for len in 0..=4u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut bytes = b"xy".to_vec();
                for _ in 0..len {
                    bytes.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let expected = match std::str::from_utf8(&bytes) {
                    Ok(_) => true,
                    Err(e) => e.error_len().is_none(),
                };
                let mut v = Utf8Validator::new();
                assert_eq!(v.feed(&bytes).is_ok(), expected, "{bytes:x?}");
                let complete = std::str::from_utf8(&bytes).is_ok();
                if expected {
                    assert_eq!(v.finish().is_ok(), complete, "{bytes:x?}");
                }
            }
        }
    }

    #[test]
    fn every_split_point_of_multibyte_text() {
        let text = "κόσμε ✓ 𝄞 €ab\u{10FFFF}".as_bytes();
        for a in 0..=text.len() {
            for b in a..=text.len() {
                assert_eq!(validate_in_pieces(text, &[a, b]), Ok(()), "cuts {a} {b}");
            }
        }
        let truncated = &text[..text.len() - 1];
        assert_eq!(validate_in_pieces(truncated, &[3]), Err(Utf8Error));
    }

    proptest! {
        #[test]
        fn whole_message_verdict_matches_std(
            bytes in proptest::collection::vec(
                prop_oneof![0u8..0x80, any::<u8>(), 0x80u8..0xC0, Just(0xE2), Just(0xF0), Just(0xED)], 0..80),
        ) {
            prop_assert_eq!(is_valid_message(&bytes), std::str::from_utf8(&bytes).is_ok());
        }

        #[test]
        fn pieces_agree_with_whole_buffer(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), 0x80u8..0xC0, Just(0xE2), Just(0xF0), Just(0xED)], 0..64),
            mut cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            cuts.sort_unstable();
            let whole = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(validate_in_pieces(&bytes, &cuts).is_ok(), whole);
        }

        #[test]
        fn valid_strings_pass_at_any_split(s in "\\PC*", mut cuts in proptest::collection::vec(0usize..256, 0..6)) {
            cuts.sort_unstable();
            prop_assert_eq!(validate_in_pieces(s.as_bytes(), &cuts), Ok(()));
        }
    }
}
