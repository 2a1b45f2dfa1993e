//! A registered schema, whatever its type: [`SchemaType`], the references it names, and
//! [`Parsed`], the parsed form each type module provides (Avro in [`crate::avro`], Protobuf
//! in [`crate::protobuf`], JSON Schema in [`crate::json_schema`]) with the three things the
//! registry needs of it: that it parses, a canonical text to recognise the same schema
//! registered twice, and the compatibility check between two versions.

use serde::{Deserialize, Serialize};

/// The three schema types of the Confluent API (`schemaType`; absent means Avro).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    /// Apache Avro (the default).
    #[default]
    Avro,
    /// Protocol Buffers (proto2/proto3 `.proto` text, or a base64 `FileDescriptorProto`).
    Protobuf,
    /// JSON Schema.
    Json,
}

impl SchemaType {
    /// The API's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
            SchemaType::Json => "JSON",
        }
    }

    /// Parses the API's name (case-insensitive, as Confluent's registry).
    pub fn parse(name: &str) -> Option<SchemaType> {
        match name.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            "JSON" => Some(SchemaType::Json),
            _ => None,
        }
    }
}

/// A reference of a schema to another registered schema (`references` of the API): the
/// name it is known by inside the schema (an Avro full name, a Protobuf import path, a JSON
/// Schema `$ref` URL), and the subject and version that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// Name inside the referencing schema.
    pub name: String,
    /// Subject of the referenced schema.
    pub subject: String,
    /// Version of the referenced schema.
    pub version: i32,
}

/// A referenced schema resolved to its text: every schema a schema depends on, directly
/// or through other references, in dependency order (a schema after what it references).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The name the reference gives it (see [`Reference::name`]).
    pub name: String,
    /// Its text as registered.
    pub schema: String,
}

/// A parsed schema of any type.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// Avro.
    Avro(crate::avro::AvroSchema),
    /// Protobuf.
    Protobuf(crate::protobuf::ProtobufSchema),
    /// JSON Schema.
    Json(crate::json_schema::JsonSchema),
}

impl Parsed {
    /// Parses `text` of type `ty` with the schemas it references; the error says why it
    /// is not a valid schema (the API's 42201).
    pub fn parse(ty: SchemaType, text: &str, deps: &[Resolved]) -> Result<Parsed, String> {
        Ok(match ty {
            SchemaType::Avro => Parsed::Avro(crate::avro::AvroSchema::parse(text, deps)?),
            SchemaType::Protobuf => {
                Parsed::Protobuf(crate::protobuf::ProtobufSchema::parse(text, deps)?)
            }
            SchemaType::Json => Parsed::Json(crate::json_schema::JsonSchema::parse(text, deps)?),
        })
    }

    /// The type.
    pub fn schema_type(&self) -> SchemaType {
        match self {
            Parsed::Avro(_) => SchemaType::Avro,
            Parsed::Protobuf(_) => SchemaType::Protobuf,
            Parsed::Json(_) => SchemaType::Json,
        }
    }

    /// A canonical text: two registrations of the same schema (whitespace, key order, a
    /// `.proto` text and its descriptor) give the same string.
    pub fn canonical(&self) -> String {
        match self {
            Parsed::Avro(s) => s.canonical(),
            Parsed::Protobuf(s) => s.canonical(),
            Parsed::Json(s) => s.canonical(),
        }
    }

    /// Why a consumer using `self` cannot read data written with `old` (empty: it can).
    /// BACKWARD checks `new.backward_errors(old)`, FORWARD `old.backward_errors(new)`.
    pub fn backward_errors(&self, old: &Parsed) -> Vec<String> {
        match (self, old) {
            (Parsed::Avro(new), Parsed::Avro(old)) => new.backward_errors(old),
            (Parsed::Protobuf(new), Parsed::Protobuf(old)) => new.backward_errors(old),
            (Parsed::Json(new), Parsed::Json(old)) => new.backward_errors(old),
            (new, old) => vec![format!(
                "schema type changed from {} to {}",
                old.schema_type().as_str(),
                new.schema_type().as_str()
            )],
        }
    }
}
