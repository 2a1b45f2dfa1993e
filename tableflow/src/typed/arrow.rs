//! Decoded rows ([`Value::Struct`]s) as Arrow columns of a table.
//!
//! [`check_fits`] decides per row whether it fits the columns, [`build_columns`] then
//! builds every column of many rows at once: the values of one column are gathered from
//! all rows (struct fields by name: by position first, the usual case, then by search),
//! converted and appended to one buffer, nested structs, lists and maps recursively, so no
//! per-value dispatch on names or types happens beyond one match per value.
//!
//! What fits a column (widening only, never narrowing):
//!
//! | column | values |
//! |---|---|
//! | boolean | `Bool` |
//! | int | `Int` |
//! | long | `Int`, `Long` |
//! | float | `Int`, `Float` |
//! | double | `Int`, `Float`, `Double` |
//! | decimal(p, s) | `Decimal` (rescaled to s without losing digits, at most p digits), `Int`, `Long` |
//! | string | `String` |
//! | binary | `Bytes`; fixed(n): `Bytes` of n bytes |
//! | date, time, timestamp(tz) | `Date`, `TimeMicros`, `TimestampMicros` |
//! | struct | `Struct` (fields by name; a missing field is null; fields the column does not have are ignored, e.g. a field dropped from the table) |
//! | list, map | `List`, `Map` with fitting elements, keys and values |
//!
//! `Null` (or a missing field) fits only a nullable column, element or value; map keys are
//! never null.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, FixedSizeBinaryBuilder, LargeBinaryBuilder, LargeStringBuilder,
    StringBuilder,
};
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{ArrayRef, ListArray, MapArray, PrimitiveArray, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Fields, TimeUnit};

use super::{FieldName, Value};

/// Whether `row` (a [`Value::Struct`]) fits the Arrow columns `fields`: names match columns,
/// missing fields are null, fields not in `fields` are ignored, types must be convertible
/// (widening only: see the [module docs](self)). `Err` is the reason, naming the field.
pub fn check_fits(fields: &Fields, row: &Value) -> Result<(), String> {
    match row {
        Value::Struct(entries) => check_struct(fields, entries),
        other => Err(format!("a row is a struct, not {}", kind(other))),
    }
}

fn check_struct(fields: &Fields, entries: &[(FieldName, Value)]) -> Result<(), String> {
    for (i, f) in fields.iter().enumerate() {
        match lookup(entries, i, f.name()) {
            None if !f.is_nullable() => {
                return Err(format!("{}: required, but null or missing", f.name()));
            }
            None => {}
            Some(v) => check_value(f.data_type(), v).map_err(|e| join(f.name(), e))?,
        }
    }
    Ok(())
}

/// `prefix` and the error of what is inside it: `ship.city: ...`, `tags[2]: ...`.
fn join(prefix: &str, e: String) -> String {
    if e.starts_with('.') || e.starts_with('[') {
        format!("{prefix}{e}")
    } else {
        format!("{prefix}: {e}")
    }
}

