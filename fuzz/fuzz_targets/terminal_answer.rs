#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ecrlink::fuzzing::terminal_answer(data));
