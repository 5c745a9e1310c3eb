//! The demo page: static HTML, CSS and JavaScript built into the binary. A chat with rooms
//! (presence channels), a presence list and "typing…" whispers over the native protocol.

/// `/`.
pub(crate) const INDEX_HTML: &str = include_str!("index.html");
/// `/demo.js`.
pub(crate) const DEMO_JS: &str = include_str!("demo.js");
/// `/demo.css`.
pub(crate) const DEMO_CSS: &str = include_str!("demo.css");