fn check_value(dt: &DataType, v: &Value) -> Result<(), String> {
    let ok = match (dt, v) {
        (DataType::Struct(fields), Value::Struct(entries)) => {
            return check_struct(fields, entries).map_err(|e| format!(".{e}"));
        }
        (DataType::List(f), Value::List(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Null if f.is_nullable() => {}
                    Value::Null => {
                        return Err(format!(
                            "[{i}]: null element in a list of required elements"
                        ));
                    }
                    item => {
                        check_value(f.data_type(), item).map_err(|e| join(&format!("[{i}]"), e))?
                    }
                }
            }
            true
        }
        (DataType::Map(entries_field, _), Value::Map(entries)) => {
            let (k, val) = map_fields(entries_field.data_type()).map_err(|e| e.to_string())?;
            for (key, value) in entries {
                if matches!(key, Value::Null) {
                    return Err("null map key".into());
                }
                check_value(k.data_type(), key).map_err(|e| join(".key", e))?;
                match value {
                    Value::Null if val.is_nullable() => {}
                    Value::Null => return Err("null value in a map of required values".into()),
                    value => check_value(val.data_type(), value).map_err(|e| join(".value", e))?,
                }
            }
            true
        }
        (DataType::Boolean, v) => matches!(v, Value::Bool(_)),
        (DataType::Int32, v) => as_i32(v).is_some(),
        (DataType::Int64, v) => as_i64(v).is_some(),
        (DataType::Float32, v) => as_f32(v).is_some(),
        (DataType::Float64, v) => as_f64(v).is_some(),
        (DataType::Decimal128(p, s), v) => {
            if let Value::Decimal { .. } | Value::Int(_) | Value::Long(_) = v
                && as_decimal(v, *p, *s).is_none()
            {
                return Err(format!(
                    "{} does not fit decimal({p}, {s})",
                    super::to_json(v)
                ));
            }
            as_decimal(v, *p, *s).is_some()
        }
        (DataType::Utf8 | DataType::LargeUtf8, v) => matches!(v, Value::String(_)),
        (DataType::Binary | DataType::LargeBinary, v) => matches!(v, Value::Bytes(_)),
        (DataType::FixedSizeBinary(n), Value::Bytes(b)) => {
            if usize::try_from(*n).ok() != Some(b.len()) {
                return Err(format!("{} bytes do not fit fixed({n})", b.len()));
            }
            true
        }
        (DataType::Date32, v) => as_date(v).is_some(),
        (DataType::Time64(TimeUnit::Microsecond), v) => as_time(v).is_some(),
        (DataType::Timestamp(TimeUnit::Microsecond, _), v) => as_timestamp(v).is_some(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} does not fit a column of type {dt}", kind(v)))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) => "an int",
        Value::Long(_) => "a long",
        Value::Float(_) => "a float",
        Value::Double(_) => "a double",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Decimal { .. } => "a decimal",
        Value::Date(_) => "a date",
        Value::TimeMicros(_) => "a time",
        Value::TimestampMicros(_) => "a timestamp",
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Struct(_) => "a struct",
    }
}

// ---------------------------------------------------------------------------------------
// Conversions (shared by the check and the build, so they always agree).
// ---------------------------------------------------------------------------------------

fn as_i32(v: &Value) -> Option<i32> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(i64::from(*i)),
        Value::Long(i) => Some(*i),
        _ => None,
    }
}

fn as_f32(v: &Value) -> Option<f32> {
    match v {
        Value::Float(x) => Some(*x),
        Value::Int(i) => Some(*i as f32),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Double(x) => Some(*x),
        Value::Float(x) => Some(f64::from(*x)),
        Value::Int(i) => Some(f64::from(*i)),
        _ => None,
    }
}

fn as_date(v: &Value) -> Option<i32> {
    match v {
        Value::Date(d) => Some(*d),
        _ => None,
    }
}

fn as_time(v: &Value) -> Option<i64> {
    match v {
        Value::TimeMicros(t) => Some(*t),
        _ => None,
    }
}

fn as_timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::TimestampMicros(t) => Some(*t),
        _ => None,
    }
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// The unscaled value of `v` at scale `s`, if it has at most `p` digits and rescaling loses
/// no digit.
fn as_decimal(v: &Value, p: u8, s: i8) -> Option<i128> {
    let (unscaled, scale) = match v {
        Value::Decimal { unscaled, scale } => (*unscaled, *scale),
        Value::Int(i) => (i128::from(*i), 0),
        Value::Long(i) => (i128::from(*i), 0),
        _ => return None,
    };
    rescale(unscaled, scale, p, s)
}

