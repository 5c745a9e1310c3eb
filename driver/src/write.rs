//! The outbound queue: everything the core wants written, gathered for one vectored write.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_io::AsyncWrite;
use wsengine::Transmit;

/// Payloads smaller than this are copied next to their header, so a burst of small frames
/// (sixteen echoes, a pong, a close) leaves in one contiguous buffer; larger ones are written
/// from the shared `Bytes` in place.
const COPY_BELOW: usize = 8 * 1024;
/// How many buffers one `writev` takes.
const MAX_SLICES: usize = 64;

/// Bytes waiting for the transport, in order; pings and pongs overtake queued data at the
/// next frame boundary (§5.4 lets control frames go between the frames of a message, and a
/// heartbeat must not wait behind a megabyte of data).
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    /// Small frames being gathered, written in place after the chunks; becomes a chunk when a
    /// large payload follows, when it reaches [`SEAL_AT`] or when a write takes part of it.
    tail: BytesMut,
    /// Chunks and waiting control frames, only while there are any: most bursts are small
    /// frames alone, and every connection would carry their size.
    more: Option<Box<Overflow>>,
    /// Bytes not yet written, in `more` and `tail`.
    len: usize,
    /// Whether `tail` ends with a whole frame (not with a large payload's header).
    tail_ends_frame: bool,
    /// The bytes written so far end inside a frame.
    mid_frame: bool,
    /// A handshake head is queued: nothing may overtake it, so control frames queue in order.
    in_order: bool,
}

#[derive(Debug, Default)]
struct Overflow {
    /// Buffers ready to write before the tail; the first may be partly written.
    chunks: VecDeque<Chunk>,
    /// Pings and pongs waiting for a frame boundary.
    control: BytesMut,
    /// Bytes of `chunks[0]` already written.
    written: usize,
}

#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    /// The chunk's last byte ends a frame, so a control frame may follow it.
    ends_frame: bool,
}

/// A tail of small frames is sealed into a chunk at this size, so a control frame waiting for a
/// boundary waits at most this long behind them.
const SEAL_AT: usize = 64 * 1024;

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
        if transmit.header().is_empty() {
            self.in_order = true;
        } else if !self.in_order && transmit.can_overtake_data() {
            // Every ping and pong goes here (not only those behind data), so they keep their
            // own order: pongs answer pings in the order they came (§5.5.3).
            let control = &mut self.more().control;
            control.extend_from_slice(transmit.header());
            control.extend_from_slice(transmit.payload());
            return;
        }
        if self.tail.capacity() == 0 {
            self.tail = take_tail();
        }
        self.tail.extend_from_slice(transmit.header());
        let payload = transmit.payload();
        if payload.len() < COPY_BELOW {
            self.tail.extend_from_slice(payload);
            self.tail_ends_frame = true;
            if self.tail.len() >= SEAL_AT {
                self.seal_tail();
            }
        } else {
            self.tail_ends_frame = false;
            self.seal_tail();
            self.more().chunks.push_back(Chunk {
                bytes: payload.clone(),
                ends_frame: true,
            });
        }
    }

    /// Writes until everything is out or the transport would block, then flushes the transport.
    pub(crate) fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let Some(more) = self.more.as_deref_mut() else {
                // Small frames alone (the common case): one buffer, written in place.
                if self.tail.is_empty() {
                    break;
                }
                let n = ready!(Pin::new(&mut *stream).poll_write(cx, &self.tail))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.advance(n);
                continue;
            };
            if !more.control.is_empty() && !self.mid_frame && more.written == 0 {
                let bytes = more.control.split().freeze();
                more.chunks.push_front(Chunk {
                    bytes,
                    ends_frame: true,
                });
                more.control = BytesMut::new();
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            let mut stopped = false;
            // With a control frame waiting, write only up to the next frame boundary.
            let stop_at_boundary = !more.control.is_empty();
            for (i, chunk) in more.chunks.iter().take(MAX_SLICES).enumerate() {
                let start = if i == 0 { more.written } else { 0 };
                slices[i] = IoSlice::new(&chunk.bytes[start..]);
                count += 1;
                if stop_at_boundary && chunk.ends_frame {
                    stopped = true;
                    break;
                }
            }
            stopped |= count < more.chunks.len();
            // The gathered small frames go as the last buffer, written in place: the tail keeps
            // its capacity instead of being frozen into a chunk and freed once written.
            if !stopped && count < MAX_SLICES && !self.tail.is_empty() {
                slices[count] = IoSlice::new(&self.tail);
                count += 1;
            }
            if count == 0 {
                break;
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

    fn more(&mut self) -> &mut Overflow {
        self.more.get_or_insert_with(Box::default)
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let bytes = self.tail.split().freeze();
            let ends_frame = self.tail_ends_frame;
            self.more().chunks.push_back(Chunk { bytes, ends_frame });
        }
    }

    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        if let Some(more) = self.more.as_deref_mut() {
            while n > 0 {
                let Some(first) = more.chunks.front() else { break };
                let left = first.bytes.len() - more.written;
                if n < left {
                    more.written += n;
                    self.mid_frame = true;
                    return;
                }
                n -= left;
                more.written = 0;
                self.mid_frame = !first.ends_frame;
                more.chunks.pop_front();
            }
        }
        if n > 0 {
            // The rest came from the tail, which is only written once every chunk is out.
            if n >= self.tail.len() {
                self.tail.clear();
                self.mid_frame = !self.tail_ends_frame;
            } else {
                // Rare (the transport took part of it): what is left becomes a chunk, so frames
                // queued from now on start a new tail and a waiting control frame can go at the
                // next boundary, as before.
                self.tail.advance(n);
                self.seal_tail();
                self.mid_frame = true;
            }
        }
        if self
            .more
            .as_deref()
            .is_some_and(|more| more.chunks.is_empty() && more.control.is_empty())
        {
            self.more = None;
        }
        if self.more.is_none() && self.tail.is_empty() {
            // Idle connections keep no write buffer (DESIGN.md: an idle connection costs almost
            // nothing): the tail's buffer waits for the next burst on this thread.
            park_tail(std::mem::take(&mut self.tail));
            self.mid_frame = false;
            self.in_order = false;
        }
    }
}

