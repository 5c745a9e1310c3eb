//! Accumulating an HTTP head that may arrive a byte at a time.

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

/// Copies parsed headers into `map`; `Err` names what was invalid.
pub(crate) fn copy_headers(headers: &[httparse::Header<'_>], map: &mut http::HeaderMap) -> Result<(), &'static str> {
    for h in headers {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "invalid header name")?;
        let value = http::HeaderValue::from_bytes(h.value).map_err(|_| "invalid header value")?;
        map.append(name, value);
    }
    Ok(())
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
        let from = self.scanned.saturating_sub(3);
        if let Some(at) = self.buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let head_len = from + at + 4;
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
    fn limit_applies_to_the_head() {
        let mut buf = HeadBuffer::default();
        assert!(buf.push(&[b'a'; 10], 10).unwrap().is_none());
        assert!(buf.push(b"a", 10).is_err());
        let mut buf = HeadBuffer::default();
        assert!(buf.push(b"GET / HTTP/1.1\r\n\r\n", 10).is_err());
    }
}
