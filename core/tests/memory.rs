//! Memory a connection holds, measured by counting every allocation of this test binary:
//! idle connections hold no large buffers, compression state is released when the agreed
//! parameters allow, and an inflate bomb is stopped with bounded memory.
//!
//! Only allocations made by the measuring thread inside [`counted`] are counted: libtest's own
//! threads (its output capture, the timeout monitor) allocate whenever they like, and once made
//! "dropping the pair frees everything" fail now and then.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use wsengine::{Accept, ClientRequest, Config, Connection, Event};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates, so the allocator
    // may consult it.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting_here() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards to the system allocator, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting_here() {
            let live = LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting_here() {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with this thread's allocations counted. Nothing in `f` may print: libtest's output
/// capture would grow its buffer on this thread.
fn counted<R>(f: impl FnOnce() -> R) -> R {
    COUNTING.with(|c| c.set(true));
    let result = f();
    COUNTING.with(|c| c.set(false));
    result
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
    let mut wire = Vec::new();
    while let Some(t) = from.poll_transmit() {
        t.write_to(&mut wire);
    }
    // Deliver in 16 KiB reads, like a driver with a shared read buffer.
    for piece in wire.chunks(16 * 1024) {
        to.handle_data(now, piece);
    }
}

/// Drains events, returning the total size of the messages received.
fn drain_messages(conn: &mut Connection) -> usize {
    let mut received = 0;
    while let Some(event) = conn.poll_event() {
        if let Event::Message(m) = event {
            received += m.len();
        }
    }
    received
}

fn open_pair(config: Config, now: Instant) -> (Connection, Connection) {
    let config = std::sync::Arc::new(config);
    let request = ClientRequest::new("ws://localhost/").unwrap();
    let mut client = Connection::client(config.clone(), &request, now);
    let mut server = Connection::server(config, now);
    pump(&mut client, &mut server, now);
    while let Some(event) = server.poll_event() {
        if let Event::Request(_) = event {
            server.accept(now, Accept::new()).unwrap();
        }
    }
    pump(&mut server, &mut client, now);
    while client.poll_event().is_some() {}
    assert!(client.is_open() && server.is_open());
    (client, server)
}

/// Heap held by an open pair after exchanging `size`-byte messages, and before.
fn held_after_traffic(config: Config, size: usize) -> (isize, isize) {
    counted(|| measure_traffic(config, size))
}

fn measure_traffic(config: Config, size: usize) -> (isize, isize) {
    let now = Instant::now();
    let before = live();
    let (mut client, mut server) = open_pair(config, now);
    let open = live() - before;
    let message: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    for _ in 0..3 {
        client.send(message.clone()).unwrap();
        server.send(message.clone()).unwrap();
        pump(&mut client, &mut server, now);
        pump(&mut server, &mut client, now);
        assert_eq!(drain_messages(&mut client) + drain_messages(&mut server), 2 * size);
    }
    drop(message);
    // The queue buffers the thread keeps for its next burst are no connection's.
    wsengine::release_thread_spares();
    let idle = live() - before;
    drop((client, server));
    wsengine::release_thread_spares();
    assert_eq!(live() - before, 0, "dropping the pair frees everything it allocated");
    (open, idle)
}

#[test]
fn memory_held_by_connections() {
    idle_connections_hold_no_large_buffers();
    #[cfg(feature = "deflate")]
    compression_state_is_released_without_context_takeover();
    #[cfg(feature = "deflate")]
    inflate_bomb_closes_with_1009_and_bounded_memory();
}

fn idle_connections_hold_no_large_buffers() {
    let (open, idle) = held_after_traffic(Config::default(), 1 << 20);
    eprintln!(
        "plain: heap held by a client+server pair: {open} B after the handshake, {idle} B idle after 1 MiB \
         messages each way; size_of::<Connection>() = {} B",
        std::mem::size_of::<Connection>()
    );
    assert!(
        idle <= open,
        "idle pair holds {idle} B, more than the {open} B it held when opened"
    );
    assert!(idle < 1024, "idle pair holds {idle} B of heap");
}

#[cfg(feature = "deflate")]
fn compression_state_is_released_without_context_takeover() {
    let mut config = Config::default();
    config.deflate = Some(wsengine::DeflateConfig::default());
    let (open, idle) = held_after_traffic(config.clone(), 64 << 10);
    eprintln!("deflate (defaults: no context takeover): {open} B opened, {idle} B idle after 64 KiB messages");
    assert!(idle < 2048, "idle compressed pair holds {idle} B");

    let mut takeover = config;
    takeover.deflate = Some(wsengine::DeflateConfig::default().with_context_takeover());
    let (_, held) = held_after_traffic(takeover, 64 << 10);
    eprintln!(
        "deflate with context takeover: {held} B held by an idle pair ({} B per connection)",
        held / 2
    );
    assert!(
        held > 100_000,
        "context takeover must keep the compression state ({held} B)"
    );
}

#[cfg(feature = "deflate")]
/// Compressed bytes that inflate to `gib` GiB of zeros: one block that establishes a window of
/// zeros, then the same block of back-references repeated.
fn inflate_bomb(gib: usize) -> Vec<u8> {
    let mut deflate = zlib_rs::Deflate::new(9, false, 15);
    let zeros = vec![0u8; 1 << 20];
    let segment = |deflate: &mut zlib_rs::Deflate| {
        let mut out = vec![0u8; 64 << 10];
        let before = deflate.total_out();
        deflate
            .compress(&zeros, &mut out, zlib_rs::DeflateFlush::SyncFlush)
            .unwrap();
        out.truncate((deflate.total_out() - before) as usize);
        out
    };
    let first = segment(&mut deflate);
    let repeat = segment(&mut deflate);
    let mut bomb = first;
    for _ in 1..(gib << 10) {
        bomb.extend_from_slice(&repeat);
    }
    bomb.truncate(bomb.len() - 4); // the stripped 00 00 ff ff tail (RFC 7692 §7.2.1)
    bomb
}

#[cfg(feature = "deflate")]
fn inflate_bomb_closes_with_1009_and_bounded_memory() {
    let bomb = inflate_bomb(1);
    let now = Instant::now();
    let mut config = Config::default();
    config.max_message_size = 8 << 20;
    config.deflate = Some(wsengine::DeflateConfig::default());
    let (_client, mut server) = open_pair(config, now);
    // One compressed binary frame (RSV1), masked with a zero key.
    let mut frame = vec![0xC2, 0xFF];
    frame.extend_from_slice(&(bomb.len() as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(&bomb);
    let baseline = live();
    PEAK.store(baseline, Ordering::Relaxed);
    counted(|| {
        for piece in frame.chunks(64 << 10) {
            server.handle_data(now, piece);
        }
    });
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    let Some(Event::Closed(info)) = events.last() else {
        panic!("{events:?}")
    };
    eprintln!(
        "inflate bomb: {} KiB compressed would inflate to 1 GiB; closed with {} after a peak of {} KiB",
        bomb.len() >> 10,
        info.code,
        peak >> 10
    );
    assert_eq!(info.code, wsengine::CloseCode::MESSAGE_TOO_BIG);
    // The output buffer grows geometrically (at most 1.5x the limit while the last growth
    // copies), plus the inflater's window and state.
    assert!(
        peak < (12 << 20) + (1 << 20),
        "peak {peak} B exceeds 1.5 x the 8 MiB limit plus state"
    );
}
