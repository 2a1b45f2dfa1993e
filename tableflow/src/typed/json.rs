//! JSON Schemas as Iceberg columns, and JSON payloads as [`Value`]s (see the
//! [parent module](super) for the mapping).
//!
//! Both directions go through one classification of a subschema (`Shape`), so the
//! columns and the decoded values always agree. Payloads are parsed with `serde_json`
//! (which limits nesting to 128 levels) and then converted guided by the schema.

use std::sync::OnceLock;

use floe_registry::json_schema::JsonSchema;
use iceberg::spec::{
    ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, StructType, Type,
};
use serde_json::{Map, Value as J};

use super::ids::child_path;
use super::{
    FieldIds, FieldName, MAX_DEPTH, MICROS_PER_DAY, Value, days_from_civil, days_in_month, single,
    too_deep,
};

/// The schema that accepts anything (an array without `items`).
static ANY: J = J::Bool(true);

/// Most `$ref`s followed in a row.
const MAX_REF_HOPS: usize = 64;

/// A subschema and the document it is in (0: the schema, i + 1: its i-th reference).
#[derive(Clone, Copy)]
struct Node<'s> {
    doc: usize,
    v: &'s J,
}

/// What a subschema is as a column.
#[derive(Clone, Copy)]
enum Shape<'s> {
    /// An object with properties: a struct (the node is the `properties` object).
    Object(Node<'s>),
    /// An object with only an `additionalProperties` schema: map<string, T>.
    Map(Node<'s>),
    /// An array: list<T> of its `items`.
    List(Node<'s>),
    Str,
    Timestamp,
    Date,
    Time,
    Long,
    Double,
    Bool,
    /// Anything else: the JSON text.
    Any,
}

/// A schema with its referenced documents (parsed on first use).
struct Ctx<'a> {
    schema: &'a JsonSchema,
    deps: OnceLock<Vec<J>>,
}

impl<'a> Ctx<'a> {
    fn new(schema: &'a JsonSchema) -> Ctx<'a> {
        Ctx {
            schema,
            deps: OnceLock::new(),
        }
    }

    fn deps(&self) -> &[J] {
        self.deps.get_or_init(|| {
            self.schema
                .deps()
                .iter()
                .map(|d| serde_json::from_str(&d.schema).unwrap_or(J::Bool(true)))
                .collect()
        })
    }

    fn doc(&self, i: usize) -> Option<&J> {
        if i == 0 {
            Some(self.schema.value())
        } else {
            self.deps().get(i - 1)
        }
    }

    /// The document a reference's non-fragment part names.
    fn find_doc(&self, base: &str) -> Option<usize> {
        let id_of = |v: &J| {
            v.get("$id")
                .and_then(J::as_str)
                .map(|id| id.trim_end_matches('#').to_string())
        };
        if id_of(self.schema.value()).as_deref() == Some(base) {
            return Some(0);
        }
        let names = self.schema.deps();
        let docs = self.deps();
        let same = |a: &str, b: &str| {
            a == b
                || a.strip_suffix(b).is_some_and(|p| p.ends_with('/'))
                || b.strip_suffix(a).is_some_and(|p| p.ends_with('/'))
        };
        (0..names.len())
            .find(|&i| {
                let name = names[i].name.trim_end_matches('#');
                same(name, base)
                    || docs
                        .get(i)
                        .and_then(id_of)
                        .is_some_and(|id| same(&id, base))
            })
            .map(|i| i + 1)
    }

    fn resolve_ref<'s>(&'s self, from: usize, reference: &str) -> Result<Node<'s>, String> {
        let (base, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let doc = if base.is_empty() {
            from
        } else {
            self.find_doc(base)
                .ok_or_else(|| format!("$ref \"{reference}\" names no referenced schema"))?
        };
        let root = self
            .doc(doc)
            .ok_or_else(|| format!("$ref \"{reference}\" names no document"))?;
        let fragment = percent_decode(fragment);
        let v = if fragment.is_empty() {
            Some(root)
        } else if fragment.starts_with('/') {
            root.pointer(&fragment)
        } else {
            find_anchor(root, &fragment, 0)
        };
        v.map(|v| Node { doc, v })
            .ok_or_else(|| format!("$ref \"{reference}\" resolves to nothing"))
    }

    /// `node`, with `$ref`s followed.
    fn deref<'s>(&'s self, mut node: Node<'s>) -> Result<Node<'s>, String> {
        for _ in 0..MAX_REF_HOPS {
            match node.v.get("$ref").and_then(J::as_str) {
                Some(r) => node = self.resolve_ref(node.doc, r)?,
                None => return Ok(node),
            }
        }
        Err(format!("more than {MAX_REF_HOPS} $refs in a row"))
    }

    /// What `node` is as a column, and whether it admits null.
    fn classify<'s>(&'s self, node: Node<'s>, depth: usize) -> Result<(Shape<'s>, bool), String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let node = self.deref(node)?;
        let Some(obj) = node.v.as_object() else {
            return Ok((Shape::Any, true));
        };
        let at = |v: &'s J| Node { doc: node.doc, v };
        let mut nullable = false;
        let mut types: Vec<&str> = Vec::new();
        match obj.get("type") {
            Some(J::String(t)) => types.push(t),
            Some(J::Array(ts)) => types.extend(ts.iter().filter_map(J::as_str)),
            _ => {}
        }
        if !types.is_empty() {
            types.retain(|t| {
                let null = *t == "null";
                nullable |= null;
                !null
            });
            let shape = match types.as_slice() {
                [t] => by_type(t, obj, node.doc),
                ["integer", "number"] | ["number", "integer"] => Shape::Double,
                _ => Shape::Any,
            };
            return Ok((shape, nullable || types.is_empty()));
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(J::Array(branches)) = obj.get(key) {
                let mut others = Vec::new();
                for b in branches {
                    let b = self.deref(at(b))?;
                    if is_null_schema(b.v) {
                        nullable = true;
                    } else {
                        others.push(b);
                    }
                }
                return Ok(match others.as_slice() {
                    [one] => {
                        let (shape, n) = self.classify(*one, depth + 1)?;
                        (shape, n || nullable)
                    }
                    _ => (Shape::Any, true),
                });
            }
        }
        if let Some(J::Array(all)) = obj.get("allOf")
            && let [one] = all.as_slice()
        {
            return self.classify(at(one), depth + 1);
        }
        let inferred = if obj.contains_key("properties")
            || obj.get("additionalProperties").is_some_and(J::is_object)
        {
            by_type("object", obj, node.doc)
        } else if obj.contains_key("items") {
            by_type("array", obj, node.doc)
        } else if let Some(J::Array(values)) = obj.get("enum") {
            if !values.is_empty() && values.iter().all(J::is_string) {
                Shape::Str
            } else {
                Shape::Any
            }
        } else if obj.get("const").is_some_and(J::is_string) || obj.contains_key("format") {
            by_type("string", obj, node.doc)
        } else {
            Shape::Any
        };
        Ok((inferred, true))
    }
}

