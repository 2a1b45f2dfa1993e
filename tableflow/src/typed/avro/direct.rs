//! Avro payloads decoded straight into a table's column buffers ([`Columns`]): the fast
//! path of schema mode. A [`Program`] is worked out once per writer schema and table: for
//! every field of the writer's records, which column (or struct field) it fills and how
//! its value converts (the same widenings as [`check_fits`](crate::typed::check_fits)),
//! or that it is skipped (the table has no such column). Decoding a record then appends to
//! the buffers with no intermediate [`Value`](crate::typed::Value) tree, no name lookups
//! and no allocation beyond the buffers' growth.
//!
//! A record that fails (truncated, out of range, a null for a required column, a value
//! that does not fit) is rolled back: [`Program::append`] leaves the buffers as they were.
//! A schema the program cannot express (a union of several types, a required column the
//! writer lacks, a type that does not fit its column, recursion) has no program: its
//! records take the `Value` path, which also words every error.

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use arrow_schema::{DataType, Fields, TimeUnit};

use super::{AvroDecoder, EXTRA_ITEMS, Reader, Top, twos_complement, uuid_text};
use crate::typed::columns::{Col, Columns};
use crate::typed::{MAX_DEPTH, arrow};

/// How one writer value fills one column buffer.
enum Step<'a> {
    /// Writer type `null`: a null (refused by a required column).
    Null {
        nullable: bool,
    },
    Bool,
    /// int into an int, long, float, double or decimal(p, s) column.
    Int {
        decimal: Option<(u8, i8)>,
    },
    /// long into a long or decimal(p, s) column.
    Long {
        decimal: Option<(u8, i8)>,
    },
    /// float into a float or double column.
    Float,
    Double,
    /// UTF-8 bytes into a string column.
    Str,
    /// Bytes (`fixed`: exactly `fixed` of them) into a binary or fixed column.
    Bytes {
        fixed: Option<usize>,
    },
    Enum(&'a [String]),
    Uuid,
    Decimal {
        fixed: Option<usize>,
        scale: u32,
        p: u8,
        s: i8,
    },
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    Record(RecordProgram<'a>),
    Array(Box<Step<'a>>),
    Map(Box<Step<'a>>),
    /// A union of null and one type: `branches[i]` is `None` for the null branch.
    Union {
        branches: Vec<Option<Step<'a>>>,
        nullable: bool,
    },
}

/// Where a writer record field goes.
enum Target<'a> {
    /// Into column (or struct field) `index`.
    Column(usize, Step<'a>),
    /// Nowhere: decoded and dropped.
    Skip(&'a Schema),
}

/// A writer record against the struct (or top-level) columns it fills.
struct RecordProgram<'a> {
    fields: Vec<Target<'a>>,
    /// Columns no writer field fills: null in every row (all nullable).
    missing: Vec<usize>,
}

/// The program of one writer schema against a table's value columns.
pub(crate) struct Program<'d, 'a> {
    decoder: &'d AvroDecoder<'a>,
    top: RecordProgram<'a>,
    /// The record's variant index when the top level is a union of null and the record.
    optional: Option<usize>,
    /// Whether every column is nullable (a null top-level record then fits).
    all_nullable: bool,
}

struct Compiler<'d, 'a> {
    decoder: &'d AvroDecoder<'a>,
}

impl<'a> Compiler<'_, 'a> {
    fn record(
        &self,
        r: &'a RecordSchema,
        fields: &Fields,
        depth: usize,
    ) -> Option<RecordProgram<'a>> {
        let mut filled = vec![false; fields.len()];
        let mut targets = Vec::with_capacity(r.fields.len());
        for f in &r.fields {
            match fields.iter().position(|c| c.name() == &f.name) {
                Some(i) => {
                    if filled[i] {
                        return None;
                    }
                    filled[i] = true;
                    let c = &fields[i];
                    targets.push(Target::Column(
                        i,
                        self.step(&f.schema, c.data_type(), c.is_nullable(), depth + 1)?,
                    ));
                }
                None => targets.push(Target::Skip(&f.schema)),
            }
        }
        let mut missing = Vec::new();
        for (i, c) in fields.iter().enumerate() {
            if !filled[i] {
                if !c.is_nullable() {
                    return None;
                }
                missing.push(i);
            }
        }
        Some(RecordProgram {
            fields: targets,
            missing,
        })
    }

    fn step(
        &self,
        schema: &'a Schema,
        dt: &DataType,
        nullable: bool,
        depth: usize,
    ) -> Option<Step<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let decimal = |dt: &DataType| match dt {
            DataType::Decimal128(p, s) => Some(Some((*p, *s))),
            _ => None,
        };
        let string = matches!(dt, DataType::Utf8 | DataType::LargeUtf8);
        let binary = matches!(dt, DataType::Binary | DataType::LargeBinary);
        Some(match schema {
            Schema::Null => Step::Null { nullable },
            Schema::Boolean if *dt == DataType::Boolean => Step::Bool,
            Schema::Int => match dt {
                DataType::Int32 | DataType::Int64 | DataType::Float32 | DataType::Float64 => {
                    Step::Int { decimal: None }
                }
                other => Step::Int {
                    decimal: decimal(other)?,
                },
            },
            Schema::Long => match dt {
                DataType::Int64 => Step::Long { decimal: None },
                other => Step::Long {
                    decimal: decimal(other)?,
                },
            },
            Schema::Float if matches!(dt, DataType::Float32 | DataType::Float64) => Step::Float,
            Schema::Double if *dt == DataType::Float64 => Step::Double,
            Schema::String if string => Step::Str,
            Schema::Uuid if string => Step::Uuid,
            Schema::Enum(e) if string => Step::Enum(&e.symbols),
            Schema::Bytes | Schema::BigDecimal if binary => Step::Bytes { fixed: None },
            Schema::Bytes | Schema::BigDecimal if matches!(dt, DataType::FixedSizeBinary(_)) => {
                Step::Bytes { fixed: None }
            }
            Schema::Fixed(f) => fixed_step(f.size, dt)?,
            Schema::Duration => fixed_step(12, dt)?,
            Schema::Decimal(d) => {
                let DataType::Decimal128(p, s) = dt else {
                    return None;
                };
                let fixed = match self.decoder.ctx.resolve(&d.inner).ok()? {
                    Schema::Fixed(f) => Some(f.size),
                    _ => None,
                };
                Step::Decimal {
                    fixed,
                    scale: u32::try_from(d.scale).ok()?,
                    p: *p,
                    s: *s,
                }
            }
            Schema::Date if *dt == DataType::Date32 => Step::Date,
            Schema::TimeMillis if *dt == DataType::Time64(TimeUnit::Microsecond) => {
                Step::TimeMillis
            }
            Schema::TimeMicros if *dt == DataType::Time64(TimeUnit::Microsecond) => {
                Step::TimeMicros
            }
            Schema::TimestampMillis | Schema::LocalTimestampMillis
                if matches!(dt, DataType::Timestamp(TimeUnit::Microsecond, _)) =>
            {
                Step::TimestampMillis
            }
            Schema::TimestampMicros | Schema::LocalTimestampMicros
                if matches!(dt, DataType::Timestamp(TimeUnit::Microsecond, _)) =>
            {
                Step::TimestampMicros
            }
            Schema::TimestampNanos | Schema::LocalTimestampNanos
                if matches!(dt, DataType::Timestamp(TimeUnit::Microsecond, _)) =>
            {
                Step::TimestampNanos
            }
            Schema::Record(r) => match dt {
                DataType::Struct(fields) => Step::Record(self.record(r, fields, depth)?),
                _ => return None,
            },
            Schema::Array(a) => match dt {
                DataType::List(item) => Step::Array(Box::new(self.step(
                    &a.items,
                    item.data_type(),
                    item.is_nullable(),
                    depth + 1,
                )?)),
                _ => return None,
            },
            Schema::Map(m) => match dt {
                DataType::Map(entries, _) => {
                    let DataType::Struct(kv) = entries.data_type() else {
                        return None;
                    };
                    if kv.len() != 2
                        || !matches!(kv[0].data_type(), DataType::Utf8 | DataType::LargeUtf8)
                    {
                        return None;
                    }
                    let value = &kv[1];
                    Step::Map(Box::new(self.step(
                        &m.types,
                        value.data_type(),
                        value.is_nullable(),
                        depth + 1,
                    )?))
                }
                _ => return None,
            },
            Schema::Union(u) => {
                let variants = u.variants();
                let non_null = variants
                    .iter()
                    .filter(|v| !matches!(v, Schema::Null))
                    .count();
                if non_null > 1 {
                    return None;
                }
                let mut branches = Vec::with_capacity(variants.len());
                for v in variants {
                    branches.push(match v {
                        Schema::Null => None,
                        v => Some(self.step(v, dt, nullable, depth + 1)?),
                    });
                }
                Step::Union { branches, nullable }
            }
            Schema::Ref { .. } => {
                let resolved = self.decoder.ctx.resolve(schema).ok()?;
                if matches!(resolved, Schema::Ref { .. }) {
                    return None;
                }
                self.step(resolved, dt, nullable, depth + 1)?
            }
            _ => return None,
        })
    }
}

