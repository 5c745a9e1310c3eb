//! Integration tests of the core: two endpoints wired together with a virtual clock.

mod conversation;
mod misuse;
mod pair;
mod properties;
mod timers;
mod violations;
