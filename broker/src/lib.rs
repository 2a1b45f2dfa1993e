//! The Floe broker: a Kafka-compatible server over Floe's storage.
//!
//! Entry point: [`server::run`]. A connection task per client ([`connection`]) parses frames
//! and routes each request through the handler table in [`handlers`], one module per Kafka
//! API. Topics and their partition logs live in [`topics`], persisted through
//! [`metadata_store`]. Internal errors become Kafka error codes only in [`errors`].

pub mod broker_configs;
pub mod config;
pub mod connection;
pub mod connection_limits;
pub mod errors;
pub mod fetch_session;
// Bodies of the fuzz targets (`fuzz/`) and their bounded stable runs; not an API.
#[doc(hidden)]
pub mod fuzz;
pub mod group;
pub mod handlers;
pub mod http;
pub mod internal_topic;
pub mod log_limit;
pub mod metadata_store;
pub mod request_budget;
pub mod schema_registry;
pub mod security;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod topic_config;
pub mod topics;
pub mod txn;
