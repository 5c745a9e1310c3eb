//! Integration tests of the core: two endpoints wired together with a virtual clock.

mod conversation;
#[cfg(feature = "deflate")]
mod deflate;
mod misuse;
mod pair;
mod properties;
mod timers;
mod violations;
