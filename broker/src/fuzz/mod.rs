//! Fuzzing support for the broker: the body of the `request_decode` target, the request
//! corpus built from the handler table, and a broker over a temporary directory to dispatch
//! fuzzed requests to. The bounded stable runs are this module's tests; the cargo-fuzz targets in `fuzz/` call the same bodies. See
//! `docs/fuzzing.md`; the mutation engine is `floe_protocol::fuzz`.
//!
//! Public for the fuzz crate only; not an API.

mod requests;

pub use requests::{
    Dispatched, FuzzBroker, GROUP, TOPIC, encode_request, mutate_request, request_corpus,
    request_decode,
};

#[cfg(test)]
mod tests;
