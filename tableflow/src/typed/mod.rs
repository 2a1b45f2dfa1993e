//! Typed tables: registry schemas (Avro, Protobuf, JSON Schema) as Iceberg columns, and
//! record payloads decoded into Arrow arrays of those columns.
//!
//! Three steps, each usable alone:
//!
//! 1. [`value_fields`] maps a registered schema ([`Parsed`]) to the Iceberg columns of the
//!    record value, with field ids from a [`FieldIds`] so that a table keeps the ids of its
//!    existing fields when the schema evolves.
//! 2. [`decode_value`] (or a reusable [`Decoder`]) decodes one payload into a [`Value`], the
//!    common form of all three types: a [`Value::Struct`] of the top-level fields.
//! 3. [`check_fits`] says whether a decoded row fits a table's Arrow columns (else the record
//!    goes to the dead-letter table with the reason), and [`build_columns`] builds the Arrow
//!    arrays of many rows, column by column, with exactly the Arrow types
//!    `iceberg::arrow::schema_to_arrow_schema` gives the table schema.
//!
//! # Columns
//!
//! The top-level fields of the Avro record, the Protobuf message or the JSON Schema object
//! become the columns; a schema that is not a record/message/object (an Avro `"string"`, a
//! JSON Schema `{"type": "array", ...}`) becomes one column named `value`. Every column and
//! every nested field is optional, list elements and map values too; only map keys are
//! required (Iceberg requires it). Field ids follow [`FieldIds`]' paths: `ship.city`,
//! `tags.element`, `attrs.key`, `attrs.value`. A field whose type holds nothing to store (an
//! empty record or message, an array of them, a union of only `null`) has no column: Parquet
//! cannot store an empty struct.
//!
//! # Avro ([`avro`])
//!
//! | Avro | Iceberg |
//! |---|---|
//! | record | struct |
//! | enum | string (the symbol) |
//! | array | list |
//! | map | `map<string, T>` |
//! | fixed, bytes | binary (fixed is not mapped to `fixed(n)`, to keep one binary type) |
//! | string, int, long, float, double, boolean | the same |
//! | union of `null` and one type (in any position) | the optional type |
//! | union of several non-null types | struct of one optional field per branch, named by the branch's type (`int`, `string`, a named type's simple name; `timestamp_millis` and the like for logical types); only the written branch is set |
//! | decimal(p, s) on bytes or fixed | decimal(p, s), p ≤ 38 |
//! | date | date |
//! | time-millis, time-micros | time |
//! | timestamp-millis, -micros, -nanos | timestamptz (micros; nanos truncated) |
//! | local-timestamp-millis, -micros, -nanos | timestamp (micros) |
//! | uuid | string |
//! | duration, big-decimal | binary (the raw bytes) |
//!
//! Recursive record types cannot be tables. Payloads are decoded with the writer schema
//! (the schema of the record's id), by this module's own decoder: it builds [`Value`]s
//! directly, checks every length against the bytes left and caps the items of arrays and
//! maps by the payload size, and refuses trailing bytes.
//!
//! # Protobuf ([`protobuf`])
//!
//! | Protobuf | Iceberg |
//! |---|---|
//! | message | struct (fields in declaration order, named as in the `.proto`) |
//! | repeated T | `list<T>` |
//! | `map<K, V>` | `map<K, V>` (the key keeps its type) |
//! | enum | string (the value's name; an unknown number as its decimal text) |
//! | int32, sint32, sfixed32 | int |
//! | int64, sint64, sfixed64, uint32, fixed32 | long |
//! | uint64, fixed64 | decimal(20, 0) (every value fits, none turns negative) |
//! | float, double, bool, string | the same |
//! | bytes | binary |
//! | google.protobuf.Timestamp | timestamptz |
//! | google.protobuf.Duration | long (microseconds) |
//! | wrappers (Int32Value, StringValue, ...) | the optional primitive, mapped as above |
//! | google.protobuf.Struct, Value, ListValue, Any | string holding JSON (Any: `{"@type": url, ...fields}` when its type is in the schema's pool, else `{"@type": url, "value": base64}`) |
//!
//! A oneof's fields are ordinary optional fields. Recursive messages cannot be tables.
//! Decoding: a field with presence (message fields, proto2 `optional`, proto3 `optional`,
//! oneof members) that is unset is null; a proto3 field without presence that is unset has
//! its default value (0, "", false, the first enum value); an unset repeated field or map
//! is an empty list or map. Map entries are sorted by key.
//!
//! # JSON Schema ([`json`])
//!
//! | JSON Schema | Iceberg |
//! |---|---|
//! | `object` with `properties` | struct (properties sorted by name: the parsed document does not keep their order) |
//! | `object` with only an `additionalProperties` schema | `map<string, T>` |
//! | `array` with an `items` schema (or none) | `list<T>` |
//! | `string` | string |
//! | `string` with `format` `date-time` / `date` / `time` | timestamptz / date / time |
//! | `integer` | long |
//! | `number` | double |
//! | `integer` and `number` | double |
//! | `boolean` | boolean |
//! | `"type": [T, "null"]`, `oneOf`/`anyOf` of T and `{"type": "null"}` | optional T |
//! | no `type` but `properties` / `items` / string `enum` | as if the type were given |
//! | anything else (`true`, `{}`, unions of different types, tuples, `null`, ...) | string holding the JSON text of the value |
//!
//! Local `$ref`s (`#`, `#/definitions/..`, `#/$defs/..`, any JSON pointer, `$anchor`s) and
//! references to the schema's referenced schemas by name (or `$id`), with an optional
//! fragment, are followed; keywords next to a `$ref` are ignored. Recursive references
//! cannot be tables. Decoding parses the payload as JSON and converts it guided by the
//! schema: a value of the wrong JSON type is an error, `null` is accepted everywhere (every
//! column is optional), `date-time` strings are RFC 3339 (any offset, stored in UTC),
//! `time` keeps the wall-clock time as written (an offset is ignored), properties the schema
//! does not name are ignored.
//!
//! # Bounds
//!
//! Nothing here panics on malicious input: nesting is limited to [`MAX_DEPTH`] levels in
//! schemas and payloads, lengths are checked before anything is allocated.

