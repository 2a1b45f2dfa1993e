//! Avro schemas: parsed with the `apache-avro` crate, references inlined, compatibility by
//! Avro's own schema-resolution rules.
//!
//! A schema may name types that other registered schemas define (Confluent's references:
//! the reference's name is the full name of the type). Before parsing, such a name is
//! replaced by the referenced definition, once (later uses keep the name, as Avro
//! requires), so the parsed schema is self-contained: the compatibility check then compares
//! the types themselves, not just their names, and a decoder needs nothing else.
//!
//! Compatibility is Avro's schema resolution: a reader schema can read data written with a
//! writer schema when every writer field it reads has a compatible type (with the
//! promotions int → long → float → double, string ↔ bytes), every reader field missing from
//! the writer has a default, enum symbols the writer may write exist in the reader, and
//! unions match. `apache-avro`'s `SchemaCompatibility::can_read` does exactly this.

use std::collections::{HashMap, HashSet};

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde_json::Value;

use crate::schema::Resolved;

/// Largest schema text accepted (the registry's request limit is the real bound).
const MAX_SCHEMA_BYTES: usize = 4 << 20;
/// Type names that are not references.
const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// A parsed, self-contained Avro schema.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    schema: Schema,
    /// The same schema without logical types, for the compatibility check.
    physical: Schema,
    canonical: String,
}

impl AvroSchema {
    /// Parses an Avro schema (JSON) whose named types may come from `deps`.
    pub fn parse(text: &str, deps: &[Resolved]) -> Result<AvroSchema, String> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(format!(
                "schema of {} bytes is larger than {MAX_SCHEMA_BYTES}",
                text.len()
            ));
        }
        let mut value: Value =
            serde_json::from_str(text).map_err(|e| format!("Invalid schema JSON: {e}"))?;
        if !deps.is_empty() {
            let mut definitions = HashMap::new();
            for dep in deps {
                let dep_value: Value = serde_json::from_str(&dep.schema)
                    .map_err(|e| format!("Invalid referenced schema {}: {e}", dep.name))?;
                collect_definitions(&dep_value, None, &mut definitions);
            }
            let mut defined = HashSet::new();
            inline(&mut value, None, &definitions, &mut defined, 0)?;
        }
        let schema = Schema::parse(&value).map_err(|e| format!("Invalid Avro schema: {e}"))?;
        let rendered = serde_json::to_value(&schema)
            .map_err(|e| format!("Invalid Avro schema: cannot render it: {e}"))?;
        let canonical = rendered.to_string();
        let mut physical = rendered;
        strip_logical_types(&mut physical);
        let physical = Schema::parse(&physical)
            .map_err(|e| format!("Invalid Avro schema: its physical form does not parse: {e}"))?;
        Ok(AvroSchema {
            schema,
            physical,
            canonical,
        })
    }

    /// Compact JSON of the parsed schema (attributes in a fixed order, references inlined).
    pub fn canonical(&self) -> String {
        self.canonical.clone()
    }

    /// The parsed schema (self-contained).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Why `self` as reader cannot read data written with `old` (empty: it can).
    pub fn backward_errors(&self, old: &AvroSchema) -> Vec<String> {
        match SchemaCompatibility::can_read(&old.physical, &self.physical) {
            Ok(()) => Vec::new(),
            Err(e) => {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    message.push_str(": ");
                    message.push_str(&cause.to_string());
                    source = cause.source();
                }
                vec![message]
            }
        }
    }
}

/// Removes `logicalType` annotations: a logical type is read as its underlying type (as
/// Avro's own resolution does, and Confluent's check), and `apache-avro`'s checker does not
/// know the logical types.
fn strip_logical_types(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.remove("logicalType");
            for v in object.values_mut() {
                strip_logical_types(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_logical_types),
        _ => {}
    }
}

/// The full name of a named type definition (`name` qualified by its or the enclosing
/// namespace).
fn full_name(object: &serde_json::Map<String, Value>, enclosing: Option<&str>) -> Option<String> {
    let name = object.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_string());
    }
    match object
        .get("namespace")
        .and_then(Value::as_str)
        .or(enclosing)
    {
        Some(ns) if !ns.is_empty() => Some(format!("{ns}.{name}")),
        _ => Some(name.to_string()),
    }
}