thread_local! {
    /// A drained queue's tail buffer, for the next queue on this thread to gather frames in:
    /// no allocation per burst, and no buffer held by an idle connection.
    static SPARE_TAIL: Cell<BytesMut> = Cell::new(BytesMut::new());
}

/// A parked tail larger than this is freed instead.
const MAX_PARKED_TAIL: usize = 2 * SEAL_AT;

/// The thread's spare tail buffer (empty, possibly without capacity).
fn take_tail() -> BytesMut {
    SPARE_TAIL.try_with(Cell::take).unwrap_or_default()
}

/// Gives an empty tail buffer to the thread, keeping the larger of it and the one there.
fn park_tail(tail: BytesMut) {
    if tail.capacity() == 0 || tail.capacity() > MAX_PARKED_TAIL {
        return;
    }
    let _ = SPARE_TAIL.try_with(move |spare| {
        let old = spare.take();
        spare.set(if old.capacity() > tail.capacity() { old } else { tail });
    });
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

    /// An open server connection (frames unmasked, so the bytes on the wire are predictable).
    fn open_server(now: std::time::Instant) -> wsengine::Connection {
        wsengine::Connection::upgraded(
            wsengine::Role::Server,
            wsengine::Config::default(),
            &wsengine::Negotiated::default(),
            now,
        )
    }

    fn transmits(sizes: &[usize]) -> (Vec<Transmit>, Vec<u8>) {
        let now = std::time::Instant::now();
        let mut conn = open_server(now);
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

    /// A writer that takes `budget` bytes in all, then blocks.
    struct Budget {
        out: Vec<u8>,
        budget: usize,
    }

    impl AsyncWrite for Budget {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.budget);
            if n == 0 {
                return Poll::Pending;
            }
            self.budget -= n;
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn pings_and_pongs_overtake_data_at_the_next_frame_boundary() {
        let now = std::time::Instant::now();
        let mut conn = open_server(now);
        let frame = |conn: &mut wsengine::Connection| {
            let t = conn.poll_transmit().unwrap();
            let mut wire = Vec::new();
            t.write_to(&mut wire);
            (t, wire)
        };
        conn.send(vec![1u8; 100_000]).unwrap();
        let (big1, big1_wire) = frame(&mut conn);
        conn.send(vec![2u8; 100_000]).unwrap();
        let (big2, big2_wire) = frame(&mut conn);
        conn.ping(Bytes::from_static(b"hb")).unwrap();
        let (ping, ping_wire) = frame(&mut conn);
        conn.close(now, wsengine::CloseCode::NORMAL, "").unwrap();
        let (close, close_wire) = frame(&mut conn);

        let mut queue = WriteQueue::default();
        queue.push(&big1);
        queue.push(&big2);
        let mut sink = Budget {
            out: Vec::new(),
            budget: 10,
        };
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        // Ten bytes of the first frame leave; then the ping and the close are queued.
        assert!(queue.poll_write(&mut sink, &mut cx).is_pending());
        queue.push(&ping);
        queue.push(&close);
        sink.budget = usize::MAX;
        assert!(matches!(queue.poll_write(&mut sink, &mut cx), Poll::Ready(Ok(()))));
        // The ping goes right after the frame being written, ahead of the second; the close
        // never overtakes data.
        let expected = [big1_wire, ping_wire, big2_wire, close_wire].concat();
        assert_eq!(sink.out.len(), expected.len());
        assert!(sink.out == expected, "wrong order on the wire");
        assert!(queue.is_empty());
    }

    #[test]
    fn pongs_keep_their_order() {
        let now = std::time::Instant::now();
        let mut conn = open_server(now);
        let mut queue = WriteQueue::default();
        let mut expected_pongs = Vec::new();
        for i in 0..10u8 {
            conn.pong(Bytes::from(vec![i; 3])).unwrap();
            let t = conn.poll_transmit().unwrap();
            t.write_to(&mut expected_pongs);
            queue.push(&t);
            if i == 4 {
                conn.send(vec![9u8; 20_000]).unwrap();
                queue.push(&conn.poll_transmit().unwrap());
            }
        }
        let mut sink = Budget {
            out: Vec::new(),
            budget: usize::MAX,
        };
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(matches!(queue.poll_write(&mut sink, &mut cx), Poll::Ready(Ok(()))));
        // Nothing had started: all pongs overtake the data frame, in their order.
        assert_eq!(&sink.out[..expected_pongs.len()], &expected_pongs[..]);
    }
}