fn is_null_schema(v: &J) -> bool {
    match v.get("type") {
        Some(J::String(t)) => t == "null",
        Some(J::Array(ts)) => !ts.is_empty() && ts.iter().all(|t| t == "null"),
        _ => false,
    }
}

fn by_type<'s>(t: &str, obj: &'s Map<String, J>, doc: usize) -> Shape<'s> {
    match t {
        "object" => {
            if let Some(props @ J::Object(p)) = obj.get("properties")
                && !p.is_empty()
            {
                Shape::Object(Node { doc, v: props })
            } else if let Some(ap @ J::Object(_)) = obj.get("additionalProperties") {
                Shape::Map(Node { doc, v: ap })
            } else {
                Shape::Any
            }
        }
        "array" => match obj.get("items") {
            Some(items @ (J::Object(_) | J::Bool(_))) => Shape::List(Node { doc, v: items }),
            None => Shape::List(Node { doc, v: &ANY }),
            Some(_) => Shape::Any,
        },
        "string" => match obj.get("format").and_then(J::as_str) {
            Some("date-time") => Shape::Timestamp,
            Some("date") => Shape::Date,
            Some("time") => Shape::Time,
            _ => Shape::Str,
        },
        "integer" => Shape::Long,
        "number" => Shape::Double,
        "boolean" => Shape::Bool,
        _ => Shape::Any,
    }
}