/// `unscaled` at `scale` as an unscaled value at scale `s`, if it has at most `p` digits
/// there and rescaling loses no digit.
pub(crate) fn rescale(unscaled: i128, scale: u32, p: u8, s: i8) -> Option<i128> {
    let s = u32::try_from(s).ok()?;
    let rescaled = if scale > s {
        let factor = pow10(scale - s)?;
        (unscaled % factor == 0).then(|| unscaled / factor)?
    } else {
        unscaled.checked_mul(pow10(s - scale)?)?
    };
    (rescaled.unsigned_abs() < pow10(u32::from(p))?.unsigned_abs()).then_some(rescaled)
}

// ---------------------------------------------------------------------------------------
// Building.
// ---------------------------------------------------------------------------------------

/// The field of a struct by name: at position `i` (the usual case), else anywhere. `Null`
/// is `None`.
fn lookup<'v>(entries: &'v [(FieldName, Value)], i: usize, name: &str) -> Option<&'v Value> {
    let found = match entries.get(i) {
        Some((n, v)) if same_name(n, name) => Some(v),
        _ => entries
            .iter()
            .find(|(n, _)| same_name(n, name))
            .map(|(_, v)| v),
    };
    found.filter(|v| !matches!(v, Value::Null))
}

/// `a == b`, without a call to `memcmp` for the short names fields usually have (two
/// overlapping word compares): names are compared for every field of every row.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        8..=16 => {
            a.first_chunk::<8>() == b.first_chunk::<8>()
                && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        4..=7 => {
            a.first_chunk::<4>() == b.first_chunk::<4>()
                && a.last_chunk::<4>() == b.last_chunk::<4>()
        }
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

fn not_null(v: &Value) -> Option<&Value> {
    (!matches!(v, Value::Null)).then_some(v)
}

fn mismatch(v: &Value, dt: &DataType) -> ArrowError {
    ArrowError::InvalidArgumentError(format!(
        "{} does not fit a column of type {dt} (the row was not checked)",
        kind(v)
    ))
}

fn map_fields(
    dt: &DataType,
) -> Result<(&arrow_schema::FieldRef, &arrow_schema::FieldRef), ArrowError> {
    match dt {
        DataType::Struct(kv) if kv.len() == 2 => Ok((&kv[0], &kv[1])),
        other => Err(ArrowError::SchemaError(format!(
            "map entries of type {other} are not a key-value struct"
        ))),
    }
}

/// The Arrow arrays of the columns `fields` for `rows` (each a [`Value::Struct`] that passed
/// [`check_fits`]), in column order, with exactly the data types of `fields` (nested
/// struct/list/map included).
pub fn build_columns(fields: &Fields, rows: &[&Value]) -> Result<Vec<ArrayRef>, ArrowError> {
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        match row {
            Value::Struct(e) => entries.push(Some(e.as_slice())),
            other => return Err(mismatch(other, &DataType::Struct(fields.clone()))),
        }
    }
    fields
        .iter()
        .zip(gather(fields, &entries))
        .map(|(f, values)| build(f.data_type(), &values))
        .collect()
}

/// The values of every field of `fields` in structs `entries` (`None`: a null struct), in
/// one pass over the structs: each is read once, while it is in cache.
fn gather<'v>(
    fields: &Fields,
    entries: &[Option<&'v [(FieldName, Value)]>],
) -> Vec<Vec<Option<&'v Value>>> {
    let mut columns: Vec<Vec<Option<&Value>>> = (0..fields.len())
        .map(|_| Vec::with_capacity(entries.len()))
        .collect();
    for e in entries {
        match e {
            Some(e) => {
                for ((i, f), column) in fields.iter().enumerate().zip(columns.iter_mut()) {
                    column.push(lookup(e, i, f.name()));
                }
            }
            None => columns.iter_mut().for_each(|c| c.push(None)),
        }
    }
    columns
}

