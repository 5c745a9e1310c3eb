//! permessage-deflate (RFC 7692): negotiation, and per-message compression with bounded
//! inflation.
//!
//! Enable it with [`Config::deflate`](crate::Config::deflate). A server then accepts the first
//! acceptable `permessage-deflate` offer of each request; a client offers it and checks the
//! server's answer. Messages at least [`DeflateConfig::threshold`] bytes long are compressed;
//! control frames never are. Inflation is checked against `max_message_size` while it runs, so
//! a few kilobytes that would inflate to gigabytes close the connection with 1009 after at most
//! `max_message_size` bytes of output.
//!
//! # Memory
//!
//! Compressor and decompressor are allocated when first needed. With no context takeover in a
//! direction (the default both ways) its state is released after every message, so an idle
//! connection holds no compression memory at all; with context takeover the state (window plus
//! hash tables, about `2^(window_bits+2) + 2^(mem_level+9)` bytes for the compressor) lives as
//! long as the connection, as the RFC requires.

mod codec;
mod negotiate;

pub(crate) use codec::{Compressor, Decompressor, InflateError};
pub(crate) use negotiate::{accept_offers, check_response, offer};

/// What this endpoint offers (client) or accepts (server).
///
/// Parameter names follow RFC 7692: `server_*` apply to what the server sends, `client_*` to
/// what the client sends, whichever side this config is on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Server→client messages compressed without context takeover (§7.1.1.1). A server always
    /// agrees to it when asked; with this set it imposes it, and a client with this set asks
    /// for it. Default true: the server's compressor is released after every message.
    pub server_no_context_takeover: bool,
    /// Client→server messages compressed without context takeover (§7.1.1.2). A server with
    /// this set imposes it (its decompressor is then released after every message); a client
    /// with this set offers it. Default true.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server compresses with, 9 to 15 (§7.1.2.1). A server
    /// answers with the smaller of this and the client's request; a client below 15 requests
    /// it. zlib cannot compress with an 8-bit window, so offers that demand 8 are declined.
    /// Default 15.
    pub server_max_window_bits: u8,
    /// The largest window the client compresses with, 9 to 15 (§7.1.2.2). A server below 15
    /// asks clients that support the parameter for it; a client below 15 offers it. 8 is not
    /// offered or asked for: zlib-based peers cannot compress with a 256-byte window. Default 15.
    pub client_max_window_bits: u8,
    /// Client: include `client_max_window_bits` in the offer (value-less at 15) so a server may
    /// restrict our window. Some gateways reject offers carrying it; turn it off for them.
    /// Default true.
    pub offer_client_max_window_bits: bool,
    /// zlib compression level, 0 (store) to 9 (best). Default 6.
    pub level: u8,
    /// zlib memory level, 1 to 9: the size of the compressor's hash tables. Default 8.
    pub mem_level: u8,
    /// Messages shorter than this are sent uncompressed. Default 32 bytes.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            offer_client_max_window_bits: true,
            level: 6,
            mem_level: 8,
            threshold: 32,
        }
    }
}

impl DeflateConfig {
    /// Keep compression context across messages both ways: better ratios for streams of similar
    /// messages, at the cost of compressor and decompressor state held for the connection's life.
    pub fn with_context_takeover(mut self) -> Self {
        self.server_no_context_takeover = false;
        self.client_no_context_takeover = false;
        self
    }

    /// The config with every value clamped to its valid range.
    pub(crate) fn sanitized(&self) -> Self {
        Self {
            server_max_window_bits: self.server_max_window_bits.clamp(9, 15),
            client_max_window_bits: self.client_max_window_bits.clamp(9, 15),
            level: self.level.min(9),
            mem_level: self.mem_level.clamp(1, 9),
            ..self.clone()
        }
    }
}

/// The parameters a handshake agreed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's compression window, in bits.
    pub server_max_window_bits: u8,
    /// The client's compression window, in bits.
    pub client_max_window_bits: u8,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value that states these parameters.
    pub fn to_header_value(&self) -> String {
        self.header_value(false)
    }

    /// The header value; `server_bits_always` states `server_max_window_bits` even at 15, as a
    /// server must when the offer named it (§7.1.2.1).
    pub(crate) fn header_value(&self, server_bits_always: bool) -> String {
        let mut value = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 || server_bits_always {
            value.push_str(&format!("; server_max_window_bits={}", self.server_max_window_bits));
        }
        if self.client_max_window_bits < 15 {
            value.push_str(&format!("; client_max_window_bits={}", self.client_max_window_bits));
        }
        value
    }
}