fn find_anchor<'v>(v: &'v J, anchor: &str, depth: usize) -> Option<&'v J> {
    if depth > MAX_DEPTH {
        return None;
    }
    match v {
        J::Object(o) => {
            let named = o.get("$anchor").and_then(J::as_str) == Some(anchor)
                || o.get("$id")
                    .and_then(J::as_str)
                    .and_then(|id| id.strip_prefix('#'))
                    == Some(anchor);
            if named {
                return Some(v);
            }
            o.values().find_map(|c| find_anchor(c, anchor, depth + 1))
        }
        J::Array(a) => a.iter().find_map(|c| find_anchor(c, anchor, depth + 1)),
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// Schema -> Iceberg columns.
// ---------------------------------------------------------------------------------------

/// The Iceberg columns of values of the JSON Schema `schema` (see
/// [`super::value_fields`]).
pub fn value_fields(
    schema: &JsonSchema,
    ids: &mut FieldIds,
) -> Result<Vec<NestedFieldRef>, String> {
    let ctx = Ctx::new(schema);
    let root = Node {
        doc: 0,
        v: schema.value(),
    };
    let mut mapper = Mapper {
        ctx: &ctx,
        ids,
        stack: Vec::new(),
    };
    let (shape, _) = ctx.classify(root, 0)?;
    match shape {
        Shape::Object(props) => mapper.object_fields(props, "", 0),
        other => {
            let id = mapper.ids.id(super::VALUE_COLUMN);
            Ok(mapper
                .shape_type(other, super::VALUE_COLUMN, 0)?
                .map(|t| NestedField::optional(id, super::VALUE_COLUMN, t).into())
                .into_iter()
                .collect())
        }
    }
}

struct Mapper<'c, 's, 'i> {
    ctx: &'c Ctx<'s>,
    ids: &'i mut FieldIds,
    /// Container subschemas being mapped (one met again is a recursion).
    stack: Vec<*const J>,
}

impl<'c> Mapper<'c, '_, '_> {
    fn enter(&mut self, node: Node<'_>) -> Result<(), String> {
        let ptr: *const J = node.v;
        if self.stack.contains(&ptr) {
            return Err("the schema is recursive: a recursive type cannot be a table".into());
        }
        self.stack.push(ptr);
        Ok(())
    }

    fn object_fields(
        &mut self,
        props: Node<'c>,
        path: &str,
        depth: usize,
    ) -> Result<Vec<NestedFieldRef>, String> {
        self.enter(props)?;
        let mut fields = Vec::new();
        for (name, node) in Ctx::properties_of(props) {
            let p = child_path(path, name);
            let id = self.ids.id(&p);
            let (shape, _) = self
                .ctx
                .classify(node, depth + 1)
                .map_err(|e| format!("property {p}: {e}"))?;
            if let Some(t) = self
                .shape_type(shape, &p, depth + 1)
                .map_err(|e| format!("property {p}: {e}"))?
            {
                fields.push(NestedField::optional(id, name, t).into());
            }
        }
        self.stack.pop();
        Ok(fields)
    }

