//! Protobuf messages as Iceberg columns, and Protobuf payloads as [`Value`]s (see the
//! [parent module](super) for the mapping).
//!
//! Payloads are decoded with `prost_reflect::DynamicMessage::decode` (prost's own limits
//! bound nesting and lengths), then walked field by field in declaration order.

use floe_registry::protobuf::ProtobufSchema;
use iceberg::spec::{
    ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, StructType, Type,
};
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _,
    Value as PValue,
};

use super::ids::child_path;
use super::{FieldIds, FieldName, MAX_DEPTH, Value, too_deep};

/// Well-known types with a mapping of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wkt {
    /// `google.protobuf.Timestamp`: timestamptz.
    Timestamp,
    /// `google.protobuf.Duration`: long microseconds.
    Duration,
    /// `google.protobuf.Struct`, `Value`, `ListValue`: their JSON as a string.
    Json,
    /// `google.protobuf.Any`: JSON as a string.
    Any,
    /// `google.protobuf.*Value` wrappers: the wrapped primitive, optional.
    Wrapper,
}

fn wkt(m: &MessageDescriptor) -> Option<Wkt> {
    let name = m.full_name().strip_prefix("google.protobuf.")?;
    Some(match name {
        "Timestamp" => Wkt::Timestamp,
        "Duration" => Wkt::Duration,
        "Struct" | "Value" | "ListValue" => Wkt::Json,
        "Any" => Wkt::Any,
        "DoubleValue" | "FloatValue" | "Int64Value" | "UInt64Value" | "Int32Value"
        | "UInt32Value" | "BoolValue" | "StringValue" | "BytesValue" => Wkt::Wrapper,
        _ => return None,
    })
}

/// The fields of `m` in declaration order.
fn fields_in_order(m: &MessageDescriptor) -> impl Iterator<Item = FieldDescriptor> + '_ {
    m.descriptor_proto()
        .field
        .iter()
        .filter_map(|f| u32::try_from(f.number()).ok().and_then(|n| m.get_field(n)))
}

// ---------------------------------------------------------------------------------------
// Descriptor -> Iceberg columns.
// ---------------------------------------------------------------------------------------

/// The Iceberg columns of the message `message` (see [`super::value_fields`]).
pub fn value_fields(
    message: &MessageDescriptor,
    ids: &mut FieldIds,
) -> Result<Vec<NestedFieldRef>, String> {
    let mut mapper = Mapper {
        ids,
        stack: Vec::new(),
    };
    mapper.message_fields(message, "", 0)
}

struct Mapper<'i> {
    ids: &'i mut FieldIds,
    /// Full names of the messages being mapped (one met again is a recursion).
    stack: Vec<String>,
}

