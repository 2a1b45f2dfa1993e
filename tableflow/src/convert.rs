//! Kafka records -> Arrow record batches in a table's layout.
//!
//! `key_value` rows are built column by column. `json` values are decoded by `arrow-json`
//! straight into the declared columns, many records per decoder pass; a pass that fails
//! (a value that is not one JSON object, a missing required field, a type mismatch) is
//! redone record by record so only the bad records go to the dead-letter table, each with
//! the decoder's error.

use std::sync::Arc;

use arrow_array::builder::{LargeBinaryBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, ListArray, RecordBatch, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType, Field, Schema as ArrowSchema};
use bytes::Bytes;

use crate::schema::TableLayout;

/// One committed Kafka record, decoded from its batch.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in milliseconds.
    pub timestamp_ms: i64,
    /// Key (`None`: null key).
    pub key: Option<Bytes>,
    /// Value (`None`: null value, a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl KafkaRecord {
    /// Bytes the record carries (for file sizing and throughput).
    pub fn size(&self) -> usize {
        let h: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len))
            .sum();
        self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len) + h + 16
    }
}

/// A record that does not fit the table, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The record as it is in the log.
    pub record: KafkaRecord,
    /// Why it was rejected.
    pub error: String,
}

fn field<'a>(schema: &'a ArrowSchema, name: &str) -> Result<&'a Field, ArrowError> {
    schema
        .field_with_name(name)
        .map_err(|_| ArrowError::SchemaError(format!("no column {name}")))
}

fn binary(values: impl Iterator<Item = Option<Bytes>>, cap: usize) -> ArrayRef {
    let mut b = LargeBinaryBuilder::with_capacity(cap, cap * 16);
    for v in values {
        match v {
            Some(v) => b.append_value(&v),
            None => b.append_null(),
        }
    }
    Arc::new(b.finish())
}

fn headers(schema: &ArrowSchema, records: &[&KafkaRecord]) -> Result<ArrayRef, ArrowError> {
    let DataType::List(element) = field(schema, "headers")?.data_type() else {
        return Err(ArrowError::SchemaError("headers is not a list".into()));
    };
    let DataType::Struct(kv_fields) = element.data_type() else {
        return Err(ArrowError::SchemaError(
            "headers element is not a struct".into(),
        ));
    };
    let total: usize = records.iter().map(|r| r.headers.len()).sum();
    let mut keys = StringBuilder::with_capacity(total, total * 8);
    let mut values = LargeBinaryBuilder::with_capacity(total, total * 8);
    let mut offsets = Vec::with_capacity(records.len() + 1);
    offsets.push(0i32);
    for r in records {
        for (k, v) in &r.headers {
            keys.append_value(k);
            match v {
                Some(v) => values.append_value(v),
                None => values.append_null(),
            }
        }
        let last = offsets.last().copied().unwrap_or(0);
        let n = i32::try_from(r.headers.len())
            .map_err(|_| ArrowError::ComputeError("too many headers".into()))?;
        offsets.push(last + n);
    }
    let entries = StructArray::try_new(
        kv_fields.clone(),
        vec![Arc::new(keys.finish()), Arc::new(values.finish())],
        None,
    )?;
    Ok(Arc::new(ListArray::try_new(
        element.clone(),
        OffsetBuffer::new(offsets.into()),
        Arc::new(entries),
        None,
    )?))
}

fn timestamps(schema: &ArrowSchema, records: &[&KafkaRecord]) -> Result<ArrayRef, ArrowError> {
    let dt = field(schema, "timestamp")?.data_type().clone();
    let a = TimestampMicrosecondArray::from_iter_values(
        records.iter().map(|r| r.timestamp_ms.saturating_mul(1000)),
    )
    .with_data_type(dt);
    Ok(Arc::new(a))
}

/// The column named `name` of a Kafka-column set, for `records`.
fn kafka_column(
    schema: &ArrowSchema,
    name: &str,
    records: &[&KafkaRecord],
) -> Result<Option<ArrayRef>, ArrowError> {
    let n = records.len();
    Ok(Some(match name {
        "key" => binary(records.iter().map(|r| r.key.clone()), n),
        "value" => binary(records.iter().map(|r| r.value.clone()), n),
        "headers" => headers(schema, records)?,
        "partition" => Arc::new(Int32Array::from_iter_values(
            records.iter().map(|r| r.partition),
        )),
        "offset" => Arc::new(Int64Array::from_iter_values(
            records.iter().map(|r| r.offset),
        )),
        "timestamp" => timestamps(schema, records)?,
        _ => return Ok(None),
    }))
}