fn namespace_of(full: &str) -> Option<&str> {
    full.rfind('.').map(|i| &full[..i])
}

/// Every named type (record, enum, fixed) a referenced schema defines, by full name, each
/// with its namespace made explicit so it keeps its name wherever it is inlined.
fn collect_definitions(value: &Value, enclosing: Option<&str>, out: &mut HashMap<String, Value>) {
    match value {
        Value::Array(items) => {
            for item in items {
                collect_definitions(item, enclosing, out);
            }
        }
        Value::Object(object) => {
            let kind = object.get("type").and_then(Value::as_str);
            let named = matches!(kind, Some("record" | "error" | "enum" | "fixed"));
            let mut inner_ns = enclosing.map(str::to_string);
            if named && let Some(full) = full_name(object, enclosing) {
                let mut explicit = object.clone();
                explicit.insert("name".into(), Value::String(full.clone()));
                explicit.remove("namespace");
                inner_ns = namespace_of(&full).map(str::to_string);
                out.entry(full).or_insert(Value::Object(explicit));
            }
            if let Some(fields) = object.get("fields").and_then(Value::as_array) {
                for field in fields {
                    if let Some(t) = field.get("type") {
                        collect_definitions(t, inner_ns.as_deref(), out);
                    }
                }
            }
            for key in ["items", "values"] {
                if let Some(t) = object.get(key) {
                    collect_definitions(t, inner_ns.as_deref(), out);
                }
            }
            if !named && let Some(t @ (Value::Object(_) | Value::Array(_))) = object.get("type") {
                collect_definitions(t, enclosing, out);
            }
        }
        _ => {}
    }
}

