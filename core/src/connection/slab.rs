//! A per-thread slab that small received payloads are carved from.
//!
//! A small message whose buffer came from the allocator costs a `malloc` when it arrives and a
//! `free` when the application drops it: on a 20-byte echo that was the largest single cost of
//! receiving. Payloads up to [`SMALL_PAYLOAD`] bytes are instead copied into one shared buffer
//! of [`SLAB_SIZE`] bytes per thread and split off it, so each costs a reference count. When the
//! slab is used up and every message carved from it is gone, the same buffer is reused in
//! place; when some are still held, a fresh slab is allocated and the old one is freed with
//! the last of them.
//!
//! The price: a small message kept by the application keeps its whole slab alive (at most
//! [`SLAB_SIZE`] bytes), as with any reader that splits messages off its read buffer.

use std::cell::RefCell;

use bytes::BytesMut;

/// The largest payload carved from the slab; larger ones get their own buffer.
pub(crate) const SMALL_PAYLOAD: usize = 256;

/// The slab's size: sixteen of the largest small payloads, hundreds of typical ones.
const SLAB_SIZE: usize = 4096;

thread_local! {
    static SLAB: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// A buffer holding `payload`, carved from this thread's slab when `payload` is small.
pub(crate) fn copy_small(payload: &[u8]) -> BytesMut {
    if payload.len() > SMALL_PAYLOAD {
        return BytesMut::from(payload);
    }
    // During thread teardown the slab is gone: allocate as usual.
    SLAB.try_with(|slab| {
        let mut slab = slab.borrow_mut();
        if slab.capacity() < payload.len() {
            // Reuses the buffer in place when nothing carved from it is left, else allocates.
            slab.reserve(SLAB_SIZE);
        }
        slab.extend_from_slice(payload);
        slab.split()
    })
    .unwrap_or_else(|_| BytesMut::from(payload))
}

/// Frees this thread's slab (see [`release_thread_spares`](super::release_thread_spares)).
pub(crate) fn release() {
    let _ = SLAB.try_with(|slab| slab.take());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_share_a_slab_that_is_reused_once_free() {
        release();
        let a = copy_small(b"first").freeze();
        let b = copy_small(b"second").freeze();
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        // Carved back to back from one buffer.
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
        let start = a.as_ptr();
        drop((a, b));
        // Use the slab up; with nothing else alive it starts over at the same place.
        let mut count = 0;
        loop {
            let piece = copy_small(&[7; SMALL_PAYLOAD]);
            count += 1;
            if piece.as_ptr() == start || count > 2 * SLAB_SIZE / SMALL_PAYLOAD {
                break;
            }
        }
        assert!(count <= SLAB_SIZE / SMALL_PAYLOAD + 1, "reused after {count}");
        release();
    }

    #[test]
    fn a_held_payload_keeps_its_bytes_while_the_slab_moves_on() {
        release();
        let held = copy_small(b"kept").freeze();
        for _ in 0..3 * SLAB_SIZE / SMALL_PAYLOAD {
            let piece = copy_small(&[1; SMALL_PAYLOAD]);
            assert_eq!(&piece[..], &[1; SMALL_PAYLOAD][..]);
        }
        assert_eq!(&held[..], b"kept");
        let large = copy_small(&[2; SMALL_PAYLOAD + 1]);
        assert_eq!(large.len(), SMALL_PAYLOAD + 1);
        release();
    }
}