impl Mapper<'_> {
    fn message_fields(
        &mut self,
        m: &MessageDescriptor,
        path: &str,
        depth: usize,
    ) -> Result<Vec<NestedFieldRef>, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        if self.stack.iter().any(|s| s == m.full_name()) {
            return Err(format!(
                "message {} is recursive: a recursive type cannot be a table",
                m.full_name()
            ));
        }
        self.stack.push(m.full_name().to_string());
        let mut fields = Vec::new();
        for f in fields_in_order(m) {
            let p = child_path(path, f.name());
            let id = self.ids.id(&p);
            if let Some(ty) = self
                .field_type(&f, &p, depth + 1)
                .map_err(|e| format!("field {p}: {e}"))?
            {
                fields.push(NestedField::optional(id, f.name(), ty).into());
            }
        }
        self.stack.pop();
        Ok(fields)
    }

    fn field_type(
        &mut self,
        f: &FieldDescriptor,
        path: &str,
        depth: usize,
    ) -> Result<Option<Type>, String> {
        if f.is_map() {
            let Kind::Message(entry) = f.kind() else {
                return Err("map field without an entry message".into());
            };
            let kp = child_path(path, "key");
            let key_id = self.ids.id(&kp);
            let vp = child_path(path, "value");
            let value_id = self.ids.id(&vp);
            let key = self
                .kind_type(&entry.map_entry_key_field().kind(), &kp, depth + 1)?
                .ok_or("map key without a type")?;
            let value = self.kind_type(&entry.map_entry_value_field().kind(), &vp, depth + 1)?;
            Ok(value.map(|v| {
                Type::Map(MapType::new(
                    NestedField::map_key_element(key_id, key).into(),
                    NestedField::map_value_element(value_id, v, false).into(),
                ))
            }))
        } else if f.is_list() {
            let p = child_path(path, "element");
            let id = self.ids.id(&p);
            Ok(self.kind_type(&f.kind(), &p, depth + 1)?.map(|t| {
                Type::List(ListType::new(
                    NestedField::list_element(id, t, false).into(),
                ))
            }))
        } else {
            self.kind_type(&f.kind(), path, depth)
        }
    }

    fn kind_type(&mut self, kind: &Kind, path: &str, depth: usize) -> Result<Option<Type>, String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let p = |p: PrimitiveType| Ok(Some(Type::Primitive(p)));
        match kind {
            Kind::Double => p(PrimitiveType::Double),
            Kind::Float => p(PrimitiveType::Float),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => p(PrimitiveType::Int),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => {
                p(PrimitiveType::Long)
            }
            Kind::Uint64 | Kind::Fixed64 => p(PrimitiveType::Decimal {
                precision: 20,
                scale: 0,
            }),
            Kind::Bool => p(PrimitiveType::Boolean),
            Kind::String | Kind::Enum(_) => p(PrimitiveType::String),
            Kind::Bytes => p(PrimitiveType::Binary),
            Kind::Message(m) => match wkt(m) {
                Some(Wkt::Timestamp) => p(PrimitiveType::Timestamptz),
                Some(Wkt::Duration) => p(PrimitiveType::Long),
                Some(Wkt::Json | Wkt::Any) => p(PrimitiveType::String),
                Some(Wkt::Wrapper) => match m.get_field(1) {
                    Some(f) => self.kind_type(&f.kind(), path, depth + 1),
                    None => Err(format!("wrapper {} without its value field", m.full_name())),
                },
                None => {
                    let fields = self.message_fields(m, path, depth + 1)?;
                    Ok((!fields.is_empty()).then(|| Type::Struct(StructType::new(fields))))
                }
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Payload -> Value.
// ---------------------------------------------------------------------------------------

/// Decodes a payload (message indexes, then the message) written with `schema` into a
/// [`Value::Struct`] of the message's fields.
pub fn decode(schema: &ProtobufSchema, payload: &[u8]) -> Result<Value, String> {
    let (indexes, rest) = floe_registry::wire::split_indexes(payload).map_err(|e| e.to_string())?;
    let desc = schema
        .message_by_indexes(&indexes)
        .ok_or_else(|| format!("the schema has no message at indexes {indexes:?}"))?;
    decode_message(desc, rest)
}

/// Decodes the bytes of one message of type `desc` (no message indexes).
pub fn decode_message(desc: MessageDescriptor, bytes: &[u8]) -> Result<Value, String> {
    let msg = DynamicMessage::decode(desc, bytes)
        .map_err(|e| format!("invalid Protobuf message: {e}"))?;
    message_value(msg, 0)
}

fn message_value(mut msg: DynamicMessage, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let desc = msg.descriptor();
    let mut fields = Vec::with_capacity(desc.descriptor_proto().field.len());
    for f in fields_in_order(&desc) {
        let v = match msg.take_field(&f) {
            Some(v) => field_value(&f, v, depth + 1),
            None if f.supports_presence() => Ok(Value::Null),
            None => field_value(&f, f.default_value(), depth + 1),
        }
        .map_err(|e| format!("{}: {e}", f.name()))?;
        fields.push((FieldName::from(f.name()), v));
    }
    Ok(Value::Struct(fields))
}

fn field_value(f: &FieldDescriptor, v: PValue, depth: usize) -> Result<Value, String> {
    match v {
        PValue::List(items) => {
            let kind = f.kind();
            items
                .into_iter()
                .map(|item| kind_value(&kind, item, depth + 1))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::List)
        }
        PValue::Map(map) => {
            let Kind::Message(entry) = f.kind() else {
                return Err("map field without an entry message".into());
            };
            let value_kind = entry.map_entry_value_field().kind();
            let mut entries: Vec<(MapKey, PValue)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries
                .into_iter()
                .map(|(k, v)| Ok((map_key(k), kind_value(&value_kind, v, depth + 1)?)))
                .collect::<Result<Vec<_>, String>>()
                .map(Value::Map)
        }
        other => kind_value(&f.kind(), other, depth),
    }
}

fn map_key(k: MapKey) -> Value {
    match k {
        MapKey::Bool(b) => Value::Bool(b),
        MapKey::I32(i) => Value::Int(i),
        MapKey::I64(i) => Value::Long(i),
        MapKey::U32(u) => Value::Long(i64::from(u)),
        MapKey::U64(u) => Value::Decimal {
            unscaled: i128::from(u),
            scale: 0,
        },
        MapKey::String(s) => Value::String(s),
    }
}

fn kind_value(kind: &Kind, v: PValue, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match v {
        PValue::Bool(b) => Value::Bool(b),
        PValue::I32(i) => Value::Int(i),
        PValue::I64(i) => Value::Long(i),
        PValue::U32(u) => Value::Long(i64::from(u)),
        PValue::U64(u) => Value::Decimal {
            unscaled: i128::from(u),
            scale: 0,
        },
        PValue::F32(x) => Value::Float(x),
        PValue::F64(x) => Value::Double(x),
        PValue::String(s) => Value::String(s),
        PValue::Bytes(b) => Value::Bytes(b.to_vec()),
        PValue::EnumNumber(n) => Value::String(match kind {
            Kind::Enum(e) => match e.get_value(n) {
                Some(v) => v.name().to_string(),
                None => n.to_string(),
            },
            _ => n.to_string(),
        }),
        PValue::Message(m) => match wkt(&m.descriptor()) {
            Some(Wkt::Timestamp) => Value::TimestampMicros(seconds_nanos_micros(&m, true)?),
            Some(Wkt::Duration) => Value::Long(seconds_nanos_micros(&m, false)?),
            Some(Wkt::Json) => Value::String(wkt_json(&m, depth + 1)?.to_string()),
            Some(Wkt::Any) => Value::String(any_json(&m, depth + 1)?.to_string()),
            Some(Wkt::Wrapper) => {
                let desc = m.descriptor();
                let f = desc
                    .get_field(1)
                    .ok_or_else(|| format!("wrapper {} without its value", desc.full_name()))?;
                let inner = m.get_field(&f).into_owned();
                kind_value(&f.kind(), inner, depth + 1)?
            }
            None => message_value(m, depth + 1)?,
        },
        PValue::List(_) | PValue::Map(_) => {
            return Err("a list or map where a single value belongs".into());
        }
    })
}