    fn shape_type(
        &mut self,
        shape: Shape<'c>,
        path: &str,
        depth: usize,
    ) -> Result<Option<Type>, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let p = |p| Ok(Some(Type::Primitive(p)));
        match shape {
            Shape::Str | Shape::Any => p(PrimitiveType::String),
            Shape::Timestamp => p(PrimitiveType::Timestamptz),
            Shape::Date => p(PrimitiveType::Date),
            Shape::Time => p(PrimitiveType::Time),
            Shape::Long => p(PrimitiveType::Long),
            Shape::Double => p(PrimitiveType::Double),
            Shape::Bool => p(PrimitiveType::Boolean),
            Shape::Object(props) => {
                let fields = self.object_fields(props, path, depth + 1)?;
                Ok((!fields.is_empty()).then(|| Type::Struct(StructType::new(fields))))
            }
            Shape::List(items) => {
                self.enter(items)?;
                let ep = child_path(path, "element");
                let id = self.ids.id(&ep);
                let (shape, _) = self.ctx.classify(items, depth + 1)?;
                let t = self.shape_type(shape, &ep, depth + 1)?;
                self.stack.pop();
                Ok(t.map(|t| {
                    Type::List(ListType::new(
                        NestedField::list_element(id, t, false).into(),
                    ))
                }))
            }
            Shape::Map(values) => {
                self.enter(values)?;
                let kp = child_path(path, "key");
                let key_id = self.ids.id(&kp);
                let vp = child_path(path, "value");
                let value_id = self.ids.id(&vp);
                let (shape, _) = self.ctx.classify(values, depth + 1)?;
                let t = self.shape_type(shape, &vp, depth + 1)?;
                self.stack.pop();
                Ok(t.map(|t| {
                    Type::Map(MapType::new(
                        NestedField::map_key_element(
                            key_id,
                            Type::Primitive(PrimitiveType::String),
                        )
                        .into(),
                        NestedField::map_value_element(value_id, t, false).into(),
                    ))
                }))
            }
        }
    }
}

impl Ctx<'_> {
    /// The properties of an [`Shape::Object`] node (the `properties` object itself).
    fn properties_of<'s>(props: Node<'s>) -> impl Iterator<Item = (&'s String, Node<'s>)> {
        props
            .v
            .as_object()
            .into_iter()
            .flatten()
            .map(move |(k, v)| (k, Node { doc: props.doc, v }))
    }
}

// ---------------------------------------------------------------------------------------
// Payload -> Value.
// ---------------------------------------------------------------------------------------

/// A decoder of JSON payloads of one schema.
pub struct JsonDecoder<'a> {
    ctx: Ctx<'a>,
}

impl std::fmt::Debug for JsonDecoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonDecoder").finish_non_exhaustive()
    }
}

