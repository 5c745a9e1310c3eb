//! The async driver loop of [wsengine](https://docs.rs/wsengine), written once for every runtime.
//!
//! This crate is the plumbing behind `wsengine-tokio` and `wsengine-smol`; use one of those. It
//! follows the run-loop contract of [`wsengine::Connection`] over any [`futures_io`] stream: after
//! every read it feeds the core, drains everything the core wants written into one vectored
//! write, runs the core's timers from [`Connection::poll_timeout`](wsengine::Connection::poll_timeout)
//! and hands events to the application. No protocol rule lives here.
//!
//! A runtime crate supplies two things: its streams as `futures_io::AsyncRead + AsyncWrite`, and a
//! [`Timer`]. Everything else — [`WebSocket`], its split halves, server acceptance and the client
//! handshake over a ready stream — is shared.
#![deny(missing_docs)]

use std::task::{Context, Poll};
use std::time::Instant;

mod client;
mod driver;
mod error;
mod handshake;
mod split;
mod websocket;
mod write;

#[cfg(feature = "__conformance")]
#[doc(hidden)]
pub mod conformance;

pub use client::ConnectOptions;
#[cfg(feature = "rustls")]
pub use client::tls;
pub use driver::Incoming;
pub use error::{Error, TrySendError};
pub use handshake::{PendingUpgrade, accept, accept_request, accept_with, client};
pub use split::{Reader, Writer};
pub use websocket::WebSocket;
pub use {futures_io, wsengine};

/// A runtime's clock and sleep, as the driver needs them.
///
/// The driver arms one timer per connection, only while the core has a deadline.
pub trait Timer: Unpin + Send + Sized + 'static {
    /// The current time on the runtime's clock (so a runtime with a test clock can pause it).
    fn now() -> Instant;
    /// A timer that fires at `deadline`.
    fn at(deadline: Instant) -> Self;
    /// Moves the timer to fire at `deadline`.
    fn reset(&mut self, deadline: Instant);
    /// Ready once the deadline has passed; registers `cx` to be woken then otherwise.
    ///
    /// The driver relies on what every runtime's timer does: it never fires before its
    /// deadline, and once polled it keeps the last waker until it fires. So it polls again only
    /// with a different waker or once the deadline has passed, not on every message.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Default cap on bytes queued for the transport before `send` waits and `try_send` refuses.
pub const DEFAULT_WRITE_BUFFER_LIMIT: usize = 1 << 20;