/// Replaces the first use of each referenced type name in `value` by its definition.
fn inline(
    value: &mut Value,
    enclosing: Option<&str>,
    definitions: &HashMap<String, Value>,
    defined: &mut HashSet<String>,
    depth: usize,
) -> Result<(), String> {
    if depth > 64 {
        return Err("Invalid Avro schema: references nest deeper than 64 levels".into());
    }
    match value {
        Value::String(name) => {
            if PRIMITIVES.contains(&name.as_str()) {
                return Ok(());
            }
            let candidates = [
                enclosing
                    .filter(|_| !name.contains('.'))
                    .map(|ns| format!("{ns}.{name}")),
                Some(name.clone()),
            ];
            for full in candidates.into_iter().flatten() {
                if defined.contains(&full) {
                    return Ok(());
                }
                if let Some(definition) = definitions.get(&full) {
                    defined.insert(full.clone());
                    let mut definition = definition.clone();
                    inline(
                        &mut definition,
                        namespace_of(&full),
                        definitions,
                        defined,
                        depth + 1,
                    )?;
                    *value = definition;
                    return Ok(());
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                inline(item, enclosing, definitions, defined, depth + 1)?;
            }
            Ok(())
        }
        Value::Object(object) => {
            let kind = object
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_string);
            let named = matches!(kind.as_deref(), Some("record" | "error" | "enum" | "fixed"));
            let mut inner_ns = enclosing.map(str::to_string);
            if named && let Some(full) = full_name(object, enclosing) {
                inner_ns = namespace_of(&full).map(str::to_string);
                defined.insert(full);
            }
            if let Some(Value::Array(fields)) = object.get_mut("fields") {
                for field in fields {
                    if let Some(t) = field.get_mut("type") {
                        inline(t, inner_ns.as_deref(), definitions, defined, depth + 1)?;
                    }
                }
            }
            for key in ["items", "values"] {
                if let Some(t) = object.get_mut(key) {
                    inline(t, inner_ns.as_deref(), definitions, defined, depth + 1)?;
                }
            }
            if !named && let Some(t) = object.get_mut("type") {
                inline(t, enclosing, definitions, defined, depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AvroSchema {
        AvroSchema::parse(text, &[]).unwrap()
    }

    const V1: &str = r#"{"type":"record","name":"User","namespace":"shop","fields":[
        {"name":"id","type":"long"},{"name":"name","type":"string"}]}"#;

    #[test]
    fn whitespace_and_attribute_order_do_not_change_the_canonical_text() {
        let a = parse(V1);
        let b = parse(
            r#"{"fields":[{"type":"long","name":"id"},{"name":"name","type":"string"}],
                "namespace":"shop","name":"User","type":"record"}"#,
        );
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(a.canonical(), parse(r#""string""#).canonical());
    }

    #[test]
    fn invalid_schemas_are_refused_with_a_reason() {
        for bad in [
            "",
            "{",
            r#"{"type":"record","name":"X","fields":[{"name":"a","type":"nosuch"}]}"#,
            r#"{"type":"nope"}"#,
            r#"{"type":"enum","name":"E","symbols":["A","A"]}"#,
        ] {
            let err = AvroSchema::parse(bad, &[]).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
    }

    #[test]
    fn adding_a_field_with_a_default_is_backward_compatible_without_one_it_is_not() {
        let v1 = parse(V1);
        let with_default = parse(
            r#"{"type":"record","name":"User","namespace":"shop","fields":[
            {"name":"id","type":"long"},{"name":"name","type":"string"},
            {"name":"email","type":["null","string"],"default":null}]}"#,
        );
        let without = parse(
            r#"{"type":"record","name":"User","namespace":"shop","fields":[
            {"name":"id","type":"long"},{"name":"name","type":"string"},
            {"name":"email","type":"string"}]}"#,
        );
        assert!(with_default.backward_errors(&v1).is_empty());
        let errors = without.backward_errors(&v1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("email"), "{errors:?}");
        // FORWARD: the old reader ignores the new field either way.
        assert!(v1.backward_errors(&without).is_empty());
    }

    #[test]
    fn logical_types_are_checked_as_their_underlying_types() {
        let v1 = parse(
            r#"{"type":"record","name":"R","fields":[
            {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
            {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"day","type":{"type":"int","logicalType":"date"}},
            {"name":"u","type":{"type":"string","logicalType":"uuid"}}]}"#,
        );
        let v2 = parse(
            r#"{"type":"record","name":"R","fields":[
            {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
            {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"day","type":{"type":"int","logicalType":"date"}},
            {"name":"u","type":{"type":"string","logicalType":"uuid"}},
            {"name":"c","type":["null","string"],"default":null}]}"#,
        );
        assert!(
            v2.backward_errors(&v1).is_empty(),
            "{:?}",
            v2.backward_errors(&v1)
        );
        assert!(v1.backward_errors(&v2).is_empty());
        // The canonical text keeps them.
        assert!(v1.canonical().contains("decimal"));
    }

    #[test]
    fn type_promotion_is_one_way() {
        let int = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        let long = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#);
        assert!(long.backward_errors(&int).is_empty());
        assert!(!int.backward_errors(&long).is_empty());
    }

    #[test]
    fn referenced_types_are_inlined_and_compared_by_content() {
        let address_v1 = Resolved {
            name: "shop.Address".into(),
            schema: r#"{"type":"record","name":"Address","namespace":"shop",
                "fields":[{"name":"city","type":"string"}]}"#
                .into(),
        };
        let address_v2 = Resolved {
            name: "shop.Address".into(),
            schema: r#"{"type":"record","name":"Address","namespace":"shop",
                "fields":[{"name":"city","type":"string"},{"name":"zip","type":"string"}]}"#
                .into(),
        };
        let text = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
            {"name":"ship","type":"Address"},{"name":"bill","type":"shop.Address"}]}"#;
        let v1 = AvroSchema::parse(text, std::slice::from_ref(&address_v1)).unwrap();
        let v2 = AvroSchema::parse(text, std::slice::from_ref(&address_v2)).unwrap();
        assert!(v1.canonical().contains("city"));
        assert_ne!(v1.canonical(), v2.canonical());
        // The new required `zip` has no default: v2 cannot read v1's data.
        assert!(!v2.backward_errors(&v1).is_empty());
        assert!(v1.backward_errors(&v2).is_empty());
        // Without the reference the name is unknown.
        assert!(AvroSchema::parse(text, &[]).is_err());
    }
}
