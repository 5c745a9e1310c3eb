//! The smol driver of [wsengine](https://docs.rs/wsengine).
//!
//! This crate is a placeholder until its own issue lands: the driver loop will follow the
//! run-loop contract documented on [`wsengine::Connection`].
#![deny(missing_docs)]

pub use wsengine;
