//! Avro schemas as Iceberg columns, and Avro binary payloads as [`Value`]s (see the
//! [parent module](super) for the mapping).
//!
//! The decoder walks the writer schema over the payload and builds [`Value`]s directly (no
//! intermediate `apache_avro::types::Value`). Named types used a second time are
//! `Schema::Ref`s in a parsed schema: they are looked up by full name (or alias) in a table
//! built on the first reference met.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::schema::{Name, RecordSchema, UnionSchema};
use iceberg::spec::{
    ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, StructType, Type,
};

pub(crate) mod direct;

use super::ids::child_path;
use super::{FieldIds, FieldName, MAX_DEPTH, VALUE_COLUMN, Value, single, too_deep};

/// Items of arrays and maps a payload may hold beyond its length in bytes (an item of a
/// type encoded in zero bytes, `null` or an empty record, takes no bytes).
const EXTRA_ITEMS: usize = 4096;

/// Named types (records, enums, fixed, decimals on named fixed) by full name and aliases.
type Names<'a> = HashMap<Name, &'a Schema>;

fn collect_names<'a>(schema: &'a Schema, out: &mut Names<'a>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let mut named = |name: &Name, aliases: &Option<Vec<apache_avro::schema::Alias>>| {
        out.entry(name.clone()).or_insert(schema);
        for alias in aliases.iter().flatten() {
            out.entry(alias.fully_qualified_name(&name.namespace))
                .or_insert(schema);
        }
    };
    match schema {
        Schema::Record(r) => {
            named(&r.name, &r.aliases);
            for f in &r.fields {
                collect_names(&f.schema, out, depth + 1);
            }
        }
        Schema::Enum(e) => named(&e.name, &e.aliases),
        Schema::Fixed(f) => named(&f.name, &f.aliases),
        Schema::Decimal(d) => {
            if let Schema::Fixed(f) = d.inner.as_ref() {
                named(&f.name, &f.aliases);
            }
        }
        Schema::Array(a) => collect_names(&a.items, out, depth + 1),
        Schema::Map(m) => collect_names(&m.types, out, depth + 1),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_names(v, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// A schema with the named types it references.
struct Ctx<'a> {
    root: &'a Schema,
    names: OnceLock<Names<'a>>,
    /// The field names of every record of the schema, shared by all the values decoded
    /// (by the address of the record's schema).
    field_names: OnceLock<HashMap<usize, Vec<FieldName>>>,
}

impl<'a> Ctx<'a> {
    fn new(root: &'a Schema) -> Ctx<'a> {
        Ctx {
            root,
            names: OnceLock::new(),
            field_names: OnceLock::new(),
        }
    }

    fn names(&self) -> &Names<'a> {
        self.names.get_or_init(|| {
            let mut names = HashMap::new();
            collect_names(self.root, &mut names, 0);
            names
        })
    }

    /// The shared field names of record `r` (`None` for a record not found by name).
    fn field_names(&self, r: &RecordSchema) -> Option<&[FieldName]> {
        let map = self.field_names.get_or_init(|| {
            self.names()
                .values()
                .filter_map(|s| match s {
                    Schema::Record(r) => Some((
                        std::ptr::from_ref(r) as usize,
                        r.fields
                            .iter()
                            .map(|f| FieldName::from(f.name.as_str()))
                            .collect(),
                    )),
                    _ => None,
                })
                .collect()
        });
        map.get(&(std::ptr::from_ref(r) as usize))
            .map(Vec::as_slice)
    }

    /// `schema`, or the definition it references.
    fn resolve(&self, schema: &'a Schema) -> Result<&'a Schema, String> {
        match schema {
            Schema::Ref { name } => self
                .names()
                .get(name)
                .copied()
                .ok_or_else(|| format!("unknown named type {}", name.fullname(None))),
            other => Ok(other),
        }
    }

    /// What the top level of the schema is as a table.
    fn top(&self) -> Result<Top<'a>, String> {
        let root = self.resolve(self.root)?;
        if let Schema::Record(r) = root {
            return Ok(Top::Record(r));
        }
        if let Schema::Union(u) = root {
            let variants = u.variants();
            if variants.len() == 2 {
                for (null, record) in [(0, 1), (1, 0)] {
                    if matches!(variants[null], Schema::Null)
                        && let Schema::Record(r) = self.resolve(&variants[record])?
                    {
                        return Ok(Top::OptionalRecord { record, r });
                    }
                }
            }
        }
        Ok(Top::Other(root))
    }

    /// The names of the non-null branches of a union (by variant index), as the fields of
    /// the struct a union of several types becomes.
    fn branch_names(&self, union: &'a UnionSchema) -> Vec<(usize, String)> {
        union
            .variants()
            .iter()
            .enumerate()
            .filter(|(_, v)| !matches!(v, Schema::Null))
            .map(|(i, _)| (i, branch_name(union, i)))
            .collect()
    }
}

/// The name of a named type.
fn named(s: &Schema) -> Option<&Name> {
    match s {
        Schema::Ref { name } => Some(name),
        Schema::Record(r) => Some(&r.name),
        Schema::Enum(e) => Some(&e.name),
        Schema::Fixed(f) => Some(&f.name),
        _ => None,
    }
}

/// A branch's type name: a named type's simple name, else the type's name.
fn simple_name(s: &Schema) -> &str {
    match named(s) {
        Some(n) => &n.name,
        None => primitive_name(s),
    }
}

/// The field name of variant `i` of a union of several types: its type name, or for a
/// named type whose simple name another branch shares, its full name with `_` for `.`.
fn branch_name(union: &UnionSchema, i: usize) -> String {
    let variants = union.variants();
    let Some(v) = variants.get(i) else {
        return String::new();
    };
    let simple = simple_name(v);
    let clash = variants
        .iter()
        .enumerate()
        .any(|(j, w)| j != i && simple_name(w) == simple);
    match named(v) {
        Some(name) if clash => name.fullname(None).replace('.', "_"),
        _ => simple.to_string(),
    }
}

fn primitive_name(s: &Schema) -> &'static str {
    match s {
        Schema::Null => "null",
        Schema::Boolean => "boolean",
        Schema::Int => "int",
        Schema::Long => "long",
        Schema::Float => "float",
        Schema::Double => "double",
        Schema::Bytes => "bytes",
        Schema::String => "string",
        Schema::Array(_) => "array",
        Schema::Map(_) => "map",
        Schema::Union(_) => "union",
        Schema::Record(_) => "record",
        Schema::Enum(_) => "enum",
        Schema::Fixed(_) => "fixed",
        Schema::Decimal(_) => "decimal",
        Schema::BigDecimal => "big_decimal",
        Schema::Uuid => "uuid",
        Schema::Date => "date",
        Schema::TimeMillis => "time_millis",
        Schema::TimeMicros => "time_micros",
        Schema::TimestampMillis => "timestamp_millis",
        Schema::TimestampMicros => "timestamp_micros",
        Schema::TimestampNanos => "timestamp_nanos",
        Schema::LocalTimestampMillis => "local_timestamp_millis",
        Schema::LocalTimestampMicros => "local_timestamp_micros",
        Schema::LocalTimestampNanos => "local_timestamp_nanos",
        Schema::Duration => "duration",
        Schema::Ref { .. } => "ref",
    }
}

