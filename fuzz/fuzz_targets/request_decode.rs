//! A request frame (without its length prefix): header parsing and, for every (API,
//! version) the broker serves, body decoding. Must not panic or allocate by a wire length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    floe_broker::fuzz::request_decode(data);
});