fn primitive<T: ArrowPrimitiveType>(
    dt: &DataType,
    values: &[Option<&Value>],
    conv: impl Fn(&Value) -> Option<T::Native>,
) -> Result<ArrayRef, ArrowError> {
    let mut out = Vec::with_capacity(values.len());
    let mut nulls = NullBufferBuilder::new(values.len());
    for v in values {
        match v {
            Some(v) => {
                out.push(conv(v).ok_or_else(|| mismatch(v, dt))?);
                nulls.append_non_null();
            }
            None => {
                out.push(T::Native::default());
                nulls.append_null();
            }
        }
    }
    let array = PrimitiveArray::<T>::try_new(ScalarBuffer::from(out), nulls.finish())?
        .with_data_type(dt.clone());
    Ok(Arc::new(array))
}

fn total_len(values: &[Option<&Value>], len: impl Fn(&Value) -> usize) -> usize {
    values.iter().flatten().map(|v| len(v)).sum()
}

fn str_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        _ => 0,
    }
}

fn bytes_len(v: &Value) -> usize {
    match v {
        Value::Bytes(b) => b.len(),
        _ => 0,
    }
}

macro_rules! build_with {
    ($builder:expr, $values:expr, $dt:expr, $pat:pat => $val:expr) => {{
        let mut b = $builder;
        for v in $values {
            match v {
                Some($pat) => b.append_value($val),
                Some(other) => return Err(mismatch(other, $dt)),
                None => b.append_null(),
            }
        }
        Ok(Arc::new(b.finish()))
    }};
}

fn offset_i32(n: usize) -> Result<i32, ArrowError> {
    i32::try_from(n).map_err(|_| {
        ArrowError::ComputeError("more than 2^31 list or map items in one batch".into())
    })
}

