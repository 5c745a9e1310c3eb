#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsengine::fuzz::client_connection(data));
