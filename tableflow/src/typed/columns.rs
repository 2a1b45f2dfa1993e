//! Column buffers a decoder appends rows to directly (schema mode's fast path): one buffer
//! per table column, nested like the column's Arrow type, that can be cut back to an
//! earlier row count, so a record that fails halfway leaves no trace. [`Columns::finish`]
//! turns them into Arrow arrays of exactly the columns' types.
//!
//! A buffer exists for the types a decoded value can fill (the table of the
//! [`arrow`](super::arrow) module); [`Columns::new`] refuses other types, and the caller
//! then takes the [`Value`](super::Value) path.

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, LargeBinaryArray, LargeStringArray,
    ListArray, MapArray, PrimitiveArray, StringArray, StructArray,
};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Fields, TimeUnit};

/// Values and validity of one column (or nested child).
#[derive(Debug)]
pub(crate) enum Col {
    /// boolean
    Bool(Vec<bool>, Vec<bool>),
    /// int, date
    I32(Vec<i32>, Vec<bool>),
    /// long, time, timestamp
    I64(Vec<i64>, Vec<bool>),
    /// float
    F32(Vec<f32>, Vec<bool>),
    /// double
    F64(Vec<f64>, Vec<bool>),
    /// decimal(p, s): the unscaled values at scale s
    Dec(Vec<i128>, Vec<bool>),
    /// string, binary: offsets (one more than rows), bytes
    Var(Vec<i64>, Vec<u8>, Vec<bool>),
    /// fixed(n): n bytes per row
    Fixed(usize, Vec<u8>, Vec<bool>),
    /// struct: one child per field
    Struct(Vec<Col>, Vec<bool>),
    /// list: offsets into the child
    List(Vec<i64>, Box<Col>, Vec<bool>),
    /// map: offsets into the keys and values
    Map(Vec<i64>, Box<Col>, Box<Col>, Vec<bool>),
}

