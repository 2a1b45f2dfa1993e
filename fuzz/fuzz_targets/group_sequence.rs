//! The classic group state machine driven by a program of JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and OffsetCommit steps, timers and group-record writes, with its invariants
//! checked after every step.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    floe_broker::fuzz::group_sequence(data);
});
