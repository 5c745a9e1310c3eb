//! Accumulating an HTTP head that may arrive a byte at a time.

use bytes::Bytes;

/// Bytes of an HTTP head received so far, scanned once for the blank line that ends it.
#[derive(Debug, Default)]
pub(crate) struct HeadBuffer {
    buf: Vec<u8>,
    scanned: usize,
}

/// The `http` version of an httparse minor version (`1` for HTTP/1.1).
pub(crate) fn http_version(minor: Option<u8>) -> http::Version {
    if minor == Some(1) {
        http::Version::HTTP_11
    } else {
        http::Version::HTTP_10
    }
}

/// Copies headers parsed out of `head` into `map`; `Err` names what was invalid. Each value
/// becomes a slice of `head` (a reference count) instead of an allocation of its own.
pub(crate) fn share_headers(
    headers: &[httparse::Header<'_>],
    head: &Bytes,
    map: &mut http::HeaderMap,
) -> Result<(), &'static str> {
    map.reserve(headers.len());
    for h in headers {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "invalid header name")?;
        let value = subslice(head, h.value).ok_or("invalid header value")?;
        let value = http::HeaderValue::from_maybe_shared(value).map_err(|_| "invalid header value")?;
        map.append(name, value);
    }
    Ok(())
}

/// `part`, a slice that a parser returned from `whole`'s bytes, as a shared slice of `whole`.
/// `None` if it does not lie within `whole` (which a parser returning subslices never does).
pub(crate) fn subslice(whole: &Bytes, part: &[u8]) -> Option<Bytes> {
    if part.is_empty() {
        return Some(Bytes::new());
    }
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then(|| whole.slice(start..end))
}

/// Where the first blank line (`\r\n\r\n`) at or after `from` ends in `buf`.
///
/// Looks at the byte where the pattern would end and skips ahead by as much as that byte
/// allows (four for a byte that is neither `\r` nor `\n`), so a head costs about a quarter of
/// a comparison per byte instead of a four-byte window comparison per byte.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut end = from.checked_add(3)?;
    while let Some(&last) = buf.get(end) {
        match last {
            b'\n' => {
                if buf.get(end - 3..=end) == Some(b"\r\n\r\n") {
                    return Some(end + 1);
                }
                // A later match has a `\r` where this `\n` is: its end is two bytes on.
                end += 2;
            }
            // The pattern has `\r` at 0 and 2, so its end is one or three bytes on.
            b'\r' => end += 1,
            _ => end += 4,
        }
    }
    None
}

/// The head is longer than the limit.
#[derive(Debug)]
pub(crate) struct HeadTooLarge;

impl HeadBuffer {
    /// Appends `data`; returns the length of the head once its end has arrived.
    ///
    /// Each byte is scanned once however the head is split, so a peer sending one byte at a
    /// time costs linear, not quadratic, work.
    pub(crate) fn push(&mut self, data: &[u8], max: usize) -> Result<Option<usize>, HeadTooLarge> {
        self.buf.extend_from_slice(data);
        if let Some(head_len) = find_head_end(&self.buf, self.scanned.saturating_sub(3)) {
            return if head_len > max {
                Err(HeadTooLarge)
            } else {
                Ok(Some(head_len))
            };
        }
        if self.buf.len() > max {
            return Err(HeadTooLarge);
        }
        self.scanned = self.buf.len();
        Ok(None)
    }

    /// Whether nothing has been buffered yet (so a head that arrives whole can be parsed in
    /// place).
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_across_any_split() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nEXTRA";
        for split in 0..head.len() {
            let mut buf = HeadBuffer::default();
            let first = buf.push(&head[..split], 100).unwrap();
            let found = first.or_else(|| buf.push(&head[split..], 100).unwrap());
            assert_eq!(found, Some(head.len() - 5), "split {split}");
        }
        let mut buf = HeadBuffer::default();
        for &b in head.iter() {
            if let Some(len) = buf.push(&[b], 100).unwrap() {
                assert_eq!(len, head.len() - 5);
                return;
            }
        }
        panic!("end not found");
    }

    #[test]
    fn skipping_search_equals_window_search() {
        let alphabet = [b'\r', b'\n', b'a'];
        // Every string of up to 8 bytes over {CR, LF, a}, from every start.
        for len in 0..=8u32 {
            for mut n in 0..3usize.pow(len) {
                let mut buf = Vec::new();
                for _ in 0..len {
                    buf.push(alphabet[n % 3]);
                    n /= 3;
                }
                for from in 0..=buf.len() {
                    let expected = buf
                        .get(from..)
                        .and_then(|rest| rest.windows(4).position(|w| w == b"\r\n\r\n"))
                        .map(|at| from + at + 4);
                    assert_eq!(find_head_end(&buf, from), expected, "{buf:?} from {from}");
                }
            }
        }
    }

    #[test]
    fn subslice_shares_only_inner_slices() {
        let whole = Bytes::from_static(b"hello world");
        assert_eq!(subslice(&whole, &whole[6..]).unwrap(), "world");
        assert_eq!(subslice(&whole, b"").unwrap(), "");
        let other = b"elsewhere".to_vec();
        assert!(subslice(&whole, &other).is_none());
    }

    #[test]
    fn limit_applies_to_the_head() {
        let mut buf = HeadBuffer::default();
        assert!(buf.push(&[b'a'; 10], 10).unwrap().is_none());
        assert!(buf.push(b"a", 10).is_err());
        let mut buf = HeadBuffer::default();
        assert!(buf.push(b"GET / HTTP/1.1\r\n\r\n", 10).is_err());
    }
}