fn number_field(m: &DynamicMessage, number: u32) -> i64 {
    match m.get_field_by_number(number).as_deref() {
        Some(PValue::I64(i)) => *i,
        Some(PValue::I32(i)) => i64::from(*i),
        _ => 0,
    }
}

/// Microseconds of a Timestamp or Duration (`seconds` and `nanos`). Timestamps round
/// towards the past, durations towards zero.
fn seconds_nanos_micros(m: &DynamicMessage, timestamp: bool) -> Result<i64, String> {
    let seconds = number_field(m, 1);
    let nanos = number_field(m, 2);
    let sub = if timestamp {
        nanos.div_euclid(1000)
    } else {
        nanos / 1000
    };
    seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(sub))
        .ok_or_else(|| format!("{} out of range ({seconds} s)", m.descriptor().name()))
}

/// The JSON of a `google.protobuf.Struct`, `Value` or `ListValue`.
fn wkt_json(m: &DynamicMessage, depth: usize) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let desc = m.descriptor();
    match desc.full_name() {
        "google.protobuf.Struct" => {
            let mut out = serde_json::Map::new();
            if let Some(PValue::Map(fields)) = m.get_field_by_number(1).as_deref() {
                for (k, v) in fields {
                    if let (MapKey::String(k), PValue::Message(v)) = (k, v) {
                        out.insert(k.clone(), wkt_json(v, depth + 1)?);
                    }
                }
            }
            Ok(J::Object(out))
        }
        "google.protobuf.ListValue" => {
            let mut out = Vec::new();
            if let Some(PValue::List(items)) = m.get_field_by_number(1).as_deref() {
                for item in items {
                    if let PValue::Message(item) = item {
                        out.push(wkt_json(item, depth + 1)?);
                    }
                }
            }
            Ok(J::Array(out))
        }
        _ => {
            // google.protobuf.Value: the one member of its oneof that is set.
            for number in 1..=6 {
                if !m.has_field_by_number(number) {
                    continue;
                }
                let v = m.get_field_by_number(number);
                return Ok(match v.as_deref() {
                    Some(PValue::F64(x)) => serde_json::Number::from_f64(*x)
                        .map(J::Number)
                        .unwrap_or_else(|| J::String(x.to_string())),
                    Some(PValue::String(s)) => J::String(s.clone()),
                    Some(PValue::Bool(b)) => J::Bool(*b),
                    Some(PValue::Message(inner)) => wkt_json(inner, depth + 1)?,
                    _ => J::Null,
                });
            }
            Ok(J::Null)
        }
    }
}

