//! Without epoll there is no edge-triggered set: every socket keeps async-io's registration
//! (`TcpStream` falls back when [`Registration::register`] returns `None`).

use std::sync::Arc;
use std::task::{Context, Poll};

/// The direction of an operation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// Never made on this platform.
#[derive(Debug)]
pub(crate) enum Registration {}

impl Registration {
    /// There is no edge-triggered set here.
    pub(crate) fn register<S>(_source: &S) -> Option<Arc<Self>> {
        None
    }

    pub(crate) fn deregister<S>(&self, _source: &S) {
        match *self {}
    }

    pub(crate) fn poll_ready(&self, _direction: Direction, _cx: &mut Context<'_>) -> Poll<u32> {
        match *self {}
    }

    pub(crate) fn clear_ready(&self, _direction: Direction, _tick: u32) {
        match *self {}
    }
}