/// `key_value` rows: every column comes from the record itself.
pub fn key_value_batch(
    layout: &TableLayout,
    records: &[&KafkaRecord],
) -> Result<RecordBatch, ArrowError> {
    let mut columns = Vec::with_capacity(layout.arrow.fields().len());
    for f in layout.arrow.fields() {
        let c = kafka_column(&layout.arrow, f.name(), records)?
            .ok_or_else(|| ArrowError::SchemaError(format!("unexpected column {}", f.name())))?;
        columns.push(c);
    }
    RecordBatch::try_new(layout.arrow.clone(), columns)
}

/// Schema-mode rows: the decoded values (each a [`crate::typed::Value::Struct`] that fits
/// the table's value columns) and the [`crate::schema::KAFKA_STRUCT`] column of their
/// records.
pub fn typed_batch(
    layout: &TableLayout,
    rows: &[(&KafkaRecord, crate::typed::Value)],
) -> Result<RecordBatch, ArrowError> {
    let value_arrow = layout
        .typed_arrow
        .clone()
        .ok_or_else(|| ArrowError::SchemaError("not a schema-mode table".into()))?;
    let values: Vec<&crate::typed::Value> = rows.iter().map(|(_, v)| v).collect();
    let columns = crate::typed::build_columns(value_arrow.fields(), &values)?;
    let records: Vec<&KafkaRecord> = rows.iter().map(|(r, _)| *r).collect();
    typed_batch_of(layout, &records, columns)
}

/// The batch of `records` whose value columns (the table's columns before `_kafka`, in
/// order) are already built.
pub fn typed_batch_of(
    layout: &TableLayout,
    records: &[&KafkaRecord],
    mut columns: Vec<ArrayRef>,
) -> Result<RecordBatch, ArrowError> {
    let kafka = field(&layout.arrow, crate::schema::KAFKA_STRUCT)?;
    let DataType::Struct(kafka_fields) = kafka.data_type() else {
        return Err(ArrowError::SchemaError(format!(
            "{} is not a struct",
            crate::schema::KAFKA_STRUCT
        )));
    };
    let kafka_schema = ArrowSchema::new(kafka_fields.clone());
    let mut kafka_columns = Vec::with_capacity(kafka_fields.len());
    for f in kafka_fields {
        kafka_columns.push(
            kafka_column(&kafka_schema, f.name(), records)?.ok_or_else(|| {
                ArrowError::SchemaError(format!("unexpected Kafka field {}", f.name()))
            })?,
        );
    }
    columns.push(Arc::new(StructArray::try_new(
        kafka_fields.clone(),
        kafka_columns,
        None,
    )?));
    RecordBatch::try_new(layout.arrow.clone(), columns)
}

/// Dead-letter rows: the raw record plus the error.
pub fn dlq_batch(layout: &TableLayout, rejected: &[Rejected]) -> Result<RecordBatch, ArrowError> {
    let records: Vec<&KafkaRecord> = rejected.iter().map(|r| &r.record).collect();
    let mut columns = Vec::with_capacity(layout.arrow.fields().len());
    for f in layout.arrow.fields() {
        let c = match kafka_column(&layout.arrow, f.name(), &records)? {
            Some(c) => c,
            None => {
                let mut b = StringBuilder::new();
                for r in rejected {
                    b.append_value(&r.error);
                }
                Arc::new(b.finish())
            }
        };
        columns.push(c);
    }
    RecordBatch::try_new(layout.arrow.clone(), columns)
}

/// Checks that a value is exactly one JSON object, so the decoder sees one row per record.
fn one_json_object(value: &[u8]) -> Result<(), String> {
    let first = value.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err("value is not a JSON object".into());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(value)
        .map(|_| ())
        .map_err(|e| format!("value is not valid JSON: {e}"))
}

fn values<'a>(rs: &[&'a KafkaRecord]) -> Vec<&'a [u8]> {
    rs.iter()
        .map(|r| r.value.as_deref().unwrap_or(b""))
        .collect()
}

fn decode_json(
    json_schema: &Arc<ArrowSchema>,
    values: &[&[u8]],
) -> Result<RecordBatch, ArrowError> {
    let mut decoder = arrow_json::ReaderBuilder::new(json_schema.clone())
        .with_batch_size(values.len().max(1))
        .build_decoder()?;
    for v in values {
        let mut rest: &[u8] = v;
        while !rest.is_empty() {
            let used = decoder.decode(rest)?;
            if used == 0 {
                break;
            }
            rest = &rest[used..];
        }
        // A newline ends the value even if it is a bare scalar, so values never merge.
        decoder.decode(b"\n")?;
    }
    let batch = decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(json_schema.clone()));
    if batch.num_rows() != values.len() {
        return Err(ArrowError::JsonError(format!(
            "decoded {} rows from {} values",
            batch.num_rows(),
            values.len()
        )));
    }
    Ok(batch)
}

