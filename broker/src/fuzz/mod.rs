//! Fuzzing support for the broker: the bodies of the `request_decode` and
//! `group_sequence` targets, the request corpus built from the handler table, and a broker
//! over a temporary directory to dispatch fuzzed requests to. The bounded stable runs are
//! this module's tests; the cargo-fuzz targets in `fuzz/` call the same bodies. See
//! `docs/fuzzing.md`; the mutation engine is `floe_protocol::fuzz`.
//!
//! Public for the fuzz crate only; not an API.

pub(crate) mod group;
mod requests;

pub use group::{group_corpus, group_sequence};
pub use requests::{
    Dispatched, FuzzBroker, GROUP, TOPIC, encode_request, mutate_request, request_corpus,
    request_decode,
};

#[cfg(test)]
mod tests;