fn fixed_step<'a>(size: usize, dt: &DataType) -> Option<Step<'a>> {
    match dt {
        DataType::Binary | DataType::LargeBinary => Some(Step::Bytes { fixed: Some(size) }),
        DataType::FixedSizeBinary(n) if usize::try_from(*n).ok() == Some(size) => {
            Some(Step::Bytes { fixed: Some(size) })
        }
        _ => None,
    }
}

impl<'d, 'a> Program<'d, 'a> {
    /// The program of `decoder`'s schema against the table's value columns `fields`, if
    /// one can express it (else the `Value` path decodes these records).
    pub(crate) fn new(decoder: &'d AvroDecoder<'a>, fields: &Fields) -> Option<Program<'d, 'a>> {
        let compiler = Compiler { decoder };
        let (r, optional) = match decoder.ctx.top().ok()? {
            Top::Record(r) => (r, None),
            Top::OptionalRecord { record, r } => (r, Some(record)),
            Top::Other(_) => return None,
        };
        let top = compiler.record(r, fields, 0)?;
        Some(Program {
            decoder,
            top,
            optional,
            all_nullable: fields.iter().all(|f| f.is_nullable()),
        })
    }

    /// Decodes one payload (no header) into one row of `columns`; on error the columns are
    /// as they were.
    pub(crate) fn append(&self, payload: &[u8], columns: &mut Columns) -> Result<(), String> {
        let mut r = Reader {
            buf: payload,
            budget: payload.len().saturating_add(EXTRA_ITEMS),
            ctx: &self.decoder.ctx,
        };
        let result = self.row(&mut r, &mut columns.cols).and_then(|()| {
            if r.buf.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} bytes left after the value: the payload does not match its schema",
                    r.buf.len()
                ))
            }
        });
        match result {
            Ok(()) => columns.row_done(),
            Err(_) => columns.roll_back(),
        }
        result
    }

    fn row(&self, r: &mut Reader<'_, '_, 'a>, cols: &mut [Col]) -> Result<(), String> {
        if let Some(record) = self.optional
            && r.union_index(2)? != record
        {
            if !self.all_nullable {
                return Err("a null record for a table with required columns".into());
            }
            cols.iter_mut().for_each(Col::push_null);
            return Ok(());
        }
        record(&self.top, r, cols)
    }
}