impl<'a> JsonDecoder<'a> {
    /// A decoder of payloads of `schema`.
    pub fn new(schema: &'a JsonSchema) -> JsonDecoder<'a> {
        JsonDecoder {
            ctx: Ctx::new(schema),
        }
    }

    /// Decodes one UTF-8 JSON payload into a [`Value::Struct`] of the columns.
    pub fn decode(&self, payload: &[u8]) -> Result<Value, String> {
        let json: J = serde_json::from_slice(payload).map_err(|e| format!("invalid JSON: {e}"))?;
        let root = Node {
            doc: 0,
            v: self.ctx.schema.value(),
        };
        let (shape, _) = self.ctx.classify(root, 0)?;
        match shape {
            Shape::Object(props) => match json {
                J::Object(mut o) => self.object(props, &mut o, 0),
                J::Null => Ok(Value::Struct(Vec::new())),
                other => Err(format!("expected a JSON object, got {}", kind(&other))),
            },
            other => Ok(single(self.value(other, json, 0)?)),
        }
    }

    fn object(
        &self,
        props: Node<'_>,
        o: &mut Map<String, J>,
        depth: usize,
    ) -> Result<Value, String> {
        let mut fields = Vec::new();
        for (name, node) in Ctx::properties_of(props) {
            let v = match o.remove(name.as_str()) {
                None | Some(J::Null) => Value::Null,
                Some(v) => {
                    let (shape, _) = self.ctx.classify(node, depth + 1)?;
                    self.value(shape, v, depth + 1)
                        .map_err(|e| format!("{name}: {e}"))?
                }
            };
            fields.push((FieldName::from(name.as_str()), v));
        }
        Ok(Value::Struct(fields))
    }

    fn value(&self, shape: Shape<'_>, v: J, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        if v.is_null() {
            return Ok(Value::Null);
        }
        let wrong = |want: &str, got: &J| format!("expected {want}, got {}", kind(got));
        Ok(match shape {
            Shape::Any => Value::String(v.to_string()),
            Shape::Str => match v {
                J::String(s) => Value::String(s),
                other => return Err(wrong("a string", &other)),
            },
            Shape::Timestamp => match &v {
                J::String(s) => Value::TimestampMicros(parse_timestamp(s)?),
                other => return Err(wrong("a date-time string", other)),
            },
            Shape::Date => match &v {
                J::String(s) => Value::Date(
                    parse_date(s.as_bytes())
                        .and_then(|d| i32::try_from(d).ok())
                        .ok_or_else(|| format!("\"{s}\" is not a date (YYYY-MM-DD)"))?,
                ),
                other => return Err(wrong("a date string", other)),
            },
            Shape::Time => match &v {
                J::String(s) => Value::TimeMicros(
                    parse_time(s.as_bytes())
                        .map(|(t, _)| t)
                        .ok_or_else(|| format!("\"{s}\" is not a time (HH:MM:SS)"))?,
                ),
                other => return Err(wrong("a time string", other)),
            },
            Shape::Long => match &v {
                J::Number(n) => Value::Long(integer(n)?),
                other => return Err(wrong("an integer", other)),
            },
            Shape::Double => match &v {
                J::Number(n) => Value::Double(n.as_f64().ok_or("number out of range")?),
                other => return Err(wrong("a number", other)),
            },
            Shape::Bool => match v {
                J::Bool(b) => Value::Bool(b),
                other => return Err(wrong("a boolean", &other)),
            },
            Shape::Object(props) => match v {
                J::Object(mut o) => self.object(props, &mut o, depth + 1)?,
                other => return Err(wrong("an object", &other)),
            },
            Shape::Map(values) => match v {
                J::Object(o) => {
                    let (shape, _) = self.ctx.classify(values, depth + 1)?;
                    let mut entries = Vec::with_capacity(o.len());
                    for (k, v) in o {
                        let v = self
                            .value(shape, v, depth + 1)
                            .map_err(|e| format!("{k}: {e}"))?;
                        entries.push((Value::String(k), v));
                    }
                    Value::Map(entries)
                }
                other => return Err(wrong("an object", &other)),
            },
            Shape::List(items) => match v {
                J::Array(a) => {
                    let (shape, _) = self.ctx.classify(items, depth + 1)?;
                    let mut out = Vec::with_capacity(a.len());
                    for (i, v) in a.into_iter().enumerate() {
                        out.push(
                            self.value(shape, v, depth + 1)
                                .map_err(|e| format!("[{i}]: {e}"))?,
                        );
                    }
                    Value::List(out)
                }
                other => return Err(wrong("an array", &other)),
            },
        })
    }
}

fn kind(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "an array",
        J::Object(_) => "an object",
    }
}

fn integer(n: &serde_json::Number) -> Result<i64, String> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    if n.is_u64() {
        return Err(format!("integer {n} out of range"));
    }
    // 2^63: integral floats in [-2^63, 2^63) are exactly i64s.
    let limit = 2f64.powi(63);
    match n.as_f64() {
        Some(x) if x.fract() == 0.0 && (-limit..limit).contains(&x) => Ok(x as i64),
        Some(x) if x.fract() == 0.0 => Err(format!("integer {n} out of range")),
        _ => Err(format!("{n} is not an integer")),
    }
}

// ---------------------------------------------------------------------------------------
// RFC 3339 dates and times.
// ---------------------------------------------------------------------------------------

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
fn parse_date(s: &[u8]) -> Option<i64> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let year = i64::from(digits(&s[0..4])?);
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Microseconds since midnight of `HH:MM:SS[.frac][Z|±HH:MM]`, and the offset in seconds
/// if one is given.
fn parse_time(s: &[u8]) -> Option<(i64, Option<i64>)> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let hour = digits(&s[0..2])?;
    let minute = digits(&s[3..5])?;
    let mut second = digits(&s[6..8])?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[8..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for i in 0..6 {
            micros = micros * 10
                + frac
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |b| i64::from(b - b'0'));
        }
        rest = &frac[n..];
    }
    if second == 60 {
        // A leap second: the last microsecond of the minute.
        second = 59;
        micros = 999_999;
    }
    let offset = match rest {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i64::from(digits(&[*h1, *h2])?);
            let m = i64::from(digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => return None,
    };
    let secs = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some((secs * 1_000_000 + micros, offset))
}

