//! An echo server on io_uring, one thread, driving the core through its public API only: the
//! proof that the sans-IO core needs no readiness model at all.
//!
//! ```text
//! cargo run --release -p wsengine --example uring_echo -- 127.0.0.1:9001 [--context-takeover]
//! ```
//!
//! One ring carries everything: a multishot accept on the listener, a multishot receive per
//! connection into buffers the kernel picks from a registered buffer ring (returned as soon as
//! the core has taken their bytes), and one send in flight per connection. All sends produced
//! by one batch of completions go to the kernel in the same `io_uring_enter` that waits for the
//! next batch. Bounded: at most `MAX_CONNECTIONS` connections (more are closed on accept),
//! `BUFFERS` receive buffers, `MAX_UNSENT` bytes queued per connection (a peer that does not
//! read beyond that is dropped). Permessage-deflate is accepted as `blocking_echo` does.

#[cfg(target_os = "linux")]
#[path = "common/cli.rs"]
mod cli;
#[cfg(target_os = "linux")]
#[path = "common/echo_config.rs"]
mod echo_config;

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    uring::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("io_uring is Linux-only");
}

#[cfg(target_os = "linux")]
mod uring {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::io;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::time::{Duration, Instant};

    use io_uring::{IoUring, cqueue, opcode, squeue, types};
    use wsengine::{Accept, Bytes, Config, Connection, Event, Transmit};

    use super::cli;

    /// Connections served at once; one accepted beyond this is closed at once.
    pub(crate) const MAX_CONNECTIONS: usize = 65_536;
    /// Receive buffers in the ring (a power of two, at most 32 768).
    pub(crate) const BUFFERS: u16 = 512;
    /// Bytes in each receive buffer.
    const BUFFER_SIZE: usize = 64 * 1024;
    /// Output queued for a peer that does not read, beyond which the connection is dropped.
    pub(crate) const MAX_UNSENT: usize = 64 * 1024 * 1024;
    /// How long a closing connection waits for the peer's end of stream after our own.
    const LINGER: Duration = Duration::from_secs(2);
    /// Submission queue entries; the completion queue has four times as many.
    const RING_ENTRIES: u32 = 4096;
    const BUFFER_GROUP: u16 = 0;
    const ENOBUFS: i32 = 105;
    /// Most buffers one vectored write takes (the kernel's limit); the rest go in the next.
    const IOV_MAX: usize = 1024;
    /// Payloads from this size go out from the core's own buffer instead of being copied.
    const VECTORED_FROM: usize = 1024;

    // What a completion belongs to: the operation in the top byte, the slot below.
    const OP_ACCEPT: u64 = 1;
    const OP_RECV: u64 = 2;
    const OP_SEND: u64 = 3;
    const OP_CANCEL: u64 = 4;

    fn user_data(op: u64, slot: u32) -> u64 {
        (op << 56) | u64::from(slot)
    }