fn record<'a>(
    p: &RecordProgram<'a>,
    r: &mut Reader<'_, '_, 'a>,
    cols: &mut [Col],
) -> Result<(), String> {
    for target in &p.fields {
        match target {
            Target::Column(i, step) => append(step, r, &mut cols[*i])?,
            Target::Skip(schema) => {
                r.value(schema, 1)?;
            }
        }
    }
    for &i in &p.missing {
        cols[i].push_null();
    }
    Ok(())
}

/// [`arrow::rescale`], with the reason when it does not fit.
fn rescale(unscaled: i128, scale: u32, p: u8, s: i8) -> Result<i128, String> {
    arrow::rescale(unscaled, scale, p, s)
        .ok_or_else(|| format!("decimal {unscaled}e-{scale} does not fit decimal({p}, {s})"))
}

fn mismatch() -> String {
    "a value does not match its column buffer".into()
}

fn push_bytes(col: &mut Col, bytes: &[u8]) -> Result<(), String> {
    match col {
        Col::Var(offsets, data, v) => {
            data.extend_from_slice(bytes);
            offsets.push(data.len() as i64);
            v.push(true);
        }
        Col::Fixed(n, data, v) => {
            if bytes.len() != *n {
                return Err(format!("{} bytes do not fit fixed({n})", bytes.len()));
            }
            data.extend_from_slice(bytes);
            v.push(true);
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn push_i64(col: &mut Col, x: i64) -> Result<(), String> {
    match col {
        Col::I64(values, v) => {
            values.push(x);
            v.push(true);
            Ok(())
        }
        _ => Err(mismatch()),
    }
}

fn push_i32(col: &mut Col, x: i32) -> Result<(), String> {
    match col {
        Col::I32(values, v) => {
            values.push(x);
            v.push(true);
            Ok(())
        }
        _ => Err(mismatch()),
    }
}

fn push_dec(col: &mut Col, x: i128) -> Result<(), String> {
    match col {
        Col::Dec(values, v) => {
            values.push(x);
            v.push(true);
            Ok(())
        }
        _ => Err(mismatch()),
    }
}

fn null(col: &mut Col, nullable: bool) -> Result<(), String> {
    if !nullable {
        return Err("required, but null".into());
    }
    col.push_null();
    Ok(())
}

fn append<'a>(step: &Step<'a>, r: &mut Reader<'_, '_, 'a>, col: &mut Col) -> Result<(), String> {
    match step {
        Step::Null { nullable } => null(col, *nullable),
        Step::Bool => {
            let b = match r.take(1)?[0] {
                0 => false,
                1 => true,
                b => return Err(format!("boolean byte {b} is neither 0 nor 1")),
            };
            match col {
                Col::Bool(values, v) => {
                    values.push(b);
                    v.push(true);
                    Ok(())
                }
                _ => Err(mismatch()),
            }
        }
        Step::Int { decimal } => {
            let i = r.int()?;
            match (col, decimal) {
                (col, Some((p, s))) => push_dec(col, rescale(i128::from(i), 0, *p, *s)?),
                (Col::I32(values, v), None) => {
                    values.push(i);
                    v.push(true);
                    Ok(())
                }
                (Col::I64(values, v), None) => {
                    values.push(i64::from(i));
                    v.push(true);
                    Ok(())
                }
                (Col::F32(values, v), None) => {
                    values.push(i as f32);
                    v.push(true);
                    Ok(())
                }
                (Col::F64(values, v), None) => {
                    values.push(f64::from(i));
                    v.push(true);
                    Ok(())
                }
                _ => Err(mismatch()),
            }
        }
        Step::Long { decimal } => {
            let l = r.long()?;
            match decimal {
                Some((p, s)) => push_dec(col, rescale(i128::from(l), 0, *p, *s)?),
                None => push_i64(col, l),
            }
        }
        Step::Float => {
            let b = r.take(4)?;
            let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            match col {
                Col::F32(values, v) => {
                    values.push(x);
                    v.push(true);
                    Ok(())
                }
                Col::F64(values, v) => {
                    values.push(f64::from(x));
                    v.push(true);
                    Ok(())
                }
                _ => Err(mismatch()),
            }
        }
        Step::Double => {
            let b = r.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            match col {
                Col::F64(values, v) => {
                    values.push(f64::from_le_bytes(a));
                    v.push(true);
                    Ok(())
                }
                _ => Err(mismatch()),
            }
        }
        Step::Str => {
            let bytes = r.bytes()?;
            std::str::from_utf8(bytes).map_err(|e| format!("string is not UTF-8: {e}"))?;
            push_bytes(col, bytes)
        }
        Step::Bytes { fixed } => {
            let bytes = match fixed {
                Some(n) => r.take(*n)?,
                None => r.bytes()?,
            };
            push_bytes(col, bytes)
        }
        Step::Enum(symbols) => {
            let i = r.int()?;
            let symbol = usize::try_from(i)
                .ok()
                .and_then(|i| symbols.get(i))
                .ok_or_else(|| format!("enum index {i} out of range"))?;
            push_bytes(col, symbol.as_bytes())
        }
        Step::Uuid => {
            let bytes = r.bytes()?;
            push_bytes(col, uuid_text(bytes)?.as_bytes())
        }
        Step::Decimal { fixed, scale, p, s } => {
            let bytes = match fixed {
                Some(n) => r.take(*n)?,
                None => r.bytes()?,
            };
            push_dec(col, rescale(twos_complement(bytes)?, *scale, *p, *s)?)
        }
        Step::Date => push_i32(col, r.int()?),
        Step::TimeMillis => push_i64(col, i64::from(r.int()?) * 1000),
        Step::TimeMicros | Step::TimestampMicros => push_i64(col, r.long()?),
        Step::TimestampMillis => {
            let ms = r.long()?;
            push_i64(
                col,
                ms.checked_mul(1000)
                    .ok_or_else(|| format!("timestamp {ms} ms out of range"))?,
            )
        }
        Step::TimestampNanos => push_i64(col, r.long()?.div_euclid(1000)),
        Step::Record(p) => match col {
            Col::Struct(children, v) => {
                record(p, r, children)?;
                v.push(true);
                Ok(())
            }
            _ => Err(mismatch()),
        },
        Step::Array(item) => match col {
            Col::List(offsets, child, v) => {
                loop {
                    let n = r.block()?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        append(item, r, child)?;
                    }
                }
                offsets.push(child.len() as i64);
                v.push(true);
                Ok(())
            }
            _ => Err(mismatch()),
        },
        Step::Map(value) => match col {
            Col::Map(offsets, keys, values, v) => {
                loop {
                    let n = r.block()?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        let k = r.bytes()?;
                        std::str::from_utf8(k).map_err(|e| format!("string is not UTF-8: {e}"))?;
                        push_bytes(keys, k)?;
                        append(value, r, values)?;
                    }
                }
                offsets.push(keys.len() as i64);
                v.push(true);
                Ok(())
            }
            _ => Err(mismatch()),
        },
        Step::Union { branches, nullable } => {
            let i = r.union_index(branches.len())?;
            match &branches[i] {
                None => null(col, *nullable),
                Some(step) => append(step, r, col),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value as AvroValue;
    use arrow_array::ArrayRef;
    use arrow_schema::{Field, Fields};
    use floe_registry::schema::{Parsed, SchemaType};
    use iceberg::spec::Schema as IcebergSchema;

    use super::Program;
    use crate::typed::columns::Columns;
    use crate::typed::{Decoder, FieldIds, Value, build_columns, check_fits, value_fields};

    /// Every type the program handles: nested and optional records, arrays of records, maps,
    /// decimals on bytes and fixed, enums, fixed, uuid, dates, times and timestamps.
    const WIDE: &str = r#"{"type":"record","name":"Wide","namespace":"t","fields":[
        {"name":"id","type":"long"},
        {"name":"qty","type":"int"},
        {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"cost","type":{"type":"fixed","name":"D","size":6,"logicalType":"decimal","precision":12,"scale":3}},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"at_us","type":{"type":"long","logicalType":"local-timestamp-micros"}},
        {"name":"day","type":{"type":"int","logicalType":"date"}},
        {"name":"tod","type":{"type":"int","logicalType":"time-millis"}},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
        {"name":"ship","type":{"type":"record","name":"Address","fields":[
            {"name":"city","type":"string"},{"name":"zip","type":["string","null"]}]}},
        {"name":"bill","type":["null","Address"],"default":null},
        {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
            {"name":"sku","type":"string"},{"name":"n","type":"int"}]}}},
        {"name":"attrs","type":{"type":"map","values":["null","double"]}},
        {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
        {"name":"uid","type":{"type":"string","logicalType":"uuid"}},
        {"name":"ratio","type":"float"},
        {"name":"raw","type":"bytes"},
        {"name":"ok","type":"boolean"}
    ]}"#;

    fn parsed(text: &str) -> Parsed {
        Parsed::parse(SchemaType::Avro, text, &[]).unwrap()
    }

    fn schema(p: &Parsed) -> &apache_avro::Schema {
        match p {
            Parsed::Avro(a) => a.schema(),
            _ => unreachable!(),
        }
    }

    /// The Arrow value columns of a table made from `p`.
    fn table(p: &Parsed) -> Fields {
        let fields = value_fields(p, None, &mut FieldIds::new(None, 1)).unwrap();
        let ice = IcebergSchema::builder()
            .with_fields(fields)
            .build()
            .unwrap();
        iceberg::arrow::schema_to_arrow_schema(&ice)
            .unwrap()
            .fields()
            .clone()
    }

    fn wide_value(i: i64) -> AvroValue {
        let address = |city: &str, zip: Option<&str>| {
            AvroValue::Record(vec![
                ("city".into(), AvroValue::String(city.into())),
                (
                    "zip".into(),
                    match zip {
                        Some(z) => AvroValue::Union(0, Box::new(AvroValue::String(z.into()))),
                        None => AvroValue::Union(1, Box::new(AvroValue::Null)),
                    },
                ),
            ])
        };
        let opt = |present: bool, v: AvroValue| {
            if present {
                AvroValue::Union(1, Box::new(v))
            } else {
                AvroValue::Union(0, Box::new(AvroValue::Null))
            }
        };
        AvroValue::Record(vec![
            ("id".into(), AvroValue::Long(i * 1_000_003 - 7)),
            ("qty".into(), AvroValue::Int((i % 17) as i32 - 8)),
            (
                "price".into(),
                AvroValue::Decimal(apache_avro::Decimal::from(
                    (i * 997 - 50_000).to_be_bytes().to_vec(),
                )),
            ),
            (
                "cost".into(),
                AvroValue::Decimal(apache_avro::Decimal::from(
                    (i * 31_337 - 1).to_be_bytes()[2..].to_vec(),
                )),
            ),
            (
                "at".into(),
                AvroValue::TimestampMillis(1_700_000_000_000 + i),
            ),
            (
                "at_us".into(),
                AvroValue::LocalTimestampMicros(i * 1_000_001),
            ),
            ("day".into(), AvroValue::Date(19_000 + i as i32)),
            ("tod".into(), AvroValue::TimeMillis(i as i32 * 1000)),
            (
                "note".into(),
                opt(i % 3 != 0, AvroValue::String(format!("n{i}"))),
            ),
            (
                "status".into(),
                AvroValue::Enum((i % 2) as u32, ["NEW", "PAID"][(i % 2) as usize].into()),
            ),
            (
                "ship".into(),
                address("Lyon", (i % 2 == 0).then_some("69001")),
            ),
            ("bill".into(), opt(i % 4 == 1, address("Paris", None))),
            (
                "lines".into(),
                AvroValue::Array(
                    (0..i % 4)
                        .map(|j| {
                            AvroValue::Record(vec![
                                ("sku".into(), AvroValue::String(format!("s{j}"))),
                                ("n".into(), AvroValue::Int(j as i32)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "attrs".into(),
                AvroValue::Map(
                    (0..i % 3)
                        .map(|j| {
                            (
                                format!("k{j}"),
                                opt(j != 1, AvroValue::Double(j as f64 / 3.0)),
                            )
                        })
                        .collect(),
                ),
            ),
            (
                "hash".into(),
                AvroValue::Fixed(4, (i as u32).to_be_bytes().to_vec()),
            ),
            (
                "uid".into(),
                AvroValue::Uuid(uuid::Uuid::from_u128(
                    0x1234_5678_9abc_def0_u128 * i as u128,
                )),
            ),
            ("ratio".into(), AvroValue::Float(i as f32 / 7.0)),
            (
                "raw".into(),
                AvroValue::Bytes(vec![i as u8; (i % 5) as usize]),
            ),
            ("ok".into(), AvroValue::Boolean(i % 2 == 0)),
        ])
    }

    /// Decodes `payloads` (written with `writer`) into the columns `fields` both ways:
    /// the same records are accepted, into equal arrays. Returns how many were accepted.
    fn same_as_value_path(writer: &Parsed, fields: &Fields, payloads: &[Vec<u8>]) -> usize {
        let decoder = Decoder::new(writer);
        let program = Program::new(decoder.avro().unwrap(), fields).expect("a program");
        let mut columns = Columns::new(fields).unwrap();
        let mut values: Vec<Value> = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let slow = decoder
                .decode(payload)
                .and_then(|v| check_fits(fields, &v).map(|()| v));
            let fast = program.append(payload, &mut columns);
            assert_eq!(
                fast.is_ok(),
                slow.is_ok(),
                "payload {i}: {fast:?} vs {slow:?}"
            );
            if let Ok(v) = slow {
                values.push(v);
            }
            assert_eq!(columns.rows(), values.len());
        }
        let refs: Vec<&Value> = values.iter().collect();
        let want = build_columns(fields, &refs).unwrap();
        let got: Vec<ArrayRef> = columns.finish(fields).unwrap();
        for ((f, a), b) in fields.iter().zip(&got).zip(&want) {
            assert_eq!(a.to_data(), b.to_data(), "column {}", f.name());
        }
        values.len()
    }

    fn payloads(p: &Parsed, n: i64, value: impl Fn(i64) -> AvroValue) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| apache_avro::to_avro_datum(schema(p), value(i)).unwrap())
            .collect()
    }

    #[test]
    fn decodes_into_the_same_columns_as_the_value_path() {
        let p = parsed(WIDE);
        let good = payloads(&p, 64, wide_value);
        assert_eq!(same_as_value_path(&p, &table(&p), &good), 64);
    }

    /// Truncated, extended and corrupted payloads between good ones: each is refused or
    /// taken exactly as the `Value` path does, and a refused one leaves nothing behind.
    #[test]
    fn bad_payloads_roll_back() {
        let p = parsed(WIDE);
        let good = payloads(&p, 8, wide_value);
        let mut mixed = Vec::new();
        let mut seed = 0x9e37_79b9_u32;
        for g in &good {
            for n in (0..g.len()).step_by(3) {
                mixed.push(g[..n].to_vec());
                mixed.push(g.clone());
            }
            let mut longer = g.clone();
            longer.push(0);
            mixed.push(longer);
            for _ in 0..40 {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let mut flipped = g.clone();
                let at = (seed >> 8) as usize % flipped.len();
                flipped[at] ^= 1 << (seed % 8);
                mixed.push(flipped);
            }
        }
        let accepted = same_as_value_path(&p, &table(&p), &mixed);
        assert!(accepted >= good.len() * 10, "{accepted}");
        assert!(accepted < mixed.len());
    }

    /// An older writer against an evolved table: int into long, decimal and double, float
    /// into double, a field the table lacks skipped, a column the writer lacks null.
    #[test]
    fn older_writers_widen_and_miss_columns() {
        let v1 = parsed(
            r#"{"type":"record","name":"R","fields":[
                {"name":"a","type":"int"},{"name":"b","type":"int"},{"name":"c","type":"int"},
                {"name":"d","type":"float"},{"name":"gone","type":{"type":"array","items":"string"}},
                {"name":"e","type":"long"}]}"#,
        );
        let v2 = parsed(
            r#"{"type":"record","name":"R","fields":[
                {"name":"e","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":1}},
                {"name":"a","type":"long"},
                {"name":"b","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}},
                {"name":"c","type":"double"},{"name":"d","type":"double"},
                {"name":"added","type":["null","string"],"default":null}]}"#,
        );
        let value = |i: i64| {
            AvroValue::Record(vec![
                ("a".into(), AvroValue::Int(i as i32 - 3)),
                // 1000 does not fit decimal(5, 2): that record is refused both ways.
                (
                    "b".into(),
                    AvroValue::Int(if i == 5 { 1000 } else { i as i32 }),
                ),
                ("c".into(), AvroValue::Int(-(i as i32))),
                ("d".into(), AvroValue::Float(i as f32 * 0.25)),
                (
                    "gone".into(),
                    AvroValue::Array(vec![AvroValue::String("x".into()); i as usize % 3]),
                ),
                ("e".into(), AvroValue::Long(i << 40)),
            ])
        };
        let good = payloads(&v1, 10, value);
        assert_eq!(same_as_value_path(&v1, &table(&v2), &good), 9);
    }

    #[test]
    fn a_null_top_level_record_nulls_every_column() {
        let p =
            parsed(r#"["null",{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}]"#);
        let record = parsed(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        let payloads = vec![
            apache_avro::to_avro_datum(schema(&p), AvroValue::Union(0, Box::new(AvroValue::Null)))
                .unwrap(),
            apache_avro::to_avro_datum(
                schema(&p),
                AvroValue::Union(
                    1,
                    Box::new(AvroValue::Record(vec![("a".into(), AvroValue::Int(4))])),
                ),
            )
            .unwrap(),
        ];
        assert_eq!(same_as_value_path(&p, &table(&record), &payloads), 2);
    }

    /// What a program cannot express is left to the `Value` path.
    #[test]
    fn no_program_for_what_it_cannot_express() {
        let either = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"x","type":["null","int","string"]}]}"#,
        );
        let d = Decoder::new(&either);
        assert!(Program::new(d.avro().unwrap(), &table(&either)).is_none());
        let string = parsed(r#""string""#);
        let d = Decoder::new(&string);
        assert!(Program::new(d.avro().unwrap(), &table(&string)).is_none());
        // A required column the writer does not have.
        let r = parsed(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        let d = Decoder::new(&r);
        let required = Fields::from(vec![
            Field::new("a", arrow_schema::DataType::Int32, true),
            Field::new("b", arrow_schema::DataType::Int32, false),
        ]);
        assert!(Program::new(d.avro().unwrap(), &required).is_none());
        // A type that does not fit its column.
        let as_string = Fields::from(vec![Field::new("a", arrow_schema::DataType::Utf8, true)]);
        assert!(Program::new(d.avro().unwrap(), &as_string).is_none());
    }
}