pub mod arrow;
pub mod avro;
pub(crate) mod columns;
mod ids;
pub mod json;
pub mod protobuf;

use std::fmt::Write as _;

use floe_registry::schema::Parsed;
use iceberg::spec::NestedFieldRef;

pub use arrow::{build_columns, check_fits};
pub use ids::FieldIds;

/// Deepest nesting of types (in a schema) and values (in a payload) accepted.
pub const MAX_DEPTH: usize = 64;

/// Name of the one column of a schema that is not a record, message or object.
pub const VALUE_COLUMN: &str = "value";

/// A field name in a [`Value::Struct`]: shared, so a decoder hands out the names of a
/// schema's fields without allocating them for every record.
pub type FieldName = std::sync::Arc<str>;

/// A decoded value of any schema type, the common form the three decoders produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Null (absent, or an unset optional field).
    Null,
    /// A boolean.
    Bool(bool),
    /// A 32-bit integer.
    Int(i32),
    /// A 64-bit integer.
    Long(i64),
    /// A 32-bit float.
    Float(f32),
    /// A 64-bit float.
    Double(f64),
    /// A string.
    String(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A decimal: `unscaled * 10^-scale`.
    Decimal {
        /// The unscaled value.
        unscaled: i128,
        /// Digits after the decimal point.
        scale: u32,
    },
    /// A date: days since 1970-01-01.
    Date(i32),
    /// A time of day: microseconds since midnight.
    TimeMicros(i64),
    /// An instant: microseconds since 1970-01-01T00:00:00Z (or a local date-time, for
    /// columns without a time zone).
    TimestampMicros(i64),
    /// A list.
    List(Vec<Value>),
    /// A map: its entries in order.
    Map(Vec<(Value, Value)>),
    /// A struct: its fields by name, in order.
    Struct(Vec<(FieldName, Value)>),
}

/// The Iceberg columns of a record value written with `parsed`: the top-level fields of the
/// Avro record / Protobuf message (at `indexes`, `None` = the first message of the file) /
/// JSON Schema object become columns, every column optional. A schema that is not a
/// record/message/object (e.g. Avro `"string"`) becomes one column named `value`. Errors
/// say why a schema cannot be a table (e.g. recursion, unsupported construct). See the
/// [module docs](self) for the mappings.
pub fn value_fields(
    parsed: &Parsed,
    indexes: Option<&[i32]>,
    ids: &mut FieldIds,
) -> Result<Vec<NestedFieldRef>, String> {
    match parsed {
        Parsed::Avro(s) => avro::value_fields(s.schema(), ids),
        Parsed::Protobuf(s) => {
            let indexes = indexes.unwrap_or(&[0]);
            let message = s
                .message_by_indexes(indexes)
                .ok_or_else(|| format!("the schema has no message at indexes {indexes:?}"))?;
            protobuf::value_fields(&message, ids)
        }
        Parsed::Json(s) => json::value_fields(s, ids),
    }
}

/// Decodes one record payload written with `parsed`: the bytes after the 5-byte wire
/// header (for Protobuf the payload still starts with the message indexes; for JSON Schema
/// it is UTF-8 JSON). Returns the value as [`Value::Struct`] of the top-level fields (or a
/// one-field struct `value` for non-record schemas, matching [`value_fields`]). Never
/// panics; work is bounded on malicious input. Decoding many records with the same schema
/// is cheaper with one [`Decoder`].
pub fn decode_value(parsed: &Parsed, payload: &[u8]) -> Result<Value, String> {
    Decoder::new(parsed).decode(payload)
}

