//! # wsengine: a sans-IO WebSocket engine
//!
//! The whole of RFC 6455 (handshakes, frames, masking, UTF-8, fragmentation, ping/pong, close,
//! timers) for both roles, as a state machine that never touches a socket or a clock. Bytes go
//! in with [`Connection::handle_data`], bytes to send come out of
//! [`Connection::poll_transmit`], and what happened comes out of [`Connection::poll_event`].
//! Time is an argument, so every deadline is testable and every embedding (tokio, smol, a
//! blocking thread, an io_uring loop, a game loop) drives the same code.
//!
//! ## The run-loop contract
//!
//! After any input, drain every output before waiting again:
//!
//! 1. bytes arrived → [`handle_data(now, &bytes)`](Connection::handle_data); end of stream →
//!    [`handle_eof(now)`](Connection::handle_eof);
//! 2. drain [`poll_transmit()`](Connection::poll_transmit) into the transport (header and payload
//!    of each [`Transmit`] may go in one vectored write);
//! 3. if `now >= poll_timeout()` → [`handle_timeout(now)`](Connection::handle_timeout)
//!    (heartbeat pings, pong deadline, close handshake timeout, idle timeout);
//! 4. drain [`poll_event()`](Connection::poll_event): the handshake request to accept or reject,
//!    messages, pings, pongs, and finally [`Event::Closed`] (or [`Event::HandshakeFailed`]);
//! 5. when [`close_expected()`](Connection::close_expected) is true, close the transport.
//!
//! Commands ([`send`](Connection::send), [`ping`](Connection::ping),
//! [`close`](Connection::close), [`send_fragment`](Connection::send_fragment)) return
//! `Result<_, ApiMisuse>` for caller mistakes. Peer violations are never an `Err`: they close the
//! connection with the right code (1002, 1007, 1009) and an event.
//!
//! ## A complete loop over `std::net`
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::time::Instant;
//! use wsengine::{Accept, Config, Connection, Event};
//!
//! fn serve(mut tcp: std::net::TcpStream) -> std::io::Result<()> {
//!     let mut conn = Connection::server(Config::default(), Instant::now());
//!     let mut buf = vec![0; 16 * 1024];
//!     loop {
//!         // Sleep no longer than the core's next deadline.
//!         let wait = conn.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
//!         tcp.set_read_timeout(wait.map(|w| w.max(std::time::Duration::from_millis(1))))?;
//!         match tcp.read(&mut buf) {
//!             Ok(0) => conn.handle_eof(Instant::now()),
//!             Ok(n) => conn.handle_data(Instant::now(), &buf[..n]),
//!             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
//!                 || e.kind() == std::io::ErrorKind::TimedOut => {}
//!             Err(e) => return Err(e),
//!         }
//!         conn.handle_timeout(Instant::now());
//!         while let Some(event) = conn.poll_event() {
//!             match event {
//!                 Event::Request(_) => conn.accept(Instant::now(), Accept::new()).unwrap(),
//!                 Event::Message(message) => conn.send(message).unwrap(), // echo
//!                 _ => {}
//!             }
//!         }
//!         let mut out = Vec::new();
//!         while let Some(transmit) = conn.poll_transmit() {
//!             transmit.write_to(&mut out);
//!         }
//!         tcp.write_all(&out)?;
//!         if conn.close_expected() {
//!             return tcp.shutdown(std::net::Shutdown::Both);
//!         }
//!     }
//! }
//! ```
//!
//! `examples/blocking_echo.rs` is the full version of this loop (lingering close, one thread per
//! connection) and is the crate's Autobahn testee.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod error;
pub mod frame;
#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod fuzz;
pub mod handshake;
pub mod message;
mod rng;
pub mod utf8;

pub use bytes::Bytes;
pub use config::Config;
pub use connection::{
    CloseCause, CloseInfo, Connection, Event, Fragment, Initiator, PreparedMessage, Role, Transmit,
    release_thread_spares,
};
#[cfg(feature = "deflate")]
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{ApiMisuse, ProtocolError};
pub use frame::CloseCode;
pub use handshake::{Accept, ClientRequest, HandshakeError, Negotiated, OriginPolicy, Reject, Request, Response};
pub use message::{Message, MessageKind, Utf8Bytes};