/// Microseconds since the epoch (UTC) of an RFC 3339 date-time (without an offset: UTC).
fn parse_timestamp(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let bad = || format!("\"{s}\" is not an RFC 3339 date-time");
    if b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let days = parse_date(&b[..10]).ok_or_else(bad)?;
    let (time, offset) = parse_time(&b[11..]).ok_or_else(bad)?;
    days.checked_mul(MICROS_PER_DAY)
        .and_then(|d| d.checked_add(time))
        .and_then(|t| t.checked_sub(offset.unwrap_or(0) * 1_000_000))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Float64Type, Int64Type, Time64MicrosecondType, TimestampMicrosecondType,
    };
    use arrow_array::{Array, RecordBatch};
    use floe_registry::schema::{Parsed, Resolved, SchemaType};
    use iceberg::spec::Schema as IcebergSchema;

    use super::*;
    use crate::typed::{build_columns, check_fits, decode_value, value_fields};

    const ORDER: &str = r##"{
      "$schema": "http://json-schema.org/draft-07/schema#",
      "type": "object",
      "properties": {
        "id": {"type": "integer"},
        "ship": {"$ref": "#/definitions/Address"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "attrs": {"type": "object", "additionalProperties": {"type": "number"}},
        "at": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "tod": {"type": "string", "format": "time"},
        "note": {"type": ["string", "null"]},
        "bill": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/Address2"}]},
        "any": {},
        "mixed": {"type": ["string", "integer"]},
        "ok": {"type": "boolean"},
        "status": {"enum": ["NEW", "PAID"]}
      },
      "definitions": {
        "Address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}
      },
      "$defs": {
        "Address2": {"type": "object", "properties": {"city": {"type": "string"}}}
      }
    }"##;

    fn parsed(text: &str) -> Parsed {
        Parsed::parse(SchemaType::Json, text, &[]).unwrap()
    }

    fn iceberg_schema(fields: Vec<NestedFieldRef>) -> IcebergSchema {
        IcebergSchema::builder()
            .with_fields(fields)
            .build()
            .unwrap()
    }

    #[test]
    fn nested_schema_maps_to_iceberg_fields_and_ids() {
        let p = parsed(ORDER);
        let mut ids = FieldIds::new(None, 1);
        let schema = iceberg_schema(value_fields(&p, None, &mut ids).unwrap());
        let json = serde_json::to_value(Type::Struct(schema.as_struct().clone())).unwrap();
        // Properties sorted by name.
        let expected = serde_json::json!({"type":"struct","fields":[
            {"id":1,"name":"any","required":false,"type":"string"},
            {"id":2,"name":"at","required":false,"type":"timestamptz"},
            {"id":3,"name":"attrs","required":false,"type":{"type":"map","key-id":4,
                "key":"string","value-id":5,"value":"double","value-required":false}},
            {"id":6,"name":"bill","required":false,"type":{"type":"struct","fields":[
                {"id":7,"name":"city","required":false,"type":"string"}]}},
            {"id":8,"name":"day","required":false,"type":"date"},
            {"id":9,"name":"id","required":false,"type":"long"},
            {"id":10,"name":"mixed","required":false,"type":"string"},
            {"id":11,"name":"note","required":false,"type":"string"},
            {"id":12,"name":"ok","required":false,"type":"boolean"},
            {"id":13,"name":"ship","required":false,"type":{"type":"struct","fields":[
                {"id":14,"name":"city","required":false,"type":"string"},
                {"id":15,"name":"zip","required":false,"type":"string"}]}},
            {"id":16,"name":"status","required":false,"type":"string"},
            {"id":17,"name":"tags","required":false,"type":{"type":"list","element-id":18,
                "element":"string","element-required":false}},
            {"id":19,"name":"tod","required":false,"type":"time"}
        ]});
        assert_eq!(
            json,
            expected,
            "{}",
            serde_json::to_string_pretty(&json).unwrap()
        );
    }

    const PAYLOAD: &str = r#"{"id": 7, "ship": {"city": "Lyon", "extra": 1},
        "tags": ["a", "b"], "attrs": {"w": 1.5, "h": 2},
        "at": "2023-11-14T23:13:20.123456+01:00", "day": "2024-01-01", "tod": "01:00:00.5",
        "note": null, "bill": {"city": "Paris"}, "any": {"x": [1, 2]}, "mixed": 3,
        "ok": true, "status": "PAID", "unknown": "ignored"}"#;

    #[test]
    fn payloads_decode_into_arrow_columns() {
        let p = parsed(ORDER);
        let ice = iceberg_schema(value_fields(&p, None, &mut FieldIds::new(None, 1)).unwrap());
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&ice).unwrap());
        let rows = [
            decode_value(&p, PAYLOAD.as_bytes()).unwrap(),
            decode_value(&p, br#"{"id": 1.0}"#).unwrap(),
        ];
        for r in &rows {
            check_fits(arrow.fields(), r).unwrap();
        }
        let refs: Vec<&Value> = rows.iter().collect();
        let batch =
            RecordBatch::try_new(arrow.clone(), build_columns(arrow.fields(), &refs).unwrap())
                .unwrap();
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(col("id").as_primitive::<Int64Type>().values(), &[7, 1]);
        assert_eq!(
            col("at")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_700_000_000_123_456
        );
        assert_eq!(col("day").as_primitive::<Date32Type>().value(0), 19_723);
        assert_eq!(
            col("tod").as_primitive::<Time64MicrosecondType>().value(0),
            3_600_500_000
        );
        assert!(col("note").is_null(0));
        let ship = col("ship");
        assert_eq!(
            ship.as_struct().column(0).as_string::<i32>().value(0),
            "Lyon"
        );
        assert!(ship.as_struct().column(1).is_null(0));
        assert!(ship.is_null(1));
        assert_eq!(
            col("bill")
                .as_struct()
                .column(0)
                .as_string::<i32>()
                .value(0),
            "Paris"
        );
        let attrs = col("attrs");
        let attrs = attrs.as_map();
        assert_eq!(attrs.keys().as_string::<i32>().value(0), "h");
        assert_eq!(attrs.values().as_primitive::<Float64Type>().value(0), 2.0);
        assert_eq!(col("tags").as_list::<i32>().value(0).len(), 2);
        assert_eq!(col("any").as_string::<i32>().value(0), r#"{"x":[1,2]}"#);
        assert_eq!(col("mixed").as_string::<i32>().value(0), "3");
        assert!(col("ok").as_boolean().value(0));
        assert_eq!(col("status").as_string::<i32>().value(0), "PAID");
    }

    #[test]
    fn malformed_payloads_and_wrong_types_are_errors() {
        let p = parsed(ORDER);
        for n in 0..PAYLOAD.len() {
            if let Some(prefix) = PAYLOAD.get(..n) {
                assert!(decode_value(&p, prefix.as_bytes()).is_err(), "{prefix}");
            }
        }
        for bad in [
            r#"{"id": "7"}"#,
            r#"{"id": 1.5}"#,
            r#"{"id": 18446744073709551615}"#,
            r#"{"ship": "Lyon"}"#,
            r#"{"at": "2023-13-01T00:00:00Z"}"#,
            r#"{"at": "yesterday"}"#,
            r#"{"day": "2023-02-29"}"#,
            r#"{"tod": "25:00:00"}"#,
            r#"{"tags": ["a", 1]}"#,
            r#"{"ok": "true"}"#,
            r#"[1]"#,
            "\u{0}",
            r#"{"id": 1} {"id": 2}"#,
        ] {
            assert!(decode_value(&p, bad.as_bytes()).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(decode_value(&p, format!(r#"{{"any": {deep}}}"#).as_bytes()).is_err());
    }

    #[test]
    fn non_object_schemas_references_and_recursion() {
        let p = parsed(r#"{"type": "array", "items": {"type": "integer"}}"#);
        let fields = value_fields(&p, None, &mut FieldIds::new(None, 1)).unwrap();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].name, "value");
        assert_eq!(
            decode_value(&p, b"[1, 2]").unwrap(),
            Value::Struct(vec![(
                "value".into(),
                Value::List(vec![Value::Long(1), Value::Long(2)])
            )])
        );

        let recursive = parsed(
            r##"{"type": "object", "properties": {"v": {"type": "integer"}, "next": {"$ref": "#"}}}"##,
        );
        let err = value_fields(&recursive, None, &mut FieldIds::new(None, 1)).unwrap_err();
        assert!(err.contains("recursive"), "{err}");

        let dep = Resolved {
            name: "address.json".into(),
            schema: r##"{"$id": "https://example.com/address.json", "type": "object",
                "properties": {"city": {"$ref": "#/definitions/City"}},
                "definitions": {"City": {"type": "string"}}}"##
                .into(),
        };
        let p = Parsed::parse(
            SchemaType::Json,
            r#"{"type": "object", "properties": {"a": {"$ref": "address.json"},
                "b": {"$ref": "https://example.com/address.json#/properties/city"}}}"#,
            &[dep],
        )
        .unwrap();
        let schema = iceberg_schema(value_fields(&p, None, &mut FieldIds::new(None, 1)).unwrap());
        assert_eq!(
            *schema.field_by_name("a.city").unwrap().field_type,
            Type::Primitive(PrimitiveType::String)
        );
        assert_eq!(
            decode_value(&p, br#"{"a": {"city": "Lyon"}, "b": "x"}"#).unwrap(),
            Value::Struct(vec![
                (
                    "a".into(),
                    Value::Struct(vec![("city".into(), Value::String("Lyon".into()))])
                ),
                ("b".into(), Value::String("x".into())),
            ])
        );
    }

    #[test]
    fn schemas_without_a_type_hold_json_text() {
        let p = parsed("true");
        let fields = value_fields(&p, None, &mut FieldIds::new(None, 1)).unwrap();
        assert_eq!(fields[0].name, "value");
        assert_eq!(
            *fields[0].field_type,
            Type::Primitive(PrimitiveType::String)
        );
        assert_eq!(
            decode_value(&p, br#" {"a": [1, null]} "#).unwrap(),
            Value::Struct(vec![(
                "value".into(),
                Value::String(r#"{"a":[1,null]}"#.into())
            )])
        );
        assert_eq!(
            decode_value(&p, b"null").unwrap(),
            Value::Struct(vec![("value".into(), Value::Null)])
        );
    }

    #[test]
    fn evolution_keeps_ids() {
        let v1 = parsed(
            r#"{"type":"object","properties":{"b":{"type":"string"},"s":{"type":"object","properties":{"x":{"type":"integer"}}}}}"#,
        );
        let v2 = parsed(
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"},"s":{"type":"object","properties":{"w":{"type":"integer"},"x":{"type":"integer"}}}}}"#,
        );
        let old = iceberg_schema(value_fields(&v1, None, &mut FieldIds::new(None, 1)).unwrap());
        let mut ids = FieldIds::new(Some(&old), 1);
        let new = iceberg_schema(value_fields(&v2, None, &mut ids).unwrap());
        for name in ["b", "s", "s.x"] {
            assert_eq!(
                new.field_by_name(name).unwrap().id,
                old.field_by_name(name).unwrap().id,
                "{name}"
            );
        }
        assert_eq!(new.field_by_name("a").unwrap().id, 4);
        assert_eq!(new.field_by_name("s.w").unwrap().id, 5);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01"), Ok(1_000_000));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59.9999999-00:00"), Ok(-1));
        assert_eq!(
            parse_timestamp("1970-01-01T01:00:00+01:00"),
            Ok(0),
            "offsets are subtracted"
        );
        assert_eq!(
            parse_timestamp("2016-12-31T23:59:60Z"),
            parse_timestamp("2016-12-31T23:59:59.999999Z")
        );
        for bad in [
            "",
            "1970-01-01",
            "1970-01-01T00:00",
            "1970-01-01T00:00:00+1",
            "1970-01-01T00:00:00.Z",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_time(b"12:34:56.789"), Some((45_296_789_000, None)));
        assert_eq!(parse_date(b"2000-02-29"), Some(11_016));
        assert_eq!(parse_date(b"1900-02-29"), None);
    }
}
