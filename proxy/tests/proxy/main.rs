//! The proxy end to end: our own echo backends on loopback, clients through the proxy.
#![allow(clippy::result_large_err)] // accept_with callbacks return the engine's Reject

mod balancing;
mod health;
mod limits;
mod relay;
mod support;
mod tls;
