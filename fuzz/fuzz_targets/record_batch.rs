//! Record batches: validation, iteration, timestamp search and `RecordBatchDecoder`, plus
//! the property that a batch `validate_batch` accepts holds exactly `recordsCount` records.
//! The first input byte, when odd, recomputes the CRCs so that mutations get past them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    floe_protocol::fuzz::record_batch(data);
    floe_protocol::fuzz::record_batch_count(data);
});
