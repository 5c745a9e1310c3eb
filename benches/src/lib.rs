//! Benchmarks of wsengine next to other WebSocket libraries (grows with its own issue).
#![deny(missing_docs)]
