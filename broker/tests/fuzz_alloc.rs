//! Request decoding fuzzed with an allocation bound: every mutated frame of every served
//! (API, version) is parsed and decoded under the counting global allocator, and no single
//! allocation may exceed its limit. This is what keeps the vendored `kafka-protocol`'s
//! preallocation caps (vendor/README.md) in place: without them a frame announcing 2^31
//! array elements makes the decoder ask for gigabytes.
//!
//! A dedicated test binary, because the global allocator is process-wide.

#[path = "../../protocol/tests/support/counting_alloc.rs"]
mod counting_alloc;

use floe_broker::fuzz::{mutate_request, request_corpus, request_decode};
use floe_protocol::fuzz::{cases, run};

#[test]
fn request_decode_allocates_boundedly() {
    run(
        "request_decode",
        cases(100_000),
        &request_corpus(uuid::Uuid::from_u128(1)),
        mutate_request,
        counting_alloc::bounded("request_decode", request_decode),
    );
}
