#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let status = ecrlink::fuzzing::pos_request(data);
    assert!(!status.is_server_error(), "{status}");
});