/// The JSON of a `google.protobuf.Any`: its fields with `@type` when its type is in the
/// pool, else `@type` and the base64 of its bytes.
fn any_json(m: &DynamicMessage, depth: usize) -> Result<serde_json::Value, String> {
    use base64::Engine as _;
    let url = match m.get_field_by_number(1).as_deref() {
        Some(PValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let bytes = match m.get_field_by_number(2).as_deref() {
        Some(PValue::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let name = url.rsplit('/').next().unwrap_or_default();
    let pool = m.descriptor().parent_pool().clone();
    let mut out = serde_json::Map::new();
    out.insert("@type".into(), serde_json::Value::String(url.clone()));
    let decoded = pool
        .get_message_by_name(name)
        .and_then(|desc| DynamicMessage::decode(desc, bytes.as_ref()).ok());
    match decoded {
        Some(inner) => match wkt(&inner.descriptor()) {
            None => {
                if let Value::Struct(fields) = message_value(inner, depth + 1)? {
                    for (k, v) in fields {
                        out.insert(k.to_string(), super::to_json(&v));
                    }
                }
            }
            Some(_) => {
                let v = kind_value(
                    &Kind::Message(inner.descriptor()),
                    PValue::Message(inner),
                    depth + 1,
                )?;
                out.insert("value".into(), super::to_json(&v));
            }
        },
        None => {
            out.insert(
                "value".into(),
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes)),
            );
        }
    }
    Ok(serde_json::Value::Object(out))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Int32Type, Int64Type, TimestampMicrosecondType};
    use arrow_array::{Array, RecordBatch};
    use floe_registry::schema::{Parsed, SchemaType};
    use iceberg::spec::Schema as IcebergSchema;
    use prost_reflect::prost::Message as _;

    use super::*;
    use crate::typed::{build_columns, check_fits, decode_value, value_fields};

    const PROTO: &str = r#"
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/any.proto";

message Order {
  int64 id = 1;
  Address ship = 2;
  repeated string tags = 3;
  map<string, int32> attrs = 4;
  google.protobuf.Timestamp at = 5;
  optional string note = 6;
  Status status = 7;
  uint64 big = 8;
  google.protobuf.Int32Value maybe = 9;
  oneof choice {
    string text = 10;
    int32 number = 11;
  }
  google.protobuf.Struct extra = 12;
  repeated Address more = 13;
  google.protobuf.Duration took = 14;
  uint32 small = 15;
  bytes raw = 16;
  map<int64, Address> by_id = 17;
}

message Address {
  string city = 1;
  string zip = 2;
}

enum Status {
  NEW = 0;
  PAID = 1;
}

message Node {
  int32 v = 1;
  Node next = 2;
}

message Empty {}
message HasEmpty { Empty e = 1; int32 x = 2; }
message Wrap { google.protobuf.Any any = 1; }
"#;

    fn parsed() -> Parsed {
        Parsed::parse(SchemaType::Protobuf, PROTO, &[]).unwrap()
    }

    fn schema(p: &Parsed) -> &ProtobufSchema {
        match p {
            Parsed::Protobuf(s) => s,
            _ => unreachable!(),
        }
    }

    fn order(p: &Parsed, id: i64, full: bool) -> Vec<u8> {
        let s = schema(p);
        let pool = s.pool();
        let desc = s.message_by_indexes(&[0]).unwrap();
        let mut m = DynamicMessage::new(desc.clone());
        m.set_field_by_name("id", PValue::I64(id));
        if full {
            let mut addr = DynamicMessage::new(pool.get_message_by_name("shop.Address").unwrap());
            addr.set_field_by_name("city", PValue::String("Lyon".into()));
            m.set_field_by_name("ship", PValue::Message(addr.clone()));
            m.set_field_by_name(
                "tags",
                PValue::List(vec![PValue::String("a".into()), PValue::String("b".into())]),
            );
            m.set_field_by_name(
                "attrs",
                PValue::Map(
                    [
                        (MapKey::String("z".into()), PValue::I32(26)),
                        (MapKey::String("a".into()), PValue::I32(1)),
                    ]
                    .into_iter()
                    .collect(),
                ),
            );
            let mut ts = DynamicMessage::new(
                pool.get_message_by_name("google.protobuf.Timestamp")
                    .unwrap(),
            );
            ts.set_field_by_name("seconds", PValue::I64(1_700_000_000));
            ts.set_field_by_name("nanos", PValue::I32(123_456_789));
            m.set_field_by_name("at", PValue::Message(ts));
            m.set_field_by_name("note", PValue::String("hi".into()));
            m.set_field_by_name("status", PValue::EnumNumber(1));
            m.set_field_by_name("big", PValue::U64(u64::MAX));
            let mut w = DynamicMessage::new(
                pool.get_message_by_name("google.protobuf.Int32Value")
                    .unwrap(),
            );
            w.set_field_by_name("value", PValue::I32(0));
            m.set_field_by_name("maybe", PValue::Message(w));
            m.set_field_by_name("number", PValue::I32(5));
            let value_desc = pool.get_message_by_name("google.protobuf.Value").unwrap();
            let mut v = DynamicMessage::new(value_desc);
            v.set_field_by_name("number_value", PValue::F64(1.5));
            let mut st =
                DynamicMessage::new(pool.get_message_by_name("google.protobuf.Struct").unwrap());
            st.set_field_by_name(
                "fields",
                PValue::Map(
                    [(MapKey::String("k".into()), PValue::Message(v))]
                        .into_iter()
                        .collect(),
                ),
            );
            m.set_field_by_name("extra", PValue::Message(st));
            m.set_field_by_name("more", PValue::List(vec![PValue::Message(addr.clone())]));
            let mut d = DynamicMessage::new(
                pool.get_message_by_name("google.protobuf.Duration")
                    .unwrap(),
            );
            d.set_field_by_name("seconds", PValue::I64(2));
            d.set_field_by_name("nanos", PValue::I32(500_000_000));
            m.set_field_by_name("took", PValue::Message(d));
            m.set_field_by_name("small", PValue::U32(u32::MAX));
            m.set_field_by_name("raw", PValue::Bytes(vec![0, 1].into()));
            m.set_field_by_name(
                "by_id",
                PValue::Map(
                    [(MapKey::I64(-3), PValue::Message(addr))]
                        .into_iter()
                        .collect(),
                ),
            );
        } else {
            m.set_field_by_name("status", PValue::EnumNumber(7));
        }
        // Message indexes [0] then the message, as after the 5-byte header.
        let mut out = vec![0u8];
        out.extend(m.encode_to_vec());
        out
    }

    fn iceberg_schema(fields: Vec<NestedFieldRef>) -> IcebergSchema {
        IcebergSchema::builder()
            .with_fields(fields)
            .build()
            .unwrap()
    }

    #[test]
    fn nested_message_maps_to_iceberg_fields_and_ids() {
        let p = parsed();
        let mut ids = FieldIds::new(None, 1);
        let schema = iceberg_schema(value_fields(&p, None, &mut ids).unwrap());
        let json = serde_json::to_value(Type::Struct(schema.as_struct().clone())).unwrap();
        let expected = serde_json::json!({"type":"struct","fields":[
            {"id":1,"name":"id","required":false,"type":"long"},
            {"id":2,"name":"ship","required":false,"type":{"type":"struct","fields":[
                {"id":3,"name":"city","required":false,"type":"string"},
                {"id":4,"name":"zip","required":false,"type":"string"}]}},
            {"id":5,"name":"tags","required":false,"type":{"type":"list","element-id":6,
                "element":"string","element-required":false}},
            {"id":7,"name":"attrs","required":false,"type":{"type":"map","key-id":8,
                "key":"string","value-id":9,"value":"int","value-required":false}},
            {"id":10,"name":"at","required":false,"type":"timestamptz"},
            {"id":11,"name":"note","required":false,"type":"string"},
            {"id":12,"name":"status","required":false,"type":"string"},
            {"id":13,"name":"big","required":false,"type":"decimal(20, 0)"},
            {"id":14,"name":"maybe","required":false,"type":"int"},
            {"id":15,"name":"text","required":false,"type":"string"},
            {"id":16,"name":"number","required":false,"type":"int"},
            {"id":17,"name":"extra","required":false,"type":"string"},
            {"id":18,"name":"more","required":false,"type":{"type":"list","element-id":19,
                "element":{"type":"struct","fields":[
                    {"id":20,"name":"city","required":false,"type":"string"},
                    {"id":21,"name":"zip","required":false,"type":"string"}]},
                "element-required":false}},
            {"id":22,"name":"took","required":false,"type":"long"},
            {"id":23,"name":"small","required":false,"type":"long"},
            {"id":24,"name":"raw","required":false,"type":"binary"},
            {"id":25,"name":"by_id","required":false,"type":{"type":"map","key-id":26,
                "key":"long","value-id":27,"value":{"type":"struct","fields":[
                    {"id":28,"name":"city","required":false,"type":"string"},
                    {"id":29,"name":"zip","required":false,"type":"string"}]},
                "value-required":false}}
        ]});
        assert_eq!(
            json,
            expected,
            "{}",
            serde_json::to_string_pretty(&json).unwrap()
        );

        // Another message of the file by its indexes; an empty message has no column.
        let fields = value_fields(&p, Some(&[4]), &mut FieldIds::new(None, 1)).unwrap();
        let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["x"]);
        assert!(value_fields(&p, Some(&[9]), &mut FieldIds::new(None, 1)).is_err());
    }

    #[test]
    fn payloads_decode_into_arrow_columns() {
        let p = parsed();
        let ice = iceberg_schema(value_fields(&p, None, &mut FieldIds::new(None, 1)).unwrap());
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&ice).unwrap());
        let rows = [
            decode_value(&p, &order(&p, 1, true)).unwrap(),
            decode_value(&p, &order(&p, 2, false)).unwrap(),
        ];
        for r in &rows {
            check_fits(arrow.fields(), r).unwrap();
        }
        let refs: Vec<&Value> = rows.iter().collect();
        let batch =
            RecordBatch::try_new(arrow.clone(), build_columns(arrow.fields(), &refs).unwrap())
                .unwrap();
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(col("id").as_primitive::<Int64Type>().values(), &[1, 2]);
        let ship = col("ship");
        assert_eq!(
            ship.as_struct().column(0).as_string::<i32>().value(0),
            "Lyon"
        );
        // proto3 field without presence: the default, not null.
        assert_eq!(ship.as_struct().column(1).as_string::<i32>().value(0), "");
        assert!(ship.is_null(1), "unset message field is null");
        let tags = col("tags");
        assert_eq!(tags.as_list::<i32>().value(0).len(), 2);
        assert_eq!(tags.as_list::<i32>().value(1).len(), 0);
        assert!(!tags.is_null(1));
        let attrs = col("attrs");
        let attrs = attrs.as_map();
        assert_eq!(attrs.keys().as_string::<i32>().value(0), "a");
        assert_eq!(attrs.values().as_primitive::<Int32Type>().value(1), 26);
        assert_eq!(
            col("at")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_700_000_000_123_456
        );
        assert!(col("at").is_null(1));
        assert_eq!(col("note").as_string::<i32>().value(0), "hi");
        assert!(col("note").is_null(1), "proto3 optional unset is null");
        assert_eq!(col("status").as_string::<i32>().value(0), "PAID");
        assert_eq!(col("status").as_string::<i32>().value(1), "7");
        let big = col("big");
        assert_eq!(
            big.as_primitive::<Decimal128Type>().value(0),
            i128::from(u64::MAX)
        );
        assert_eq!(big.as_primitive::<Decimal128Type>().value(1), 0);
        assert_eq!(col("maybe").as_primitive::<Int32Type>().value(0), 0);
        assert!(col("maybe").is_null(1));
        assert!(col("text").is_null(0));
        assert_eq!(col("number").as_primitive::<Int32Type>().value(0), 5);
        assert_eq!(col("extra").as_string::<i32>().value(0), r#"{"k":1.5}"#);
        assert_eq!(col("more").as_list::<i32>().value(0).len(), 1);
        assert_eq!(col("took").as_primitive::<Int64Type>().value(0), 2_500_000);
        assert_eq!(
            col("small").as_primitive::<Int64Type>().value(0),
            i64::from(u32::MAX)
        );
        assert_eq!(col("raw").as_binary::<i64>().value(0), &[0, 1]);
        let by_id = col("by_id");
        assert_eq!(
            by_id.as_map().keys().as_primitive::<Int64Type>().value(0),
            -3
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let p = parsed();
        let good = order(&p, 1, true);
        assert!(decode_value(&p, &good).is_ok());
        let mut failures = 0;
        for n in 0..good.len() {
            // A prefix may end between fields (a valid, shorter message); it must not panic.
            if decode_value(&p, &good[..n]).is_err() {
                failures += 1;
            }
        }
        assert!(failures > good.len() / 2);
        assert!(decode_value(&p, &[]).is_err());
        assert!(decode_value(&p, &[0, 0xff, 0xff]).is_err());
        assert!(decode_value(&p, &[0, 0x0a, 0x7f]).is_err());
        // Indexes naming no message.
        assert!(decode_value(&p, &[2, 40, 0]).is_err());
        // Deep nesting of a recursive message is bounded.
        let mut deep = Vec::new();
        for _ in 0..200 {
            let mut m = vec![0x12];
            let len = deep.len();
            let mut l = len;
            while l >= 0x80 {
                m.push((l as u8 & 0x7f) | 0x80);
                l >>= 7;
            }
            m.push(l as u8);
            m.extend(deep);
            deep = m;
        }
        let mut payload = vec![2, 4]; // indexes [2]: Node
        payload.extend(&deep);
        assert!(decode_value(&p, &payload).is_err());
    }

    #[test]
    fn any_is_json_text() {
        let p = parsed();
        let s = schema(&p);
        let pool = s.pool();
        let fields = value_fields(&p, Some(&[5]), &mut FieldIds::new(None, 1)).unwrap();
        assert_eq!(
            *fields[0].field_type,
            Type::Primitive(PrimitiveType::String)
        );
        let mut addr = DynamicMessage::new(pool.get_message_by_name("shop.Address").unwrap());
        addr.set_field_by_name("city", PValue::String("Lyon".into()));
        let encode = |url: &str, bytes: Vec<u8>| {
            let mut any =
                DynamicMessage::new(pool.get_message_by_name("google.protobuf.Any").unwrap());
            any.set_field_by_name("type_url", PValue::String(url.into()));
            any.set_field_by_name("value", PValue::Bytes(bytes.into()));
            let mut wrap = DynamicMessage::new(s.message_by_indexes(&[5]).unwrap());
            wrap.set_field_by_name("any", PValue::Message(any));
            // Message indexes [5]: count 1, index 5 (zigzag).
            let mut out = vec![2, 10];
            out.extend(wrap.encode_to_vec());
            out
        };
        let text = |payload: Vec<u8>| match decode_value(&p, &payload).unwrap() {
            Value::Struct(f) => f[0].1.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            text(encode(
                "type.googleapis.com/shop.Address",
                addr.encode_to_vec()
            )),
            Value::String(
                r#"{"@type":"type.googleapis.com/shop.Address","city":"Lyon","zip":""}"#.into()
            )
        );
        assert_eq!(
            text(encode("type.googleapis.com/other.Thing", vec![1, 2, 3])),
            Value::String(r#"{"@type":"type.googleapis.com/other.Thing","value":"AQID"}"#.into())
        );
    }

    #[test]
    fn recursive_messages_are_refused_and_evolution_keeps_ids() {
        let p = parsed();
        let err = value_fields(&p, Some(&[2]), &mut FieldIds::new(None, 1)).unwrap_err();
        assert!(err.contains("recursive"), "{err}");

        let v1 = Parsed::parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\"; message M { int32 a = 1; map<string, string> m = 2; }",
            &[],
        )
        .unwrap();
        let v2 = Parsed::parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\"; message M { string b = 3; int32 a = 1; map<string, string> m = 2; }",
            &[],
        )
        .unwrap();
        let old = iceberg_schema(value_fields(&v1, None, &mut FieldIds::new(None, 1)).unwrap());
        let new =
            iceberg_schema(value_fields(&v2, None, &mut FieldIds::new(Some(&old), 1)).unwrap());
        assert_eq!(new.field_by_name("a").unwrap().id, 1);
        assert_eq!(new.field_by_name("m").unwrap().id, 2);
        assert_eq!(new.field_by_name("m.value").unwrap().id, 4);
        assert_eq!(new.field_by_name("b").unwrap().id, 5);
    }
}