enum Top<'a> {
    /// A record: its fields are the columns.
    Record(&'a RecordSchema),
    /// A union of null and a record (`record` is the record's variant index): the record's
    /// fields are the columns, a null value has them all null.
    OptionalRecord { record: usize, r: &'a RecordSchema },
    /// Anything else: one column `value`.
    Other(&'a Schema),
}

// ---------------------------------------------------------------------------------------
// Schema -> Iceberg columns.
// ---------------------------------------------------------------------------------------

/// The Iceberg columns of values of the Avro schema `schema` (see
/// [`super::value_fields`]).
pub fn value_fields(schema: &Schema, ids: &mut FieldIds) -> Result<Vec<NestedFieldRef>, String> {
    let ctx = Ctx::new(schema);
    let mut mapper = Mapper {
        ctx: &ctx,
        ids,
        stack: Vec::new(),
    };
    match ctx.top()? {
        Top::Record(r) | Top::OptionalRecord { r, .. } => mapper.record_fields(r, "", 0),
        Top::Other(s) => {
            let id = mapper.ids.id(VALUE_COLUMN);
            Ok(mapper
                .ty(s, VALUE_COLUMN, 0)?
                .map(|ty| NestedField::optional(id, VALUE_COLUMN, ty).into())
                .into_iter()
                .collect())
        }
    }
}

struct Mapper<'c, 'a, 'i> {
    ctx: &'c Ctx<'a>,
    ids: &'i mut FieldIds,
    /// Records being mapped (a reference to one of them is a recursion).
    stack: Vec<&'a Name>,
}

fn primitive(p: PrimitiveType) -> Option<Type> {
    Some(Type::Primitive(p))
}

impl<'a> Mapper<'_, 'a, '_> {
    fn record_fields(
        &mut self,
        r: &'a RecordSchema,
        path: &str,
        depth: usize,
    ) -> Result<Vec<NestedFieldRef>, String> {
        if self.stack.contains(&&r.name) {
            return Err(format!(
                "record {} is recursive: a recursive type cannot be a table",
                r.name.fullname(None)
            ));
        }
        self.stack.push(&r.name);
        let mut fields = Vec::with_capacity(r.fields.len());
        for f in &r.fields {
            let p = child_path(path, &f.name);
            let id = self.ids.id(&p);
            if let Some(ty) = self
                .ty(&f.schema, &p, depth + 1)
                .map_err(|e| format!("field {p}: {e}"))?
            {
                fields.push(NestedField::optional(id, &f.name, ty).into());
            }
        }
        self.stack.pop();
        Ok(fields)
    }

    /// The Iceberg type of `schema` at `path` (None: nothing to store).
    fn ty(&mut self, schema: &'a Schema, path: &str, depth: usize) -> Result<Option<Type>, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(match self.ctx.resolve(schema)? {
            Schema::Null => None,
            Schema::Boolean => primitive(PrimitiveType::Boolean),
            Schema::Int => primitive(PrimitiveType::Int),
            Schema::Long => primitive(PrimitiveType::Long),
            Schema::Float => primitive(PrimitiveType::Float),
            Schema::Double => primitive(PrimitiveType::Double),
            Schema::Bytes | Schema::Fixed(_) | Schema::BigDecimal | Schema::Duration => {
                primitive(PrimitiveType::Binary)
            }
            Schema::String | Schema::Enum(_) | Schema::Uuid => primitive(PrimitiveType::String),
            Schema::Date => primitive(PrimitiveType::Date),
            Schema::TimeMillis | Schema::TimeMicros => primitive(PrimitiveType::Time),
            Schema::TimestampMillis | Schema::TimestampMicros | Schema::TimestampNanos => {
                primitive(PrimitiveType::Timestamptz)
            }
            Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => primitive(PrimitiveType::Timestamp),
            Schema::Decimal(d) => {
                if d.precision > 38 {
                    return Err(format!(
                        "decimal precision {} is above Iceberg's 38",
                        d.precision
                    ));
                }
                let (p, s) = (d.precision as u32, d.scale as u32);
                Some(Type::decimal(p, s).map_err(|e| format!("decimal({p}, {s}): {e}"))?)
            }
            Schema::Record(r) => {
                let fields = self.record_fields(r, path, depth)?;
                (!fields.is_empty()).then(|| Type::Struct(StructType::new(fields)))
            }
            Schema::Array(a) => {
                let p = child_path(path, "element");
                let id = self.ids.id(&p);
                self.ty(&a.items, &p, depth + 1)?.map(|t| {
                    Type::List(ListType::new(
                        NestedField::list_element(id, t, false).into(),
                    ))
                })
            }
            Schema::Map(m) => {
                let kp = child_path(path, "key");
                let key_id = self.ids.id(&kp);
                let vp = child_path(path, "value");
                let value_id = self.ids.id(&vp);
                self.ty(&m.types, &vp, depth + 1)?.map(|t| {
                    Type::Map(MapType::new(
                        NestedField::map_key_element(
                            key_id,
                            Type::Primitive(PrimitiveType::String),
                        )
                        .into(),
                        NestedField::map_value_element(value_id, t, false).into(),
                    ))
                })
            }
            Schema::Union(u) => {
                let branches = self.ctx.branch_names(u);
                match branches.as_slice() {
                    [] => None,
                    [(i, _)] => self.ty(&u.variants()[*i], path, depth + 1)?,
                    _ => {
                        let mut fields = Vec::with_capacity(branches.len());
                        for (i, name) in &branches {
                            let p = child_path(path, name);
                            let id = self.ids.id(&p);
                            if let Some(t) = self.ty(&u.variants()[*i], &p, depth + 1)? {
                                fields.push(NestedField::optional(id, name, t).into());
                            }
                        }
                        (!fields.is_empty()).then(|| Type::Struct(StructType::new(fields)))
                    }
                }
            }
            Schema::Ref { name } => {
                return Err(format!(
                    "named type {} resolves to another reference",
                    name.fullname(None)
                ));
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// Payload -> Value.
// ---------------------------------------------------------------------------------------

/// A decoder of Avro payloads of one writer schema.
pub struct AvroDecoder<'a> {
    ctx: Ctx<'a>,
}

impl std::fmt::Debug for AvroDecoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroDecoder").finish_non_exhaustive()
    }
}

impl<'a> AvroDecoder<'a> {
    /// A decoder of payloads written with `schema`.
    pub fn new(schema: &'a Schema) -> AvroDecoder<'a> {
        AvroDecoder {
            ctx: Ctx::new(schema),
        }
    }

    /// Decodes one Avro binary payload (no header) into a [`Value::Struct`] of the columns.
    pub fn decode(&self, payload: &[u8]) -> Result<Value, String> {
        let mut r = Reader {
            buf: payload,
            budget: payload.len().saturating_add(EXTRA_ITEMS),
            ctx: &self.ctx,
        };
        let value = match self.ctx.top()? {
            Top::Record(rec) => r.record(rec, 0)?,
            Top::OptionalRecord { record, r: rec } => {
                if r.union_index(2)? == record {
                    r.record(rec, 0)?
                } else {
                    Value::Struct(Vec::new())
                }
            }
            Top::Other(s) => single(r.value(s, 0)?),
        };
        if !r.buf.is_empty() {
            return Err(format!(
                "{} bytes left after the value: the payload does not match its schema",
                r.buf.len()
            ));
        }
        Ok(value)
    }
}

struct Reader<'b, 'c, 'a> {
    buf: &'b [u8],
    /// Array and map items still allowed.
    budget: usize,
    ctx: &'c Ctx<'a>,
}

const TRUNCATED: &str = "truncated payload";

impl<'a> Reader<'_, '_, 'a> {
    fn long(&mut self) -> Result<i64, String> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let (&b, rest) = self.buf.split_first().ok_or(TRUNCATED)?;
            self.buf = rest;
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err("varint longer than 10 bytes".into());
            }
        }
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("int {v} out of range"))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.buf.len() {
            return Err(format!(
                "{TRUNCATED}: {n} bytes announced, {} left",
                self.buf.len()
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&[u8], String> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, String> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| format!("string is not UTF-8: {e}"))
    }

    fn union_index(&mut self, variants: usize) -> Result<usize, String> {
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .filter(|&i| i < variants)
            .ok_or_else(|| format!("union branch {i} out of range (the union has {variants})"))
    }

    /// The item count of the next block of an array or map (0: the end).
    fn block(&mut self) -> Result<usize, String> {
        let mut count = self.long()?;
        if count < 0 {
            count = count
                .checked_neg()
                .ok_or_else(|| "block count out of range".to_string())?;
            // The block's size in bytes (lets readers skip it): not needed.
            self.long()?;
        }
        let count = usize::try_from(count).map_err(|_| "block count out of range".to_string())?;
        if count > self.budget {
            return Err(format!(
                "block of {count} items is more than the payload can hold"
            ));
        }
        self.budget -= count;
        Ok(count)
    }

    fn record(&mut self, r: &'a RecordSchema, depth: usize) -> Result<Value, String> {
        let mut fields = Vec::with_capacity(r.fields.len());
        let shared = self.ctx.field_names(r);
        for (i, f) in r.fields.iter().enumerate() {
            let v = self
                .value(&f.schema, depth + 1)
                .map_err(|e| format!("{}: {e}", f.name))?;
            let name = match shared.and_then(|names| names.get(i)) {
                Some(name) => FieldName::clone(name),
                None => FieldName::from(f.name.as_str()),
            };
            fields.push((name, v));
        }
        Ok(Value::Struct(fields))
    }

    fn value(&mut self, schema: &'a Schema, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => match self.take(1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("boolean byte {b} is neither 0 nor 1")),
            },
            Schema::Int => Value::Int(self.int()?),
            Schema::Long => Value::Long(self.long()?),
            Schema::Float => {
                let b = self.take(4)?;
                Value::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            Schema::Double => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Double(f64::from_le_bytes(a))
            }
            Schema::Bytes | Schema::BigDecimal => Value::Bytes(self.bytes()?.to_vec()),
            Schema::String => Value::String(self.string()?),
            Schema::Uuid => {
                let bytes = self.bytes()?;
                Value::String(uuid_text(bytes)?)
            }
            Schema::Fixed(f) => Value::Bytes(self.take(f.size)?.to_vec()),
            Schema::Duration => Value::Bytes(self.take(12)?.to_vec()),
            Schema::Enum(e) => {
                let i = self.int()?;
                let symbol = usize::try_from(i)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| format!("enum index {i} out of range"))?;
                Value::String(symbol.clone())
            }
            Schema::Decimal(d) => {
                let bytes = match self.ctx.resolve(&d.inner)? {
                    Schema::Fixed(f) => self.take(f.size)?,
                    _ => self.bytes()?,
                };
                Value::Decimal {
                    unscaled: twos_complement(bytes)?,
                    scale: d.scale as u32,
                }
            }
            Schema::Date => Value::Date(self.int()?),
            Schema::TimeMillis => Value::TimeMicros(i64::from(self.int()?) * 1000),
            Schema::TimeMicros => Value::TimeMicros(self.long()?),
            Schema::TimestampMillis | Schema::LocalTimestampMillis => {
                let ms = self.long()?;
                Value::TimestampMicros(
                    ms.checked_mul(1000)
                        .ok_or_else(|| format!("timestamp {ms} ms out of range"))?,
                )
            }
            Schema::TimestampMicros | Schema::LocalTimestampMicros => {
                Value::TimestampMicros(self.long()?)
            }
            Schema::TimestampNanos | Schema::LocalTimestampNanos => {
                Value::TimestampMicros(self.long()?.div_euclid(1000))
            }
            Schema::Record(r) => self.record(r, depth)?,
            Schema::Array(a) => {
                let mut items = Vec::new();
                loop {
                    let n = self.block()?;
                    if n == 0 {
                        break;
                    }
                    items.reserve(n);
                    for _ in 0..n {
                        items.push(self.value(&a.items, depth + 1)?);
                    }
                }
                Value::List(items)
            }
            Schema::Map(m) => {
                let mut entries = Vec::new();
                loop {
                    let n = self.block()?;
                    if n == 0 {
                        break;
                    }
                    entries.reserve(n);
                    for _ in 0..n {
                        let k = self.string()?;
                        let v = self
                            .value(&m.types, depth + 1)
                            .map_err(|e| format!("{k}: {e}"))?;
                        entries.push((Value::String(k), v));
                    }
                }
                Value::Map(entries)
            }
            Schema::Union(u) => {
                let variants = u.variants();
                let i = self.union_index(variants.len())?;
                let non_null = variants
                    .iter()
                    .filter(|v| !matches!(v, Schema::Null))
                    .count();
                if matches!(variants[i], Schema::Null) {
                    Value::Null
                } else if non_null == 1 {
                    self.value(&variants[i], depth + 1)?
                } else {
                    let mut v = Some(self.value(&variants[i], depth + 1)?);
                    let mut fields = Vec::with_capacity(non_null);
                    for (j, w) in variants.iter().enumerate() {
                        if !matches!(w, Schema::Null) {
                            let value = if j == i { v.take() } else { None };
                            fields.push((
                                FieldName::from(branch_name(u, j)),
                                value.unwrap_or(Value::Null),
                            ));
                        }
                    }
                    Value::Struct(fields)
                }
            }
            Schema::Ref { .. } => {
                let resolved = self.ctx.resolve(schema)?;
                if matches!(resolved, Schema::Ref { .. }) {
                    return Err("a named type resolves to another reference".into());
                }
                self.value(resolved, depth + 1)?
            }
        })
    }
}

