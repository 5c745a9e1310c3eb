//! Replays the checked-in fuzz corpora (fuzz/corpus/TARGET/*) through the fuzz bodies, plus a
//! deterministic batch of pseudo-random inputs per target, so stable-Rust CI exercises every
//! fuzz target's invariants. Long campaigns run with `scripts/fuzz.sh`.

use std::path::Path;

use wsengine::fuzz;

type Body = fn(&[u8]);

const TARGETS: &[(&str, Body)] = &[
    ("frame_header", fuzz::frame_header),
    ("utf8_chunks", fuzz::utf8_chunks),
    ("server_handshake", fuzz::server_handshake),
    ("client_handshake", fuzz::client_handshake),
    ("server_connection", fuzz::server_connection),
    ("client_connection", fuzz::client_connection),
    ("inflate", fuzz::inflate),
    ("operations", fuzz::operations),
];

#[test]
fn corpora_replay_without_failures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for (target, body) in TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            body(&data);
            count += 1;
        }
        assert!(count > 0, "empty corpus for {target}");
        replayed += count;
    }
    eprintln!("replayed {replayed} corpus inputs");
}

#[test]
fn random_inputs_hold_the_invariants() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (_, body) in TARGETS {
        for round in 0..300 {
            let len = (next() % 400) as usize;
            // Bias towards bytes that matter to the protocol now and then.
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if round % 3 == 0 {
                        [0x81, 0x88, 0x89, 0xC1, 0x00, 0x7E, 0xFF][(r % 7) as usize]
                    } else {
                        r as u8
                    }
                })
                .collect();
            body(&data);
        }
    }
}
