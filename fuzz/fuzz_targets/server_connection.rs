#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsengine::fuzz::server_connection(data));
