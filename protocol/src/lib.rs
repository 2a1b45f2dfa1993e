//! Sans-IO pieces of the Kafka wire protocol that Floe needs around the `kafka-protocol`
//! crate's message codecs: length-prefixed framing, request headers, response encoding and
//! the record-batch (magic 2) view used on the produce path.
//!
//! Architecture invariant: this crate does no I/O and knows nothing about storage or the
//! broker; it turns bytes into typed values and back, and reports malformed input as errors.

pub mod compression;
pub mod control;
pub mod frame;
// Bodies of the fuzz targets and the mutation engine shared by the stable bounded runs and
// the cargo-fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzz;
pub mod record_batch;
pub mod record_filter;
pub mod request;
pub mod response;
// Record batches for tests and benches; not used by the broker.
#[doc(hidden)]
pub mod test_kit;
// `bytes::BufMut` is an unsafe trait to implement; the rope's implementation only delegates
// to `BytesMut` (see the SAFETY notes there).
#[allow(unsafe_code)]
pub mod rope;

pub use kafka_protocol;