    pub(crate) fn main() -> io::Result<()> {
        let args = cli::Args::parse(
            "uring_echo",
            "[ADDR (default 127.0.0.1:9001)] [--context-takeover]",
            "Echoes every WebSocket message (io_uring, one thread).",
            &["--context-takeover"],
            1,
        );
        let addr = args.listen_addr(0, "127.0.0.1:9001");
        let config = Arc::new(crate::echo_config::echo_config(args.flag("--context-takeover")));
        let listener = args.or_exit(&format!("cannot listen on {addr}"), TcpListener::bind(addr));
        let mut server = match Server::new(listener, config) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("uring_echo: io_uring unavailable: {e}");
                std::process::exit(1);
            }
        };
        eprintln!("uring_echo: listening on ws://{}", server.listener.local_addr()?);
        server.run()
    }

    /// The provided-buffer ring: page-aligned entries the kernel consumes, and the buffers they
    /// point at. Both live as long as the ring (the server owns both; the ring is dropped first).
    struct BufRing {
        entries: *mut types::BufRingEntry,
        layout: std::alloc::Layout,
        buffers: Box<[u8]>,
        tail: u16,
    }

    impl BufRing {
        fn new(ring: &IoUring) -> io::Result<Self> {
            let size = usize::from(BUFFERS) * std::mem::size_of::<types::BufRingEntry>();
            let layout = std::alloc::Layout::from_size_align(size, 4096).map_err(io::Error::other)?;
            // SAFETY: the layout has a non-zero size.
            let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
            if entries.is_null() {
                return Err(io::Error::other("cannot allocate the buffer ring"));
            }
            let mut this = BufRing {
                entries,
                layout,
                buffers: vec![0u8; usize::from(BUFFERS) * BUFFER_SIZE].into_boxed_slice(),
                tail: 0,
            };
            // SAFETY: `entries` is page aligned, holds BUFFERS entries and is freed only in Drop,
            // after the ring (declared before it in `Server`) has been dropped.
            unsafe {
                ring.submitter()
                    .register_buf_ring_with_flags(entries as u64, BUFFERS, BUFFER_GROUP, 0)?;
            }
            for bid in 0..BUFFERS {
                this.give_back(bid);
            }
            Ok(this)
        }

        /// The first `len` bytes the kernel wrote into buffer `bid`.
        fn bytes(&self, bid: u16, len: usize) -> &[u8] {
            let start = usize::from(bid) * BUFFER_SIZE;
            self.buffers.get(start..start + len.min(BUFFER_SIZE)).unwrap_or(&[])
        }

        /// Hands buffer `bid` back to the kernel.
        fn give_back(&mut self, bid: u16) {
            let index = usize::from(self.tail & (BUFFERS - 1));
            let addr = self.buffers.as_ptr() as u64 + (usize::from(bid) * BUFFER_SIZE) as u64;
            // SAFETY: index < BUFFERS, inside the allocation; the kernel reads entries only up
            // to the published tail, which does not yet cover this one.
            unsafe {
                let entry = &mut *self.entries.add(index);
                entry.set_addr(addr);
                entry.set_len(BUFFER_SIZE as u32);
                entry.set_bid(bid);
            }
            self.tail = self.tail.wrapping_add(1);
            // SAFETY: the tail field lives in the first entry, inside the allocation; the kernel
            // reads it concurrently, hence the atomic release store after the entry is written.
            unsafe {
                let tail = types::BufRingEntry::tail(self.entries).cast_mut().cast::<AtomicU16>();
                (*tail).store(self.tail, Ordering::Release);
            }
        }
    }

    impl Drop for BufRing {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout; the ring using it is already gone.
            unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) }
        }
    }

    /// `struct iovec`: what `writev` takes (a base and a length, in this order, on Linux).
    #[repr(C)]
    struct Iov {
        base: *const u8,
        len: usize,
    }

    /// Output of one connection: small frames copied together, large payloads kept as the core
    /// handed them (a reference count, no copy), each after the bytes that precede it.
    #[derive(Default)]
    struct Outgoing {
        small: Vec<u8>,
        /// (offset in `small` the payload follows, payload)
        large: Vec<(usize, Bytes)>,
        len: usize,
    }

    impl Outgoing {
        fn push(&mut self, transmit: &Transmit) {
            if transmit.payload().len() >= VECTORED_FROM {
                self.small.extend_from_slice(transmit.header());
                self.large.push((self.small.len(), transmit.payload().clone()));
            } else {
                transmit.write_to(&mut self.small);
            }
            self.len += transmit.len();
        }

        fn is_empty(&self) -> bool {
            self.len == 0
        }

        /// Keeps the capacity: the next batch needs about as much.
        fn clear(&mut self) {
            self.small.clear();
            self.large.clear();
            self.len = 0;
        }

        /// The buffers to write, in order.
        fn iovecs(&self, iov: &mut Vec<Iov>) {
            fn part(iov: &mut Vec<Iov>, bytes: &[u8]) {
                if !bytes.is_empty() {
                    iov.push(Iov {
                        base: bytes.as_ptr(),
                        len: bytes.len(),
                    });
                }
            }
            iov.clear();
            let mut at = 0;
            for (end, payload) in &self.large {
                part(iov, self.small.get(at..*end).unwrap_or(&[]));
                part(iov, payload);
                at = *end;
            }
            part(iov, self.small.get(at..).unwrap_or(&[]));
        }
    }

    /// One connection.
    struct Slot {
        /// The socket; `None` once closed (the slot waits for its operations to complete).
        tcp: Option<TcpStream>,
        conn: Connection,
        /// Output waiting for the send in flight to complete.
        out: Outgoing,
        /// The send in flight (untouched until it completes), as `iov` from `iov_at` on.
        sending: Outgoing,
        iov: Vec<Iov>,
        iov_at: usize,
        send_inflight: bool,
        recv_armed: bool,
        /// The peer ended its stream (or the transport failed).
        eof: bool,
        /// Our end of stream was sent; the socket is closed at this deadline at the latest.
        linger_until: Option<Instant>,
        /// The deadline this slot has in the timer heap.
        armed: Option<Instant>,
        dirty: bool,
    }

    struct Server {
        // Dropped first: the kernel stops using the buffer ring and the send buffers.
        ring: IoUring,
        bufs: BufRing,
        listener: TcpListener,
        config: Arc<Config>,
        slots: Vec<Option<Slot>>,
        free: Vec<u32>,
        live: usize,
        dirty: Vec<u32>,
        timers: BinaryHeap<Reverse<(Instant, u32)>>,
        completions: Vec<(u64, i32, u32)>,
    }

    impl Server {
        fn new(listener: TcpListener, config: Arc<Config>) -> io::Result<Self> {
            // One thread submits everything and reaps completions only when it waits: the kernel
            // then runs completion work in that wait instead of interrupting the thread (6.1+;
            // older kernels get a plain ring).
            let ring = match IoUring::builder()
                .setup_cqsize(RING_ENTRIES * 4)
                .setup_single_issuer()
                .setup_defer_taskrun()
                .build(RING_ENTRIES)
            {
                Ok(ring) => ring,
                Err(_) => IoUring::builder().setup_cqsize(RING_ENTRIES * 4).build(RING_ENTRIES)?,
            };
            let bufs = BufRing::new(&ring)?;
            Ok(Server {
                ring,
                bufs,
                listener,
                config,
                slots: Vec::new(),
                free: Vec::new(),
                live: 0,
                dirty: Vec::new(),
                timers: BinaryHeap::new(),
                completions: Vec::with_capacity(RING_ENTRIES as usize * 4),
            })
        }

        /// Queues a submission, flushing the queue to the kernel first when it is full.
        ///
        /// # Safety
        /// Whatever `entry` points at must stay valid until its completion arrives.
        unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
            for _ in 0..2 {
                // SAFETY: forwarded from the caller.
                if unsafe { self.ring.submission().push(entry) }.is_ok() {
                    return Ok(());
                }
                self.ring.submit()?;
            }
            Err(io::Error::other("submission queue stays full"))
        }

        fn arm_accept(&mut self) -> io::Result<()> {
            let entry = opcode::AcceptMulti::new(types::Fd(self.listener.as_raw_fd()))
                .build()
                .user_data(user_data(OP_ACCEPT, 0));
            // SAFETY: the entry points at nothing of ours.
            unsafe { self.push(&entry) }
        }

        fn arm_recv(&mut self, index: u32) -> io::Result<()> {
            let Some(Some(slot)) = self.slots.get_mut(index as usize) else {
                return Ok(());
            };
            let Some(tcp) = &slot.tcp else { return Ok(()) };
            let entry = opcode::RecvMulti::new(types::Fd(tcp.as_raw_fd()), BUFFER_GROUP)
                .build()
                .user_data(user_data(OP_RECV, index));
            slot.recv_armed = true;
            // SAFETY: the kernel writes only into the buffer ring, which outlives the ring.
            unsafe { self.push(&entry) }
        }

        fn run(&mut self) -> io::Result<()> {
            self.arm_accept()?;
            loop {
                // Everything queued since the last wait (sends, re-armed receives) goes in with
                // the wait itself: one io_uring_enter per batch.
                let wait = self
                    .timers
                    .peek()
                    .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()));
                let result = match wait {
                    Some(wait) => {
                        let ts = types::Timespec::from(wait.max(Duration::from_micros(100)));
                        let args = types::SubmitArgs::new().timespec(&ts);
                        self.ring.submitter().submit_with_args(1, &args)
                    }
                    None => self.ring.submit_and_wait(1),
                };
                match result {
                    Ok(_) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(62 /* ETIME */ | 4 /* EINTR */ | 16 /* EBUSY */)) => {}
                    Err(e) => return Err(e),
                }
                self.completions.clear();
                self.completions.extend(
                    self.ring
                        .completion()
                        .map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())),
                );
                let now = Instant::now();
                for i in 0..self.completions.len() {
                    let Some(&(data, result, flags)) = self.completions.get(i) else {
                        break;
                    };
                    let index = (data & 0xffff_ffff) as u32;
                    match data >> 56 {
                        OP_ACCEPT => self.on_accept(result, flags)?,
                        OP_RECV => self.on_recv(now, index, result, flags)?,
                        OP_SEND => self.on_send(now, index, result)?,
                        _ => {}
                    }
                }
                self.fire_timers(now);
                let dirty = std::mem::take(&mut self.dirty);
                for &index in &dirty {
                    self.flush(now, index)?;
                }
                self.dirty = dirty;
                self.dirty.clear();
            }
        }

        fn mark(&mut self, index: u32) {
            if let Some(Some(slot)) = self.slots.get_mut(index as usize) {
                if !slot.dirty {
                    slot.dirty = true;
                    self.dirty.push(index);
                }
            }
        }

        fn on_accept(&mut self, result: i32, flags: u32) -> io::Result<()> {
            if !cqueue::more(flags) {
                self.arm_accept()?;
            }
            if result < 0 {
                eprintln!("uring_echo: accept failed: {}", io::Error::from_raw_os_error(-result));
                return Ok(());
            }
            // SAFETY: the kernel just created this descriptor for us; nothing else owns it.
            let tcp = unsafe { TcpStream::from_raw_fd(result) };
            if self.live >= MAX_CONNECTIONS {
                return Ok(()); // dropped: closed
            }
            let _ = tcp.set_nodelay(true);
            let slot = Slot {
                tcp: Some(tcp),
                conn: Connection::server(Arc::clone(&self.config), Instant::now()),
                out: Outgoing::default(),
                sending: Outgoing::default(),
                iov: Vec::new(),
                iov_at: 0,
                send_inflight: false,
                recv_armed: false,
                eof: false,
                linger_until: None,
                armed: None,
                dirty: false,
            };
            let index = match self.free.pop() {
                Some(index) => {
                    if let Some(place) = self.slots.get_mut(index as usize) {
                        *place = Some(slot);
                    }
                    index
                }
                None => {
                    self.slots.push(Some(slot));
                    (self.slots.len() - 1) as u32
                }
            };
            self.live += 1;
            self.arm_recv(index)?;
            // Registers the handshake deadline.
            self.mark(index);
            Ok(())
        }

        fn on_recv(&mut self, now: Instant, index: u32, result: i32, flags: u32) -> io::Result<()> {
            let more = cqueue::more(flags);
            if result > 0 {
                if let Some(bid) = cqueue::buffer_select(flags) {
                    if let Some(Some(slot)) = self.slots.get_mut(index as usize) {
                        // Bytes after our end of stream are only drained.
                        if slot.tcp.is_some() && slot.linger_until.is_none() {
                            slot.conn.handle_data(now, self.bufs.bytes(bid, result as usize));
                        }
                    }
                    self.bufs.give_back(bid);
                }
            }
            let Some(Some(slot)) = self.slots.get_mut(index as usize) else {
                return Ok(());
            };
            if !more {
                slot.recv_armed = false;
            }
            if slot.tcp.is_none() {
                self.reap(index);
                return Ok(());
            }
            if result == 0 || (result < 0 && result != -ENOBUFS) {
                // End of stream, or the transport failed.
                if !slot.eof {
                    slot.eof = true;
                    slot.conn.handle_eof(now);
                }
                if slot.linger_until.is_some() {
                    self.close(index)?;
                    return Ok(());
                }
            } else if !more {
                // Out of buffers for a moment, or the kernel ended the multishot: re-arm.
                self.arm_recv(index)?;
            }
            self.mark(index);
            Ok(())
        }

        fn on_send(&mut self, now: Instant, index: u32, result: i32) -> io::Result<()> {
            let Some(Some(slot)) = self.slots.get_mut(index as usize) else {
                return Ok(());
            };
            slot.send_inflight = false;
            if slot.tcp.is_none() {
                self.reap(index);
                return Ok(());
            }
            // A write that took nothing (or failed) will not do better if repeated.
            if result <= 0 {
                if !slot.eof {
                    slot.eof = true;
                    slot.conn.handle_eof(now);
                }
                return self.close(index);
            }
            let mut written = result as usize;
            while written > 0 {
                let Some(first) = slot.iov.get_mut(slot.iov_at) else {
                    break;
                };
                if written >= first.len {
                    written -= first.len;
                    slot.iov_at += 1;
                } else {
                    first.base = first.base.wrapping_add(written);
                    first.len -= written;
                    written = 0;
                }
            }
            if slot.iov_at < slot.iov.len() {
                slot.conn.handle_write_progress(now);
                return self.send(index);
            }
            slot.sending.clear();
            slot.iov.clear();
            slot.iov_at = 0;
            self.mark(index);
            Ok(())
        }

        /// Sends what is left of `sending`.
        fn send(&mut self, index: u32) -> io::Result<()> {
            let Some(Some(slot)) = self.slots.get_mut(index as usize) else {
                return Ok(());
            };
            let Some(tcp) = &slot.tcp else { return Ok(()) };
            let rest = slot.iov.get(slot.iov_at..).unwrap_or(&[]);
            let count = rest.len().min(IOV_MAX) as u32;
            let entry = opcode::Writev::new(types::Fd(tcp.as_raw_fd()), rest.as_ptr().cast(), count)
                .build()
                .user_data(user_data(OP_SEND, index));
            slot.send_inflight = true;
            // SAFETY: `iov` and the bytes it points at (`sending`) are neither touched nor freed
            // while the send is in flight (the
            // slot is reaped only once `send_inflight` is false).
            unsafe { self.push(&entry) }
        }

        /// Timers due: the core's, and the linger deadline of closing connections.
        fn fire_timers(&mut self, now: Instant) {
            while let Some(&Reverse((at, index))) = self.timers.peek() {
                if at > now {
                    break;
                }
                self.timers.pop();
                if let Some(Some(slot)) = self.slots.get_mut(index as usize) {
                    if slot.armed == Some(at) {
                        slot.armed = None;
                        slot.conn.handle_timeout(now);
                        self.mark(index);
                    }
                }
            }
            // Stale entries (deadlines that moved) are dropped when they get too many.
            if self.timers.len() > 4 * self.live + 1024 {
                let slots = &self.slots;
                self.timers.retain(|Reverse((at, index))| {
                    matches!(slots.get(*index as usize), Some(Some(slot)) if slot.armed == Some(*at))
                });
            }
        }

        /// After input: answer the core's events, queue its output, close when it says so.
        fn flush(&mut self, now: Instant, index: u32) -> io::Result<()> {
            let Some(Some(slot)) = self.slots.get_mut(index as usize) else {
                return Ok(());
            };
            slot.dirty = false;
            if slot.tcp.is_none() {
                return Ok(());
            }
            while let Some(event) = slot.conn.poll_event() {
                match event {
                    Event::Request(_) => {
                        if let Err(e) = slot.conn.accept(now, Accept::new()) {
                            eprintln!("uring_echo: accept refused: {e}");
                        }
                    }
                    // Sending fails only once a close has been sent; the echo is then dropped.
                    Event::Message(message) => {
                        let _ = slot.conn.send(message);
                    }
                    _ => {}
                }
            }
            while let Some(transmit) = slot.conn.poll_transmit() {
                slot.out.push(&transmit);
            }
            if slot.out.len > MAX_UNSENT {
                eprintln!("uring_echo: peer reads too slowly, dropped");
                return self.close(index);
            }
            if !slot.send_inflight && !slot.out.is_empty() {
                std::mem::swap(&mut slot.out, &mut slot.sending);
                slot.sending.iovecs(&mut slot.iov);
                slot.iov_at = 0;
                self.send(index)?;
            }
            let Some(Some(slot)) = self.slots.get_mut(index as usize) else {
                return Ok(());
            };
            let flushed = !slot.send_inflight && slot.out.is_empty();
            if slot.conn.close_expected() && flushed {
                if slot.eof || slot.linger_until.is_some() {
                    return self.close(index);
                }
                // Our end of stream, then wait (bounded) for the peer's, so that our last frame
                // is not destroyed by a reset caused by unread input.
                if let Some(tcp) = &slot.tcp {
                    let _ = tcp.shutdown(Shutdown::Write);
                }
                slot.linger_until = Some(now + LINGER);
            }
            let deadline = match (slot.conn.poll_timeout(), slot.linger_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if deadline != slot.armed {
                slot.armed = deadline;
                if let Some(at) = deadline {
                    self.timers.push(Reverse((at, index)));
                }
            }
            if slot.linger_until.is_some_and(|until| until <= now) {
                return self.close(index);
            }
            Ok(())
        }

        /// Closes the socket; the slot is freed once its operations have completed.
        fn close(&mut self, index: u32) -> io::Result<()> {
            let Some(Some(slot)) = self.slots.get_mut(index as usize) else {
                return Ok(());
            };
            if slot.tcp.take().is_none() {
                return Ok(());
            }
            slot.armed = None;
            self.live -= 1;
            if slot.recv_armed {
                let entry = opcode::AsyncCancel::new(user_data(OP_RECV, index))
                    .build()
                    .user_data(user_data(OP_CANCEL, index));
                // SAFETY: the entry points at nothing of ours.
                unsafe { self.push(&entry) }?;
            }
            self.reap(index);
            Ok(())
        }

        /// Frees a closed slot with no operation in flight.
        fn reap(&mut self, index: u32) {
            if let Some(place) = self.slots.get_mut(index as usize) {
                if place
                    .as_ref()
                    .is_some_and(|s| s.tcp.is_none() && !s.recv_armed && !s.send_inflight)
                {
                    *place = None;
                    self.free.push(index);
                }
            }
        }
    }
}