fn build(dt: &DataType, values: &[Option<&Value>]) -> Result<ArrayRef, ArrowError> {
    let n = values.len();
    match dt {
        DataType::Boolean => {
            build_with!(BooleanBuilder::with_capacity(n), values, dt, Value::Bool(b) => *b)
        }
        DataType::Int32 => primitive::<Int32Type>(dt, values, as_i32),
        DataType::Int64 => primitive::<Int64Type>(dt, values, as_i64),
        DataType::Float32 => primitive::<Float32Type>(dt, values, as_f32),
        DataType::Float64 => primitive::<Float64Type>(dt, values, as_f64),
        DataType::Decimal128(p, s) => {
            primitive::<Decimal128Type>(dt, values, |v| as_decimal(v, *p, *s))
        }
        DataType::Date32 => primitive::<Date32Type>(dt, values, as_date),
        DataType::Time64(TimeUnit::Microsecond) => {
            primitive::<Time64MicrosecondType>(dt, values, as_time)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            primitive::<TimestampMicrosecondType>(dt, values, as_timestamp)
        }
        DataType::Utf8 => build_with!(
            StringBuilder::with_capacity(n, total_len(values, str_len)),
            values, dt, Value::String(s) => s
        ),
        DataType::LargeUtf8 => build_with!(
            LargeStringBuilder::with_capacity(n, total_len(values, str_len)),
            values, dt, Value::String(s) => s
        ),
        DataType::Binary => build_with!(
            BinaryBuilder::with_capacity(n, total_len(values, bytes_len)),
            values, dt, Value::Bytes(b) => b
        ),
        DataType::LargeBinary => build_with!(
            LargeBinaryBuilder::with_capacity(n, total_len(values, bytes_len)),
            values, dt, Value::Bytes(b) => b
        ),
        DataType::FixedSizeBinary(size) => {
            let mut b = FixedSizeBinaryBuilder::with_capacity(n, *size);
            for v in values {
                match v {
                    Some(Value::Bytes(bytes)) => b.append_value(bytes)?,
                    Some(other) => return Err(mismatch(other, dt)),
                    None => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        DataType::Struct(fields) => {
            let mut nulls = NullBufferBuilder::new(n);
            let mut entries: Vec<Option<&[(FieldName, Value)]>> = Vec::with_capacity(n);
            for v in values {
                match v {
                    Some(Value::Struct(e)) => {
                        nulls.append_non_null();
                        entries.push(Some(e));
                    }
                    Some(other) => return Err(mismatch(other, dt)),
                    None => {
                        nulls.append_null();
                        entries.push(None);
                    }
                }
            }
            let children = fields
                .iter()
                .zip(gather(fields, &entries))
                .map(|(f, values)| build(f.data_type(), &values))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new_with_length(
                fields.clone(),
                children,
                nulls.finish(),
                n,
            )?))
        }
        DataType::List(element) => {
            let mut nulls = NullBufferBuilder::new(n);
            let mut offsets = Vec::with_capacity(n + 1);
            offsets.push(0i32);
            let mut items: Vec<Option<&Value>> = Vec::new();
            for v in values {
                match v {
                    Some(Value::List(list)) => {
                        items.extend(list.iter().map(not_null));
                        nulls.append_non_null();
                    }
                    Some(other) => return Err(mismatch(other, dt)),
                    None => nulls.append_null(),
                }
                offsets.push(offset_i32(items.len())?);
            }
            let array = build(element.data_type(), &items)?;
            Ok(Arc::new(ListArray::try_new(
                element.clone(),
                OffsetBuffer::new(offsets.into()),
                array,
                nulls.finish(),
            )?))
        }
        DataType::Map(entries_field, sorted) => {
            let (key_field, value_field) = map_fields(entries_field.data_type())?;
            let mut nulls = NullBufferBuilder::new(n);
            let mut offsets = Vec::with_capacity(n + 1);
            offsets.push(0i32);
            let mut keys: Vec<Option<&Value>> = Vec::new();
            let mut vals: Vec<Option<&Value>> = Vec::new();
            for v in values {
                match v {
                    Some(Value::Map(entries)) => {
                        for (k, v) in entries {
                            keys.push(not_null(k));
                            vals.push(not_null(v));
                        }
                        nulls.append_non_null();
                    }
                    Some(other) => return Err(mismatch(other, dt)),
                    None => nulls.append_null(),
                }
                offsets.push(offset_i32(keys.len())?);
            }
            let DataType::Struct(kv) = entries_field.data_type() else {
                return Err(ArrowError::SchemaError(
                    "map entries are not a struct".into(),
                ));
            };
            let key_array = build(key_field.data_type(), &keys)?;
            let value_array = build(value_field.data_type(), &vals)?;
            let entries = StructArray::try_new(kv.clone(), vec![key_array, value_array], None)?;
            Ok(Arc::new(MapArray::try_new(
                entries_field.clone(),
                OffsetBuffer::new(offsets.into()),
                entries,
                nulls.finish(),
                *sorted,
            )?))
        }
        other => Err(ArrowError::NotYetImplemented(format!(
            "columns of type {other} are not built from decoded values"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::{Array, RecordBatch};
    use arrow_schema::{Field, Schema};
    use iceberg::spec::{
        ListType, MapType, NestedField, PrimitiveType, Schema as IcebergSchema, StructType, Type,
    };

    use super::*;

    fn arrow_schema() -> Arc<Schema> {
        let fields = vec![
            NestedField::optional(1, "i", Type::Primitive(PrimitiveType::Int)).into(),
            NestedField::optional(2, "l", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(3, "d", Type::Primitive(PrimitiveType::Double)).into(),
            NestedField::optional(
                4,
                "dec",
                Type::Primitive(PrimitiveType::Decimal {
                    precision: 5,
                    scale: 2,
                }),
            )
            .into(),
            NestedField::required(
                5,
                "s",
                Type::Struct(StructType::new(vec![
                    NestedField::required(6, "a", Type::Primitive(PrimitiveType::String)).into(),
                    NestedField::optional(7, "b", Type::Primitive(PrimitiveType::Fixed(2))).into(),
                ])),
            )
            .into(),
            NestedField::optional(
                8,
                "li",
                Type::List(ListType::new(
                    NestedField::list_element(9, Type::Primitive(PrimitiveType::Float), true)
                        .into(),
                )),
            )
            .into(),
            NestedField::optional(
                10,
                "m",
                Type::Map(MapType::new(
                    NestedField::map_key_element(11, Type::Primitive(PrimitiveType::Int)).into(),
                    NestedField::map_value_element(
                        12,
                        Type::Struct(StructType::new(vec![
                            NestedField::required(13, "x", Type::Primitive(PrimitiveType::Long))
                                .into(),
                        ])),
                        false,
                    )
                    .into(),
                )),
            )
            .into(),
        ];
        let schema = IcebergSchema::builder()
            .with_fields(fields)
            .build()
            .unwrap();
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).unwrap())
    }

    fn row(fields: Vec<(&str, Value)>) -> Value {
        Value::Struct(
            fields
                .into_iter()
                .map(|(k, v)| (FieldName::from(k), v))
                .collect(),
        )
    }

    fn s(a: &str) -> Value {
        row(vec![("a", Value::String(a.into()))])
    }

    #[test]
    fn widening_is_accepted_narrowing_and_mismatches_are_refused() {
        let schema = arrow_schema();
        let f = schema.fields();
        let ok = |r: Value| check_fits(f, &r);
        assert!(ok(row(vec![("s", s("x")), ("l", Value::Int(1))])).is_ok());
        assert!(ok(row(vec![("s", s("x")), ("d", Value::Int(1))])).is_ok());
        assert!(ok(row(vec![("s", s("x")), ("d", Value::Float(1.5))])).is_ok());
        assert!(ok(row(vec![("s", s("x")), ("extra", Value::Bool(true))])).is_ok());
        let err = ok(row(vec![("s", s("x")), ("i", Value::String("1".into()))])).unwrap_err();
        assert!(err.starts_with("i: a string does not fit"), "{err}");
        assert!(ok(row(vec![("s", s("x")), ("i", Value::Long(1))])).is_err());
        assert!(ok(row(vec![("s", s("x")), ("d", Value::Long(1))])).is_err());
        // Required fields.
        assert!(ok(row(vec![])).unwrap_err().contains("required"));
        let err = ok(row(vec![("s", row(vec![("b", Value::Bytes(vec![1, 2]))]))])).unwrap_err();
        assert_eq!(err, "s.a: required, but null or missing");
        let err = ok(row(vec![(
            "s",
            row(vec![
                ("a", Value::String("x".into())),
                ("b", Value::Bytes(vec![1])),
            ]),
        )]))
        .unwrap_err();
        assert!(err.contains("fixed(2)"), "{err}");
        // Decimals: rescaled without loss, within the precision.
        let dec = |unscaled, scale| {
            row(vec![
                ("s", s("x")),
                ("dec", Value::Decimal { unscaled, scale }),
            ])
        };
        assert!(ok(dec(12_345, 2)).is_ok());
        assert!(ok(dec(1_234, 1)).is_ok());
        assert!(ok(dec(12_340, 3)).is_ok());
        assert!(ok(dec(12_345, 3)).is_err());
        assert!(ok(dec(123_456, 2)).is_err());
        assert!(ok(row(vec![("s", s("x")), ("dec", Value::Long(999))])).is_ok());
        assert!(ok(row(vec![("s", s("x")), ("dec", Value::Long(1000))])).is_err());
        // Lists and maps.
        assert!(
            ok(row(vec![
                ("s", s("x")),
                ("li", Value::List(vec![Value::Null]))
            ]))
            .is_err()
        );
        assert!(
            ok(row(vec![
                ("s", s("x")),
                ("li", Value::List(vec![Value::Int(1)]))
            ]))
            .is_ok()
        );
        let map = |k: Value, v: Value| row(vec![("s", s("x")), ("m", Value::Map(vec![(k, v)]))]);
        assert!(ok(map(Value::Int(1), Value::Null)).is_ok());
        assert!(ok(map(Value::Null, Value::Null)).is_err());
        assert!(ok(map(Value::Int(1), row(vec![]))).is_err());
        assert!(check_fits(f, &Value::Int(1)).is_err());
    }

    #[test]
    fn names_compare_as_strings() {
        let names: Vec<String> = (0..=20)
            .map(|n| "abcdefghijklmnopqrstu"[..n].to_string())
            .collect();
        for a in &names {
            for b in &names {
                assert_eq!(same_name(a, b), a == b, "{a} {b}");
                let mut c = b.clone().into_bytes();
                if let Some(last) = c.last_mut() {
                    *last = b'z';
                    let c = String::from_utf8(c).unwrap();
                    assert_eq!(same_name(a, &c), *a == c, "{a} {c}");
                }
            }
        }
    }

    #[test]
    fn columns_have_the_schema_types() {
        let schema = arrow_schema();
        let rows = [
            row(vec![
                ("i", Value::Int(1)),
                ("l", Value::Int(2)),
                ("d", Value::Float(0.5)),
                (
                    "dec",
                    Value::Decimal {
                        unscaled: 15,
                        scale: 1,
                    },
                ),
                (
                    "s",
                    row(vec![
                        ("b", Value::Bytes(vec![1, 2])),
                        ("a", Value::String("x".into())),
                    ]),
                ),
                ("li", Value::List(vec![Value::Int(3), Value::Float(1.5)])),
                (
                    "m",
                    Value::Map(vec![
                        (Value::Int(1), row(vec![("x", Value::Long(9))])),
                        (Value::Int(2), Value::Null),
                    ]),
                ),
            ]),
            row(vec![("s", s("y"))]),
        ];
        for r in &rows {
            check_fits(schema.fields(), r).unwrap();
        }
        let refs: Vec<&Value> = rows.iter().collect();
        let columns = build_columns(schema.fields(), &refs).unwrap();
        for (c, f) in columns.iter().zip(schema.fields()) {
            assert_eq!(c.data_type(), f.data_type(), "{}", f.name());
        }
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        assert_eq!(
            batch.column(3).as_primitive::<Decimal128Type>().value(0),
            150
        );
        let st = batch.column(4).as_struct();
        assert_eq!(st.column(0).as_string::<i32>().value(1), "y");
        assert_eq!(st.column(1).as_fixed_size_binary().value(0), &[1, 2]);
        assert!(st.column(1).is_null(1));
        let li = batch.column(5).as_list::<i32>();
        assert_eq!(
            li.value(0).as_primitive::<Float32Type>().values(),
            &[3.0, 1.5]
        );
        assert!(li.is_null(1));
        let m = batch.column(6).as_map();
        assert_eq!(m.value_offsets(), &[0, 2, 2]);
        assert!(m.values().is_null(1));
        assert_eq!(
            m.values()
                .as_struct()
                .column(0)
                .as_primitive::<Int64Type>()
                .value(0),
            9
        );

        // A value that was not checked is an error, not a panic.
        let bad = row(vec![("s", s("x")), ("i", Value::String("no".into()))]);
        assert!(build_columns(schema.fields(), &[&bad]).is_err());
        // No rows: empty arrays.
        let empty = build_columns(schema.fields(), &[]).unwrap();
        assert!(empty.iter().all(|c| c.is_empty()));
        // A struct column without fields.
        let fields = Fields::from(vec![Field::new(
            "e",
            DataType::Struct(Fields::empty()),
            true,
        )]);
        let e = row(vec![("e", row(vec![]))]);
        assert_eq!(build_columns(&fields, &[&e]).unwrap()[0].len(), 1);
    }
}