/// `json` rows: the decoded value columns followed by the Kafka columns. Records that do not
/// decode are returned as rejected.
pub fn json_batch(
    layout: &TableLayout,
    records: &[&KafkaRecord],
) -> Result<(Option<RecordBatch>, Vec<Rejected>), ArrowError> {
    let json_schema = layout
        .json_arrow
        .clone()
        .ok_or_else(|| ArrowError::SchemaError("not a json table".into()))?;
    let mut good: Vec<&KafkaRecord> = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for r in records {
        match r.value.as_deref().map(one_json_object) {
            Some(Ok(())) => good.push(r),
            Some(Err(error)) => rejected.push(Rejected {
                record: (*r).clone(),
                error,
            }),
            None => rejected.push(Rejected {
                record: (*r).clone(),
                error: "null value (tombstone) in a json table".into(),
            }),
        }
    }
    let decoded = match decode_json(&json_schema, &values(&good)) {
        Ok(b) => b,
        Err(_) => {
            // Isolate the bad records: decode one at a time.
            let mut kept = Vec::with_capacity(good.len());
            for r in good {
                match decode_json(&json_schema, &values(&[r])) {
                    Ok(_) => kept.push(r),
                    Err(e) => rejected.push(Rejected {
                        record: r.clone(),
                        error: format!("value does not fit the table schema: {e}"),
                    }),
                }
            }
            good = kept;
            decode_json(&json_schema, &values(&good))?
        }
    };
    if good.is_empty() {
        return Ok((None, rejected));
    }
    let mut columns: Vec<ArrayRef> = decoded.columns().to_vec();
    for f in layout.arrow.fields().iter().skip(columns.len()) {
        let c = kafka_column(&layout.arrow, f.name(), &good)?
            .ok_or_else(|| ArrowError::SchemaError(format!("unexpected column {}", f.name())))?;
        columns.push(c);
    }
    let batch = RecordBatch::try_new(layout.arrow.clone(), columns)?;
    Ok((Some(batch), rejected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TableConfig, TableMode};

    fn rec(offset: i64, value: &str) -> KafkaRecord {
        KafkaRecord {
            partition: 0,
            offset,
            timestamp_ms: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"\x00\xffk")),
            value: Some(Bytes::from(value.to_string())),
            headers: vec![
                ("h".into(), Some(Bytes::from_static(b"\x01"))),
                ("n".into(), None),
            ],
        }
    }

    fn layout(mode: TableMode) -> TableLayout {
        TableLayout::new(&TableConfig {
            mode,
            partition_by: "none".into(),
            commit_interval_ms: 1000,
            namespace: "default".into(),
            name: "t".into(),
            maintenance: Default::default(),
            retention_hold_ms: 0,
        })
        .unwrap()
    }

    #[test]
    fn key_value_rows() {
        let l = layout(TableMode::KeyValue);
        let rs = [rec(5, "a"), rec(6, "\u{0}b")];
        let refs: Vec<_> = rs.iter().collect();
        let b = key_value_batch(&l, &refs).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.num_columns(), 6);
        let d = dlq_batch(
            &TableLayout::dlq(),
            &[Rejected {
                record: rs[0].clone(),
                error: "bad".into(),
            }],
        )
        .unwrap();
        assert_eq!(d.num_rows(), 1);
    }

    #[test]
    fn json_rows_and_rejects() {
        let st = serde_json::from_str(
            r#"{"type":"struct","fields":[{"id":1,"name":"id","type":"long","required":true},
            {"id":2,"name":"name","type":"string","required":false},
            {"id":3,"name":"loc","type":{"type":"struct","fields":[{"id":4,"name":"lat","type":"double","required":false}]},"required":false}]}"#,
        )
        .unwrap();
        let l = layout(TableMode::Json(st));
        let rs = [
            rec(0, r#"{"id":1,"name":"a","loc":{"lat":1.5}}"#),
            rec(1, r#"{"id":"x"}"#),
            rec(2, "not json"),
            rec(3, r#"{"name":"no id"}"#),
            rec(4, r#"{"id":2}{"id":3}"#),
            rec(5, r#"{"id":5,"extra":true}"#),
        ];
        let refs: Vec<_> = rs.iter().collect();
        let (b, rejected) = json_batch(&l, &refs).unwrap();
        let b = b.unwrap();
        assert_eq!(b.num_rows(), 2, "{rejected:?}");
        let offsets: Vec<i64> = rejected.iter().map(|r| r.record.offset).collect();
        let mut sorted = offsets.clone();
        sorted.sort();
        assert_eq!(sorted, [1, 2, 3, 4]);
    }
}
