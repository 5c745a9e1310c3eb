//! An idle connection holds no large buffer: after a 1 MiB message each way has been received,
//! delivered and dropped, the heap a connection pair retains is back to a few hundred bytes.
//!
//! Its own test binary, because it counts every allocation of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use wsengine::{Accept, ClientRequest, Config, Connection, Event};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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

#[test]
fn idle_connections_hold_no_large_buffers() {
    let now = Instant::now();
    let config = std::sync::Arc::new(Config::default());
    let request = ClientRequest::new("ws://localhost/").unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    let mut client = Connection::client(config.clone(), &request, now);
    let mut server = Connection::server(config.clone(), now);
    pump(&mut client, &mut server, now);
    while let Some(event) = server.poll_event() {
        if let Event::Request(_) = event {
            server.accept(now, Accept::new()).unwrap();
        }
    }
    pump(&mut server, &mut client, now);
    while client.poll_event().is_some() {}
    assert!(client.is_open() && server.is_open());
    let open = LIVE.load(Ordering::Relaxed) - before;

    let big = vec![7u8; 1 << 20];
    client.send(big.clone()).unwrap();
    server.send(big).unwrap();
    pump(&mut client, &mut server, now);
    pump(&mut server, &mut client, now);
    let mut received = 0;
    for conn in [&mut client, &mut server] {
        while let Some(event) = conn.poll_event() {
            if let Event::Message(m) = event {
                received += m.len();
            }
        }
    }
    assert_eq!(received, 2 << 20);
    let idle = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "heap held by a client+server pair: {open} B after the handshake, {idle} B idle after 1 MiB each way; \
         size_of::<Connection>() = {} B",
        std::mem::size_of::<Connection>()
    );
    assert!(
        idle <= open,
        "idle pair holds {idle} B, more than the {open} B it held when opened"
    );
    assert!(idle < 1024, "idle pair holds {idle} B of heap");
}
