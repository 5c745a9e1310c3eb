//! The outbound queue: everything the core wants written, gathered for one vectored write.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_io::AsyncWrite;
use wsengine::Transmit;

/// Payloads smaller than this are copied next to their header, so a burst of small frames
/// (sixteen echoes, a pong, a close) leaves in one contiguous buffer; larger ones are written
/// from the shared `Bytes` in place.
const COPY_BELOW: usize = 8 * 1024;
/// How many buffers one `writev` takes.
const MAX_SLICES: usize = 64;

/// Bytes waiting for the transport, in order.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    /// Buffers ready to write; the first may be partly written.
    chunks: VecDeque<Bytes>,
    /// Small frames being gathered; becomes a chunk when a large payload follows or a write starts.
    tail: BytesMut,
    /// Bytes of `chunks[0]` already written.
    written: usize,
    /// Bytes not yet written, in `chunks` and `tail`.
    len: usize,
}

impl WriteQueue {
    /// Bytes not yet written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push(&mut self, transmit: &Transmit) {
        self.len += transmit.len();
        self.tail.extend_from_slice(transmit.header());
        let payload = transmit.payload();
        if payload.len() < COPY_BELOW {
            self.tail.extend_from_slice(payload);
        } else {
            self.seal_tail();
            self.chunks.push_back(payload.clone());
        }
    }

    /// Writes until everything is out or the transport would block, then flushes the transport.
    pub(crate) fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.seal_tail();
        while !self.chunks.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_SLICES).enumerate() {
                let start = if i == 0 { self.written } else { 0 };
                slices[i] = IoSlice::new(&chunk[start..]);
                count += 1;
            }
            let n = ready!(Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        ready!(Pin::new(&mut *stream).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
    }

    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(first) = self.chunks.front() else { break };
            let left = first.len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            // Idle connections keep no write buffer (DESIGN.md: an idle connection costs almost
            // nothing); the next burst allocates afresh.
            self.chunks = VecDeque::new();
            self.tail = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts at most `step` bytes per call.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.step - n);
                self.out.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn transmits(sizes: &[usize]) -> (Vec<Transmit>, Vec<u8>) {
        let now = std::time::Instant::now();
        let mut conn = wsengine::Connection::upgraded(
            wsengine::Role::Server,
            wsengine::Config::default(),
            &wsengine::Negotiated::default(),
            now,
        );
        let mut all = Vec::new();
        let mut wire = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            conn.send(vec![i as u8; size]).unwrap();
            let t = conn.poll_transmit().unwrap();
            t.write_to(&mut wire);
            all.push(t);
        }
        (all, wire)
    }

    #[test]
    fn keeps_order_across_partial_vectored_writes() {
        let (all, wire) = transmits(&[3, 20_000, 5, 0, 100_000, 7, 8_191, 8_192]);
        for step in [1, 7, 4096, 1 << 20] {
            let mut queue = WriteQueue::default();
            for t in &all {
                queue.push(t);
            }
            assert_eq!(queue.len(), wire.len());
            let mut sink = Trickle { out: Vec::new(), step };
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            assert!(matches!(queue.poll_write(&mut sink, &mut cx), Poll::Ready(Ok(()))));
            assert_eq!(sink.out, wire, "step {step}");
            assert!(queue.is_empty());
            assert_eq!(queue.tail.capacity(), 0, "drained queue keeps no buffer");
        }
    }
}
