#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsengine_hub::pusher::fuzz::http_api(data));