/// A big-endian two's complement integer of up to 16 significant bytes.
fn twos_complement(bytes: &[u8]) -> Result<i128, String> {
    let Some(&first) = bytes.first() else {
        return Ok(0);
    };
    let fill = if first & 0x80 != 0 { 0xff } else { 0 };
    let mut buf = [fill; 16];
    if bytes.len() > 16 {
        let (extra, tail) = bytes.split_at(bytes.len() - 16);
        if extra.iter().any(|&b| b != fill) || (tail[0] & 0x80 != 0) != (fill == 0xff) {
            return Err(format!(
                "decimal of {} bytes does not fit 128 bits",
                bytes.len()
            ));
        }
        buf.copy_from_slice(tail);
    } else {
        buf[16 - bytes.len()..].copy_from_slice(bytes);
    }
    Ok(i128::from_be_bytes(buf))
}

/// A uuid's text: the string as written, or the 16 raw bytes as the usual hex form.
fn uuid_text(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() == 16 && std::str::from_utf8(bytes).is_err() {
        let mut s = String::with_capacity(36);
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            s.push_str(&format!("{b:02x}"));
        }
        return Ok(s);
    }
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|e| format!("uuid is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use apache_avro::types::Value as AvroValue;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, Time64MicrosecondType,
        TimestampMicrosecondType,
    };
    use arrow_array::{Array, RecordBatch};
    use floe_registry::schema::{Parsed, SchemaType};
    use iceberg::spec::Schema as IcebergSchema;

    use super::*;
    use crate::typed::{build_columns, check_fits, decode_value, value_fields};

    const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
        {"name":"id","type":"long"},
        {"name":"qty","type":"int"},
        {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"day","type":{"type":"int","logicalType":"date"}},
        {"name":"tod","type":{"type":"long","logicalType":"time-micros"}},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
        {"name":"ship","type":{"type":"record","name":"Address","fields":[
            {"name":"city","type":"string"},{"name":"zip","type":["string","null"]}]}},
        {"name":"bill","type":["null","Address"],"default":null},
        {"name":"tags","type":{"type":"array","items":"string"}},
        {"name":"attrs","type":{"type":"map","values":"int"}},
        {"name":"either","type":["null","int","string"],"default":null},
        {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
        {"name":"ratio","type":"double"},
        {"name":"ok","type":"boolean"}
    ]}"#;

    fn parsed(text: &str) -> Parsed {
        Parsed::parse(SchemaType::Avro, text, &[]).unwrap()
    }

    fn avro_schema(p: &Parsed) -> &Schema {
        match p {
            Parsed::Avro(a) => a.schema(),
            _ => unreachable!(),
        }
    }

    fn iceberg_schema(fields: Vec<NestedFieldRef>) -> IcebergSchema {
        IcebergSchema::builder()
            .with_fields(fields)
            .build()
            .unwrap()
    }

    fn order_value(id: i64, note: Option<&str>) -> AvroValue {
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
        AvroValue::Record(vec![
            ("id".into(), AvroValue::Long(id)),
            ("qty".into(), AvroValue::Int(3)),
            (
                "price".into(),
                AvroValue::Decimal(apache_avro::Decimal::from(vec![0x04, 0xd2])),
            ),
            ("at".into(), AvroValue::TimestampMillis(1_700_000_000_123)),
            ("day".into(), AvroValue::Date(19_723)),
            ("tod".into(), AvroValue::TimeMicros(3_600_000_001)),
            (
                "note".into(),
                match note {
                    Some(n) => AvroValue::Union(1, Box::new(AvroValue::String(n.into()))),
                    None => AvroValue::Union(0, Box::new(AvroValue::Null)),
                },
            ),
            ("status".into(), AvroValue::Enum(1, "PAID".into())),
            ("ship".into(), address("Lyon", Some("69001"))),
            (
                "bill".into(),
                AvroValue::Union(1, Box::new(address("Paris", None))),
            ),
            (
                "tags".into(),
                AvroValue::Array(vec![
                    AvroValue::String("a".into()),
                    AvroValue::String("b".into()),
                ]),
            ),
            (
                "attrs".into(),
                AvroValue::Map([("k".to_string(), AvroValue::Int(7))].into_iter().collect()),
            ),
            (
                "either".into(),
                AvroValue::Union(2, Box::new(AvroValue::String("s".into()))),
            ),
            ("hash".into(), AvroValue::Fixed(4, vec![1, 2, 3, 4])),
            ("ratio".into(), AvroValue::Double(0.5)),
            ("ok".into(), AvroValue::Boolean(true)),
        ])
    }

    #[test]
    fn nested_schema_maps_to_iceberg_fields_and_ids() {
        let p = parsed(ORDER);
        let mut ids = FieldIds::new(None, 1);
        let fields = value_fields(&p, None, &mut ids).unwrap();
        let schema = iceberg_schema(fields);
        let st = Type::Struct(schema.as_struct().clone());
        let json = serde_json::to_value(&st).unwrap();
        let expected = serde_json::json!({"type":"struct","fields":[
            {"id":1,"name":"id","required":false,"type":"long"},
            {"id":2,"name":"qty","required":false,"type":"int"},
            {"id":3,"name":"price","required":false,"type":"decimal(10, 2)"},
            {"id":4,"name":"at","required":false,"type":"timestamptz"},
            {"id":5,"name":"day","required":false,"type":"date"},
            {"id":6,"name":"tod","required":false,"type":"time"},
            {"id":7,"name":"note","required":false,"type":"string"},
            {"id":8,"name":"status","required":false,"type":"string"},
            {"id":9,"name":"ship","required":false,"type":{"type":"struct","fields":[
                {"id":10,"name":"city","required":false,"type":"string"},
                {"id":11,"name":"zip","required":false,"type":"string"}]}},
            {"id":12,"name":"bill","required":false,"type":{"type":"struct","fields":[
                {"id":13,"name":"city","required":false,"type":"string"},
                {"id":14,"name":"zip","required":false,"type":"string"}]}},
            {"id":15,"name":"tags","required":false,"type":{"type":"list","element-id":16,
                "element":"string","element-required":false}},
            {"id":17,"name":"attrs","required":false,"type":{"type":"map","key-id":18,
                "key":"string","value-id":19,"value":"int","value-required":false}},
            {"id":20,"name":"either","required":false,"type":{"type":"struct","fields":[
                {"id":21,"name":"int","required":false,"type":"int"},
                {"id":22,"name":"string","required":false,"type":"string"}]}},
            {"id":23,"name":"hash","required":false,"type":"binary"},
            {"id":24,"name":"ratio","required":false,"type":"double"},
            {"id":25,"name":"ok","required":false,"type":"boolean"}
        ]});
        assert_eq!(
            json,
            expected,
            "{}",
            serde_json::to_string_pretty(&json).unwrap()
        );
        assert_eq!(ids.highest(), 25);
    }

    #[test]
    fn payloads_decode_into_arrow_columns() {
        let p = parsed(ORDER);
        let schema = avro_schema(&p);
        let mut ids = FieldIds::new(None, 1);
        let ice = iceberg_schema(value_fields(&p, None, &mut ids).unwrap());
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&ice).unwrap());

        let payloads = [
            apache_avro::to_avro_datum(schema, order_value(1, Some("hi"))).unwrap(),
            apache_avro::to_avro_datum(schema, order_value(2, None)).unwrap(),
        ];
        let rows: Vec<Value> = payloads
            .iter()
            .map(|b| decode_value(&p, b).unwrap())
            .collect();
        for r in &rows {
            check_fits(arrow.fields(), r).unwrap();
        }
        let refs: Vec<&Value> = rows.iter().collect();
        let columns = build_columns(arrow.fields(), &refs).unwrap();
        let batch = RecordBatch::try_new(arrow.clone(), columns).unwrap();
        assert_eq!(batch.num_rows(), 2);

        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(col("id").as_primitive::<Int64Type>().values(), &[1, 2]);
        assert_eq!(col("qty").as_primitive::<Int32Type>().value(0), 3);
        let price = col("price");
        let price = price.as_primitive::<Decimal128Type>();
        assert_eq!(price.value(0), 1234);
        assert_eq!(price.value_as_string(0), "12.34");
        assert_eq!(
            col("at")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_700_000_000_123_000
        );
        assert_eq!(col("day").as_primitive::<Date32Type>().value(0), 19_723);
        assert_eq!(
            col("tod").as_primitive::<Time64MicrosecondType>().value(0),
            3_600_000_001
        );
        let note = col("note");
        assert_eq!(note.as_string::<i32>().value(0), "hi");
        assert!(note.is_null(1));
        assert_eq!(col("status").as_string::<i32>().value(0), "PAID");
        let ship = col("ship");
        let ship = ship.as_struct();
        assert_eq!(ship.column(0).as_string::<i32>().value(0), "Lyon");
        assert_eq!(ship.column(1).as_string::<i32>().value(0), "69001");
        let bill = col("bill");
        let bill = bill.as_struct();
        assert_eq!(bill.column(0).as_string::<i32>().value(1), "Paris");
        assert!(bill.column(1).is_null(1));
        let tags = col("tags");
        let tags = tags.as_list::<i32>();
        assert_eq!(tags.value(0).as_string::<i32>().value(1), "b");
        let attrs = col("attrs");
        let attrs = attrs.as_map();
        assert_eq!(attrs.keys().as_string::<i32>().value(0), "k");
        assert_eq!(attrs.values().as_primitive::<Int32Type>().value(0), 7);
        let either = col("either");
        let either = either.as_struct();
        assert!(either.column(0).is_null(0));
        assert_eq!(either.column(1).as_string::<i32>().value(0), "s");
        assert_eq!(col("hash").as_binary::<i64>().value(0), &[1, 2, 3, 4]);
        assert_eq!(col("ratio").as_primitive::<Float64Type>().value(0), 0.5);
        assert!(col("ok").as_boolean().value(0));
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let p = parsed(ORDER);
        let good = apache_avro::to_avro_datum(avro_schema(&p), order_value(1, Some("x"))).unwrap();
        assert!(decode_value(&p, &good).is_ok());
        for n in 0..good.len() {
            assert!(decode_value(&p, &good[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_value(&p, &trailing).is_err());
        // Garbage, and huge lengths / counts.
        for bad in [
            vec![0xff; 20],
            vec![0x80; 11],
            vec![0x02, 0x02, 0xfe, 0xff, 0xff, 0xff, 0x0f],
        ] {
            let _ = decode_value(&p, &bad);
        }
        let list = parsed(r#"{"type":"array","items":"null"}"#);
        // 2^62 nulls announced by a few bytes.
        let err = decode_value(
            &list,
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        )
        .unwrap_err();
        assert!(err.contains("more than the payload"), "{err}");
        // A decimal of 17 bytes that does not fit 128 bits.
        let dec = parsed(r#"{"type":"bytes","logicalType":"decimal","precision":38,"scale":0}"#);
        let mut b = vec![34u8, 0x01];
        b.extend([0u8; 16]);
        assert!(decode_value(&dec, &b).is_err());
        // A bad enum index, a bad boolean, invalid UTF-8.
        let e = parsed(r#"{"type":"enum","name":"E","symbols":["A"]}"#);
        assert!(decode_value(&e, &[0x02]).is_err());
        assert!(decode_value(&parsed(r#""boolean""#), &[2]).is_err());
        assert!(decode_value(&parsed(r#""string""#), &[0x02, 0xff]).is_err());
    }

    #[test]
    fn non_record_and_optional_record_schemas() {
        let p = parsed(r#""string""#);
        let mut ids = FieldIds::new(None, 1);
        let fields = value_fields(&p, None, &mut ids).unwrap();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].name, "value");
        let bytes =
            apache_avro::to_avro_datum(avro_schema(&p), AvroValue::String("x".into())).unwrap();
        assert_eq!(
            decode_value(&p, &bytes).unwrap(),
            Value::Struct(vec![("value".into(), Value::String("x".into()))])
        );

        let p =
            parsed(r#"["null",{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}]"#);
        let mut ids = FieldIds::new(None, 1);
        let fields = value_fields(&p, None, &mut ids).unwrap();
        assert_eq!(fields[0].name, "a");
        assert_eq!(decode_value(&p, &[0]).unwrap(), Value::Struct(vec![]));
        assert_eq!(
            decode_value(&p, &[2, 4]).unwrap(),
            Value::Struct(vec![("a".into(), Value::Int(2))])
        );
    }

    #[test]
    fn recursive_and_oversized_schemas_are_refused() {
        let p = parsed(
            r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},
            {"name":"next","type":["null","Node"]}]}"#,
        );
        let err = value_fields(&p, None, &mut FieldIds::new(None, 1)).unwrap_err();
        assert!(err.contains("recursive"), "{err}");
        // Decoding a recursive schema is still bounded.
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend([0x02, 0x02]);
        }
        deep.extend([0x02, 0x00]);
        let err = decode_value(&p, &deep).unwrap_err();
        assert!(err.contains("deeper"), "{err}");

        let p = parsed(r#"{"type":"bytes","logicalType":"decimal","precision":40,"scale":2}"#);
        let err = value_fields(&p, None, &mut FieldIds::new(None, 1)).unwrap_err();
        assert!(err.contains("38"), "{err}");
    }

    #[test]
    fn evolution_keeps_ids() {
        let v1 = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},
            {"name":"s","type":{"type":"record","name":"S","fields":[{"name":"x","type":"string"}]}}]}"#,
        );
        let v2 = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"new","type":["null","long"]},
            {"name":"a","type":"int"},
            {"name":"s","type":{"type":"record","name":"S","fields":[{"name":"y","type":"string"},{"name":"x","type":"string"}]}}]}"#,
        );
        let old = iceberg_schema(value_fields(&v1, None, &mut FieldIds::new(None, 1)).unwrap());
        let mut ids = FieldIds::new(Some(&old), 1);
        let new = iceberg_schema(value_fields(&v2, None, &mut ids).unwrap());
        let id = |s: &IcebergSchema, name: &str| s.field_by_name(name).unwrap().id;
        assert_eq!(id(&new, "a"), id(&old, "a"));
        assert_eq!(id(&new, "s"), id(&old, "s"));
        assert_eq!(id(&new, "s.x"), id(&old, "s.x"));
        assert_eq!(old.highest_field_id(), 3);
        assert_eq!(id(&new, "new"), 4);
        assert_eq!(id(&new, "s.y"), 5);
        assert_eq!(ids.highest(), 5);
    }

    #[test]
    fn union_branch_names_and_logical_types() {
        let p = parsed(
            r#"{"type":"record","name":"R","namespace":"a","fields":[
            {"name":"u","type":["int",{"type":"record","name":"X","fields":[{"name":"f","type":"int"}]},
                {"type":"record","name":"X","namespace":"b","fields":[{"name":"g","type":"int"}]}]},
            {"name":"id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"lt","type":{"type":"long","logicalType":"local-timestamp-micros"}},
            {"name":"ns","type":{"type":"long","logicalType":"timestamp-nanos"}}]}"#,
        );
        let fields = value_fields(&p, None, &mut FieldIds::new(None, 1)).unwrap();
        let Type::Struct(u) = fields[0].field_type.as_ref() else {
            panic!("{:?}", fields[0])
        };
        let names: Vec<_> = u.fields().iter().map(|f| f.name.clone()).collect();
        assert_eq!(names, ["int", "a_X", "b_X"]);
        assert_eq!(
            *fields[2].field_type,
            Type::Primitive(PrimitiveType::Timestamp)
        );
        let mut payload = vec![0x04, 0x06]; // branch 2 (b.X), g = 3
        payload.extend([0x06, b'a', b'b', b'c']);
        payload.push(0x04);
        payload.extend([0xd0, 0x0f]); // 1000 ns
        let v = decode_value(&p, &payload).unwrap();
        assert_eq!(
            v,
            Value::Struct(vec![
                (
                    "u".into(),
                    Value::Struct(vec![
                        ("int".into(), Value::Null),
                        ("a_X".into(), Value::Null),
                        (
                            "b_X".into(),
                            Value::Struct(vec![("g".into(), Value::Int(3))])
                        ),
                    ])
                ),
                ("id".into(), Value::String("abc".into())),
                ("lt".into(), Value::TimestampMicros(2)),
                ("ns".into(), Value::TimestampMicros(1)),
            ])
        );
    }

    /// A flat event, a typical Kafka record (about 200 bytes).
    const EVENT: &str = r#"{"type":"record","name":"Event","fields":[
        {"name":"id","type":"long"},
        {"name":"user","type":"string"},
        {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["VIEW","CLICK","BUY"]}},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"amount","type":["null","double"]},
        {"name":"country","type":"string"},
        {"name":"device","type":["null","string"]},
        {"name":"url","type":"string"},
        {"name":"session","type":{"type":"string","logicalType":"uuid"}},
        {"name":"ok","type":"boolean"},
        {"name":"referrer","type":["null","string"]},
        {"name":"duration_ms","type":"int"}
    ]}"#;

    fn event_value(i: i64) -> AvroValue {
        let s = |x: String| AvroValue::String(x);
        AvroValue::Record(vec![
            ("id".into(), AvroValue::Long(i)),
            (
                "user".into(),
                s(format!("user-{:08}", i * 7919 % 1_000_000)),
            ),
            ("kind".into(), AvroValue::Enum(1, "CLICK".into())),
            (
                "at".into(),
                AvroValue::TimestampMillis(1_700_000_000_000 + i),
            ),
            (
                "amount".into(),
                AvroValue::Union(1, Box::new(AvroValue::Double(9.99))),
            ),
            ("country".into(), s("FR".into())),
            (
                "device".into(),
                AvroValue::Union(1, Box::new(s("android-14-pixel".into()))),
            ),
            (
                "url".into(),
                s(format!(
                    "https://shop.example.com/products/{i}?ref=home&utm=mail"
                )),
            ),
            (
                "session".into(),
                s("0b4f6c7e-2d1a-4a53-9a43-5a1d7c0e9f12".into()),
            ),
            ("ok".into(), AvroValue::Boolean(true)),
            (
                "referrer".into(),
                AvroValue::Union(1, Box::new(s("https://search.example.org/?q=shoes".into()))),
            ),
            ("duration_ms".into(), AvroValue::Int(1234)),
        ])
    }

    /// MiB/s of decode + check + build (+ drop) of `payloads`, on this thread's CPU time.
    fn measure(label: &str, p: &Parsed, payloads: &[Vec<u8>]) {
        use std::time::{Duration, Instant};
        let ice = iceberg_schema(value_fields(p, None, &mut FieldIds::new(None, 1)).unwrap());
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&ice).unwrap());
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        let cpu_ns = || {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        };
        let rounds = 20;
        let mut phases = [Duration::ZERO; 4];
        let before = cpu_ns();
        for _ in 0..rounds {
            // As the worker does: decode and check each record, then build the columns.
            let t = Instant::now();
            let decoder = crate::typed::Decoder::new(p);
            let mut rows: Vec<Value> = Vec::with_capacity(payloads.len());
            for b in payloads {
                let v = decoder.decode(b).unwrap();
                let t = Instant::now();
                check_fits(arrow.fields(), &v).unwrap();
                phases[1] += t.elapsed();
                rows.push(v);
            }
            phases[0] += t.elapsed();
            let ok: Vec<&Value> = rows.iter().collect();
            let t = Instant::now();
            let cols = build_columns(arrow.fields(), &ok).unwrap();
            assert_eq!(cols[0].len(), payloads.len());
            phases[2] += t.elapsed();
            let t = Instant::now();
            drop(ok);
            drop(rows);
            phases[3] += t.elapsed();
        }
        // The check ran inside the decode loop.
        phases[0] -= phases[1];
        let mib = (bytes * rounds) as f64 / (1 << 20) as f64;
        let wall = phases.iter().sum::<Duration>().as_secs_f64();
        let cpu = match (before, cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 / 1e9,
            _ => wall,
        };
        println!(
            "{label}: {} records of {} bytes: {:.1} MiB/s on-CPU, {:.1} MiB/s wall \
             (decode {:?}, check {:?}, build {:?}, drop {:?})",
            payloads.len(),
            bytes / payloads.len(),
            mib / cpu,
            mib / wall,
            phases[0],
            phases[1],
            phases[2],
            phases[3]
        );
    }

    /// Throughput of Avro -> Arrow (run with `--ignored --nocapture`, optimized).
    #[test]
    #[ignore]
    fn throughput() {
        let p = parsed(EVENT);
        let payloads: Vec<Vec<u8>> = (0..8192)
            .map(|i| apache_avro::to_avro_datum(avro_schema(&p), event_value(i)).unwrap())
            .collect();
        measure("flat event", &p, &payloads);
        let p = parsed(ORDER);
        let payloads: Vec<Vec<u8>> = (0..8192)
            .map(|i| {
                apache_avro::to_avro_datum(avro_schema(&p), order_value(i, Some("note"))).unwrap()
            })
            .collect();
        measure("nested order", &p, &payloads);
    }
}
