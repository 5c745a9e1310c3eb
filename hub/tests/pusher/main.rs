//! Pusher Channels protocol 7 over the hub, over real sockets on tokio: exact frames with a raw
//! WebSocket client, the HTTP API's statuses, and stock pusher-js, laravel-echo and the `pusher`
//! server SDK from npm (interop/pusher; installed with `npm ci` when missing, never skipped).
#![allow(unreachable_pub)] // test modules share items with `pub`

mod api;
mod interop;
mod mixed;
mod reload;
mod robust;
mod support;
mod wire;