impl Col {
    /// An empty buffer for a column of type `dt`, if the type is one decoders fill.
    pub(crate) fn new(dt: &DataType) -> Option<Col> {
        Some(match dt {
            DataType::Boolean => Col::Bool(Vec::new(), Vec::new()),
            DataType::Int32 | DataType::Date32 => Col::I32(Vec::new(), Vec::new()),
            DataType::Int64
            | DataType::Time64(TimeUnit::Microsecond)
            | DataType::Timestamp(TimeUnit::Microsecond, _) => Col::I64(Vec::new(), Vec::new()),
            DataType::Float32 => Col::F32(Vec::new(), Vec::new()),
            DataType::Float64 => Col::F64(Vec::new(), Vec::new()),
            DataType::Decimal128(_, _) => Col::Dec(Vec::new(), Vec::new()),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary => {
                Col::Var(vec![0], Vec::new(), Vec::new())
            }
            DataType::FixedSizeBinary(n) => {
                Col::Fixed(usize::try_from(*n).ok()?, Vec::new(), Vec::new())
            }
            DataType::Struct(fields) => Col::Struct(
                fields
                    .iter()
                    .map(|f| Col::new(f.data_type()))
                    .collect::<Option<_>>()?,
                Vec::new(),
            ),
            DataType::List(item) => {
                Col::List(vec![0], Box::new(Col::new(item.data_type())?), Vec::new())
            }
            DataType::Map(entries, _) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return None;
                };
                if kv.len() != 2 {
                    return None;
                }
                Col::Map(
                    vec![0],
                    Box::new(Col::new(kv[0].data_type())?),
                    Box::new(Col::new(kv[1].data_type())?),
                    Vec::new(),
                )
            }
            _ => return None,
        })
    }

    /// Rows in the buffer.
    pub(crate) fn len(&self) -> usize {
        self.valid().len()
    }

    fn valid(&self) -> &Vec<bool> {
        match self {
            Col::Bool(_, v)
            | Col::I32(_, v)
            | Col::I64(_, v)
            | Col::F32(_, v)
            | Col::F64(_, v)
            | Col::Dec(_, v)
            | Col::Var(_, _, v)
            | Col::Fixed(_, _, v)
            | Col::Struct(_, v)
            | Col::List(_, _, v)
            | Col::Map(_, _, _, v) => v,
        }
    }

    /// Appends a null (a struct's children get nulls too, lists and maps no items).
    pub(crate) fn push_null(&mut self) {
        match self {
            Col::Bool(x, v) => {
                x.push(false);
                v.push(false);
            }
            Col::I32(x, v) => {
                x.push(0);
                v.push(false);
            }
            Col::I64(x, v) => {
                x.push(0);
                v.push(false);
            }
            Col::F32(x, v) => {
                x.push(0.0);
                v.push(false);
            }
            Col::F64(x, v) => {
                x.push(0.0);
                v.push(false);
            }
            Col::Dec(x, v) => {
                x.push(0);
                v.push(false);
            }
            Col::Var(offsets, data, v) => {
                offsets.push(data.len() as i64);
                v.push(false);
            }
            Col::Fixed(n, data, v) => {
                data.resize(data.len() + *n, 0);
                v.push(false);
            }
            Col::Struct(children, v) => {
                children.iter_mut().for_each(Col::push_null);
                v.push(false);
            }
            Col::List(offsets, _, v) | Col::Map(offsets, _, _, v) => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                v.push(false);
            }
        }
    }

    /// Cuts the buffer back to its first `rows` rows.
    pub(crate) fn truncate(&mut self, rows: usize) {
        match self {
            Col::Bool(x, v) => {
                x.truncate(rows);
                v.truncate(rows);
            }
            Col::I32(x, v) => {
                x.truncate(rows);
                v.truncate(rows);
            }
            Col::I64(x, v) => {
                x.truncate(rows);
                v.truncate(rows);
            }
            Col::F32(x, v) => {
                x.truncate(rows);
                v.truncate(rows);
            }
            Col::F64(x, v) => {
                x.truncate(rows);
                v.truncate(rows);
            }
            Col::Dec(x, v) => {
                x.truncate(rows);
                v.truncate(rows);
            }
            Col::Var(offsets, data, v) => {
                offsets.truncate(rows + 1);
                data.truncate(offsets.last().map_or(0, |&o| o as usize));
                v.truncate(rows);
            }
            Col::Fixed(n, data, v) => {
                data.truncate(rows * *n);
                v.truncate(rows);
            }
            Col::Struct(children, v) => {
                children.iter_mut().for_each(|c| c.truncate(rows));
                v.truncate(rows);
            }
            Col::List(offsets, child, v) => {
                offsets.truncate(rows + 1);
                child.truncate(offsets.last().map_or(0, |&o| o as usize));
                v.truncate(rows);
            }
            Col::Map(offsets, keys, values, v) => {
                offsets.truncate(rows + 1);
                let items = offsets.last().map_or(0, |&o| o as usize);
                keys.truncate(items);
                values.truncate(items);
                v.truncate(rows);
            }
        }
    }

    /// The Arrow array of the buffer, of type `dt` (the type it was made for).
    pub(crate) fn finish(self, dt: &DataType) -> Result<ArrayRef, ArrowError> {
        fn nulls(v: Vec<bool>) -> Option<NullBuffer> {
            if v.iter().all(|&b| b) {
                None
            } else {
                Some(NullBuffer::from(v))
            }
        }
        fn primitive<T: arrow_array::types::ArrowPrimitiveType>(
            x: Vec<T::Native>,
            v: Vec<bool>,
            dt: &DataType,
        ) -> Result<ArrayRef, ArrowError> {
            Ok(Arc::new(
                PrimitiveArray::<T>::try_new(ScalarBuffer::from(x), nulls(v))?
                    .with_data_type(dt.clone()),
            ))
        }
        fn offsets32(o: Vec<i64>) -> Result<OffsetBuffer<i32>, ArrowError> {
            let o: Vec<i32> = o
                .into_iter()
                .map(|x| {
                    i32::try_from(x).map_err(|_| {
                        ArrowError::ComputeError(
                            "more than 2^31 bytes or items in one column of a batch".into(),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(OffsetBuffer::new(ScalarBuffer::from(o)))
        }
        let mismatch =
            || ArrowError::SchemaError(format!("a column buffer does not match its type {dt}"));
        match (self, dt) {
            (Col::Bool(x, v), DataType::Boolean) => {
                Ok(Arc::new(BooleanArray::new(x.into(), nulls(v))))
            }
            (Col::I32(x, v), DataType::Int32) => primitive::<Int32Type>(x, v, dt),
            (Col::I32(x, v), DataType::Date32) => primitive::<Date32Type>(x, v, dt),
            (Col::I64(x, v), DataType::Int64) => primitive::<Int64Type>(x, v, dt),
            (Col::I64(x, v), DataType::Time64(_)) => primitive::<Time64MicrosecondType>(x, v, dt),
            (Col::I64(x, v), DataType::Timestamp(_, _)) => {
                primitive::<TimestampMicrosecondType>(x, v, dt)
            }
            (Col::F32(x, v), DataType::Float32) => primitive::<Float32Type>(x, v, dt),
            (Col::F64(x, v), DataType::Float64) => primitive::<Float64Type>(x, v, dt),
            (Col::Dec(x, v), DataType::Decimal128(_, _)) => primitive::<Decimal128Type>(x, v, dt),
            (Col::Var(o, data, v), DataType::Utf8) => Ok(Arc::new(StringArray::try_new(
                offsets32(o)?,
                Buffer::from_vec(data),
                nulls(v),
            )?)),
            (Col::Var(o, data, v), DataType::LargeUtf8) => Ok(Arc::new(LargeStringArray::try_new(
                OffsetBuffer::new(ScalarBuffer::from(o)),
                Buffer::from_vec(data),
                nulls(v),
            )?)),
            (Col::Var(o, data, v), DataType::Binary) => Ok(Arc::new(BinaryArray::try_new(
                offsets32(o)?,
                Buffer::from_vec(data),
                nulls(v),
            )?)),
            (Col::Var(o, data, v), DataType::LargeBinary) => {
                Ok(Arc::new(LargeBinaryArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(o)),
                    Buffer::from_vec(data),
                    nulls(v),
                )?))
            }
            (Col::Fixed(n, data, v), DataType::FixedSizeBinary(_)) => {
                let size = i32::try_from(n).map_err(|_| mismatch())?;
                Ok(Arc::new(FixedSizeBinaryArray::try_new(
                    size,
                    Buffer::from_vec(data),
                    nulls(v),
                )?))
            }
            (Col::Struct(children, v), DataType::Struct(fields)) => {
                let len = v.len();
                let arrays = children
                    .into_iter()
                    .zip(fields.iter())
                    .map(|(c, f)| c.finish(f.data_type()))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Arc::new(StructArray::try_new_with_length(
                    fields.clone(),
                    arrays,
                    nulls(v),
                    len,
                )?))
            }
            (Col::List(o, child, v), DataType::List(item)) => {
                let values = child.finish(item.data_type())?;
                Ok(Arc::new(ListArray::try_new(
                    item.clone(),
                    offsets32(o)?,
                    values,
                    nulls(v),
                )?))
            }
            (Col::Map(o, keys, values, v), DataType::Map(entries, sorted)) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(mismatch());
                };
                let keys = keys.finish(kv[0].data_type())?;
                let values = values.finish(kv[1].data_type())?;
                let entries_array = StructArray::try_new(kv.clone(), vec![keys, values], None)?;
                Ok(Arc::new(MapArray::try_new(
                    entries.clone(),
                    offsets32(o)?,
                    entries_array,
                    nulls(v),
                    *sorted,
                )?))
            }
            _ => Err(mismatch()),
        }
    }
}

/// The value columns of a table, filled row by row.
#[derive(Debug)]
pub(crate) struct Columns {
    pub(crate) cols: Vec<Col>,
    rows: usize,
}

impl Columns {
    /// Empty buffers for `fields`, if every column's type is one decoders fill.
    pub(crate) fn new(fields: &Fields) -> Option<Columns> {
        Some(Columns {
            cols: fields
                .iter()
                .map(|f| Col::new(f.data_type()))
                .collect::<Option<_>>()?,
            rows: 0,
        })
    }

    /// Rows appended so far.
    #[cfg(test)]
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Records that a row was appended to every column.
    pub(crate) fn row_done(&mut self) {
        self.rows += 1;
    }

    /// Drops whatever a failed row appended.
    pub(crate) fn roll_back(&mut self) {
        let rows = self.rows;
        self.cols.iter_mut().for_each(|c| c.truncate(rows));
    }

    /// The Arrow arrays of the columns `fields` (those the buffers were made for).
    pub(crate) fn finish(self, fields: &Fields) -> Result<Vec<ArrayRef>, ArrowError> {
        self.cols
            .into_iter()
            .zip(fields.iter())
            .map(|(c, f)| c.finish(f.data_type()))
            .collect()
    }
}