/// A decoder of payloads written with one schema, keeping what it works out about the
/// schema (Avro named types, JSON Schema references) from one payload to the next.
#[derive(Debug)]
pub struct Decoder<'a> {
    inner: Inner<'a>,
}

#[derive(Debug)]
enum Inner<'a> {
    Avro(avro::AvroDecoder<'a>),
    Protobuf(&'a floe_registry::protobuf::ProtobufSchema),
    Json(json::JsonDecoder<'a>),
}

impl<'a> Decoder<'a> {
    /// A decoder of payloads written with `parsed` (cheap: work is done on first use).
    pub fn new(parsed: &'a Parsed) -> Decoder<'a> {
        let inner = match parsed {
            Parsed::Avro(s) => Inner::Avro(avro::AvroDecoder::new(s.schema())),
            Parsed::Protobuf(s) => Inner::Protobuf(s),
            Parsed::Json(s) => Inner::Json(json::JsonDecoder::new(s)),
        };
        Decoder { inner }
    }

    /// The Avro decoder, for an Avro schema ([`avro::direct`] programs are built on it).
    pub(crate) fn avro(&self) -> Option<&avro::AvroDecoder<'a>> {
        match &self.inner {
            Inner::Avro(d) => Some(d),
            _ => None,
        }
    }

    /// Decodes one payload, as [`decode_value`].
    pub fn decode(&self, payload: &[u8]) -> Result<Value, String> {
        match &self.inner {
            Inner::Avro(d) => d.decode(payload),
            Inner::Protobuf(s) => protobuf::decode(s, payload),
            Inner::Json(d) => d.decode(payload),
        }
    }
}

/// The one-field struct of a value of a schema that is not a record, message or object.
pub(crate) fn single(value: Value) -> Value {
    Value::Struct(vec![(FieldName::from(VALUE_COLUMN), value)])
}

/// The error for nesting deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep() -> String {
    format!("nested deeper than {MAX_DEPTH} levels")
}

/// `value` as JSON: numbers as numbers (decimals as strings, non-finite floats as strings),
/// bytes as base64, dates and times as ISO 8601 text, maps as objects (keys as text).
/// Used for the Protobuf types stored as JSON text.
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let float = |x: f64| {
        serde_json::Number::from_f64(x)
            .map(J::Number)
            .unwrap_or_else(|| J::String(x.to_string()))
    };
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Long(i) => J::from(*i),
        Value::Float(x) => float(f64::from(*x)),
        Value::Double(x) => float(*x),
        Value::String(s) => J::String(s.clone()),
        Value::Bytes(b) => {
            use base64::Engine as _;
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Value::Decimal { unscaled, scale } => J::String(decimal_text(*unscaled, *scale)),
        Value::Date(d) => J::String(date_text(*d)),
        Value::TimeMicros(t) => J::String(time_text(*t)),
        Value::TimestampMicros(t) => J::String(timestamp_text(*t)),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        other => match to_json(other) {
                            J::String(s) => s,
                            j => j.to_string(),
                        },
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Struct(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
    }
}

fn decimal_text(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    let scale = scale as usize;
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

// ---------------------------------------------------------------------------------------
// Calendar arithmetic (proleptic Gregorian, UTC), shared by the decoders.
// ---------------------------------------------------------------------------------------

/// Microseconds in a day.
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days in `month` of `year`.
pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn date_text(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

fn time_text(micros: i64) -> String {
    let mut out = String::with_capacity(15);
    push_time(&mut out, micros.rem_euclid(MICROS_PER_DAY));
    out
}

fn push_time(out: &mut String, micros: i64) {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let _ = write!(out, ".{frac:06}");
    }
}

fn timestamp_text(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!("{y:04}-{m:02}-{d:02}T");
    push_time(&mut out, micros.rem_euclid(MICROS_PER_DAY));
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for days in [-719_468i64, -1, 0, 1, 59, 365, 10_957, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert!(d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn json_rendering() {
        let v = Value::Struct(vec![
            (
                "d".into(),
                Value::Decimal {
                    unscaled: -1205,
                    scale: 3,
                },
            ),
            (
                "small".into(),
                Value::Decimal {
                    unscaled: 5,
                    scale: 2,
                },
            ),
            ("t".into(), Value::TimestampMicros(1_700_000_000_123_456)),
            ("day".into(), Value::Date(0)),
            ("tod".into(), Value::TimeMicros(3_600_000_000)),
            ("b".into(), Value::Bytes(vec![1, 2, 3])),
            (
                "m".into(),
                Value::Map(vec![(Value::Int(1), Value::Double(f64::NAN))]),
            ),
        ]);
        assert_eq!(
            to_json(&v).to_string(),
            r#"{"b":"AQID","d":"-1.205","day":"1970-01-01","m":{"1":"NaN"},"small":"0.05","t":"2023-11-14T22:13:20.123456Z","tod":"01:00:00"}"#
        );
    }
}
