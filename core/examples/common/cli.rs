//! Command-line handling shared by the examples of every crate (each includes this file as a
//! module with `#[path]`): `--help` and `-h` print the usage line, and arguments an example
//! cannot use (an unknown flag, a surplus argument, an address that does not resolve, a URL
//! that is not `ws://` or `wss://`) end it at once with a clear message and exit status 2.
// Each example uses only some of these.
#![allow(dead_code)]

use std::fmt::Display;
use std::net::{SocketAddr, ToSocketAddrs};

use wsengine::ClientRequest;

/// An example's arguments: flags (`--name`) anywhere, positional arguments in order.
pub(crate) struct Args {
    name: &'static str,
    usage: &'static str,
    positional: Vec<String>,
    flags: Vec<String>,
}

impl Args {
    /// Reads the process arguments. `usage` is what follows the program name in the usage line;
    /// `about` is printed under it by `--help`. Flags not in `flags`, and more than
    /// `max_positional` other arguments, are errors.
    pub(crate) fn parse(
        name: &'static str,
        usage: &'static str,
        about: &str,
        flags: &[&str],
        max_positional: usize,
    ) -> Self {
        let mut args = Self {
            name,
            usage,
            positional: Vec::new(),
            flags: Vec::new(),
        };
        for arg in std::env::args().skip(1) {
            if arg == "--help" || arg == "-h" {
                println!("usage: {}\n{about}", format!("{name} {usage}").trim_end());
                std::process::exit(0);
            }
            if arg.starts_with("--") {
                if !flags.contains(&arg.as_str()) {
                    args.fail(format!("unknown option {arg}"));
                }
                args.flags.push(arg);
            } else {
                args.positional.push(arg);
            }
        }
        if args.positional.len() > max_positional {
            let extra = &args.positional[max_positional];
            args.fail(format!("unexpected argument {extra:?}"));
        }
        args
    }

    /// Whether `flag` was given.
    pub(crate) fn flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The positional argument at `index`, if given.
    pub(crate) fn positional(&self, index: usize) -> Option<&str> {
        self.positional.get(index).map(String::as_str)
    }

    /// The address to listen on: the positional argument at `index`, or `default`.
    pub(crate) fn listen_addr(&self, index: usize, default: &str) -> SocketAddr {
        let text = self.positional(index).unwrap_or(default);
        match text.to_socket_addrs().map(|mut addrs| addrs.next()) {
            Ok(Some(addr)) => addr,
            Ok(None) => self.fail(format!("address {text:?} resolves to nothing")),
            Err(e) => self.fail(format!(
                "cannot listen on {text:?}: {e} (expected HOST:PORT, e.g. {default})"
            )),
        }
    }

    /// The WebSocket URL at `index` (or `default`; without one the URL is required), checked
    /// the way a client will use it.
    pub(crate) fn url(&self, index: usize, default: Option<&str>) -> (String, ClientRequest) {
        let Some(text) = self.positional(index).or(default) else {
            self.fail("a URL is required");
        };
        match ClientRequest::new(text) {
            Ok(request) => (text.to_owned(), request),
            Err(e) => self.fail(format!(
                "unusable URL {text:?}: {e} (expected ws://HOST[:PORT][/PATH] or wss://...)"
            )),
        }
    }

    /// Ends the program: `message` and the usage line on stderr, exit status 2.
    pub(crate) fn fail(&self, message: impl Display) -> ! {
        eprintln!(
            "{}: {message}\nusage: {}",
            self.name,
            format!("{} {}", self.name, self.usage).trim_end()
        );
        std::process::exit(2)
    }

    /// The value, or the program ends with `{name}: {what}: {error}` and exit status 1 (a
    /// failure while running, not a usage error).
    pub(crate) fn or_exit<T, E: Display>(&self, what: &str, result: Result<T, E>) -> T {
        result.unwrap_or_else(|e| {
            eprintln!("{}: {what}: {e}", self.name);
            std::process::exit(1)
        })
    }
}
