#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ecrlink::fuzzing::config_text(data));
