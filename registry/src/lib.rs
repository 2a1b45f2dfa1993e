//! Floe's built-in schema registry, compatible with Confluent Schema Registry's REST API
//! and its `_schemas` topic format.
//!
//! - [`schema`]: the three schema types behind one [`schema::Parsed`]: [`avro`],
//!   [`protobuf`], [`json_schema`], each parsing, canonicalizing and checking
//!   compatibility.
//! - [`compat`]: compatibility levels and modes.
//! - [`records`]: the `_schemas` records; [`state`]: what they add up to.
//! - [`registry`]: the operations, with writes made durable through a [`registry::SchemaLog`]
//!   (the broker's `_schemas` topic) before they are applied.
//! - [`rest`]: the REST API; [`error`]: its errors with Confluent's codes.
//! - [`wire`]: Confluent's wire format (magic byte, schema id, Protobuf message indexes).
//! - [`validation`]: broker-side checks that records name a schema of their subject.

pub mod avro;
pub mod compat;
pub mod error;
pub mod json_schema;
pub mod protobuf;
pub mod records;
pub mod registry;
pub mod rest;
pub mod schema;
pub mod state;
pub mod validation;
pub mod wire;

pub use registry::{Registry, SchemaLog, Settings};
