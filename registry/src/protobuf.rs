//! Protobuf schemas: parsing, canonical form, rendering and compatibility.
//!
//! A Protobuf schema is registered either as `.proto` source text (proto2 or proto3), or as
//! the base64 (standard alphabet) of a serialized `google.protobuf.FileDescriptorProto`,
//! which is what confluent-kafka's Python `ProtobufSerializer` registers. Its references
//! ([`Resolved`]) are the files it imports, each known by its import path and given in
//! either form too. Imports of Google's well-known types (`google/protobuf/*.proto`)
//! resolve without being referenced, from the copies prost-reflect ships.
//!
//! [`ProtobufSchema::parse`] parses every file (protox's parser for text, prost for
//! descriptors), then adds them to one prost-reflect [`DescriptorPool`] in import order,
//! which resolves type names and checks the files (unknown types, duplicate numbers and
//! names, ...). Import cycles, missing imports, malformed base64 or bytes and oversized
//! inputs are errors, never panics.
//!
//! From the pool the module derives:
//! - a `.proto` rendering of the file ([`ProtobufSchema::canonical`], and
//!   [`ProtobufSchema::text`] for schemas registered as descriptors): type names fully
//!   qualified, no comments, fixed layout, options included, `json_name` only where it
//!   differs from the default. A schema and its descriptor render the same.
//! - the serialized descriptor without source info ([`ProtobufSchema::serialized`]).
//! - the message a Confluent wire-format record names by its message indexes
//!   ([`ProtobufSchema::message_by_indexes`]).
//! - the compatibility check between two versions ([`ProtobufSchema::backward_errors`]),
//!   after the rules of Confluent Schema Registry's Protobuf diff: what is incompatible is
//!   a changed package, a removed message, a field whose kind (scalar, message, group,
//!   map), scalar wire group, message type or numeric repeatedness changed, a required
//!   field added or removed, a field removed from a oneof, and existing fields moved
//!   into one oneof.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use prost::Message as _;
use prost_reflect::{
    DescriptorError, DescriptorPool, DynamicMessage, FieldDescriptor, FileDescriptor, Kind,
    MessageDescriptor, Value,
};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto,
};

use crate::schema::Resolved;

/// The largest schema text (or base64 descriptor) accepted, in bytes.
pub const MAX_SCHEMA_BYTES: usize = 4 << 20;

/// The largest total size of a schema and all the schemas it references, in bytes.
pub const MAX_TOTAL_BYTES: usize = 16 << 20;

/// The name the main file gets when registered as text (descriptors carry their own).
pub const DEFAULT_FILE_NAME: &str = "schema.proto";

/// How deep imports may chain (a file importing a file importing ...).
const MAX_IMPORT_DEPTH: usize = 100;

/// How deep the compatibility check follows message-typed fields into other messages.
const MAX_COMPARE_DEPTH: usize = 64;

/// Message field numbers are below this (2^29).
const MAX_FIELD_NUMBER_EXCLUSIVE: i32 = 1 << 29;

/// A parsed Protobuf schema: the main file in a descriptor pool with its dependencies.
#[derive(Debug, Clone)]
pub struct ProtobufSchema {
    /// The main file (it holds the pool).
    file: FileDescriptor,
    /// The `.proto` text it was registered as, if it was registered as text.
    source: Option<String>,
    /// The rendering of the file (see [`ProtobufSchema::canonical`]).
    rendered: String,
}

impl ProtobufSchema {
    /// Parses a schema: `text` is either `.proto` source text (proto2 or proto3) or the
    /// base64 (standard alphabet) of a serialized `google.protobuf.FileDescriptorProto`;
    /// `deps` are the referenced files (each in either form), named by their import path,
    /// in dependency order. Imports of `google/protobuf/*.proto` resolve without being
    /// listed. The error says why the schema is invalid.
    pub fn parse(text: &str, deps: &[Resolved]) -> Result<ProtobufSchema, String> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(format!(
                "schema is too large: {} bytes, at most {MAX_SCHEMA_BYTES} are accepted",
                text.len()
            ));
        }
        let total = deps
            .iter()
            .map(|d| d.schema.len() + d.name.len())
            .fold(text.len(), usize::saturating_add);
        if total > MAX_TOTAL_BYTES {
            return Err(format!(
                "schema and its references are too large: {total} bytes, at most \
                 {MAX_TOTAL_BYTES} are accepted"
            ));
        }

        let mut sources: HashMap<String, Source> = HashMap::new();
        for dep in deps {
            if dep.name.is_empty() {
                return Err("a reference has an empty name".into());
            }
            if sources.contains_key(&dep.name) {
                // The same file reached twice through the reference graph.
                continue;
            }
            let source = Source::load(&dep.schema, Some(&dep.name))
                .map_err(|e| format!("referenced schema '{}': {e}", dep.name))?;
            sources.insert(dep.name.clone(), source);
        }

        let mut main = Source::load(text, None)?;
        let is_text = main.text.is_some();
        let mut name = main.proto.name().to_owned();
        if is_text {
            // A fixed name, unless a reference already has it.
            name = DEFAULT_FILE_NAME.to_owned();
            let mut n = 1;
            while sources.contains_key(&name) || main.proto.dependency.contains(&name) {
                name = format!("schema_{n}.proto");
                n += 1;
            }
            main.proto.name = Some(name.clone());
        } else if sources.contains_key(&name) {
            return Err(format!(
                "the descriptor's file name '{name}' is also the name of one of its references"
            ));
        }
        let source = main.text.clone();
        sources.insert(name.clone(), main);

        let mut loader = Loader {
            sources: &sources,
            main: &name,
            pool: DescriptorPool::new(),
            stack: Vec::new(),
        };
        loader.add(&name, None)?;
        let file = loader
            .pool
            .get_file_by_name(&name)
            .ok_or_else(|| format!("file '{name}' missing from the descriptor pool"))?;
        let rendered = render_file(&file);
        Ok(ProtobufSchema {
            file,
            source,
            rendered,
        })
    }

    /// Canonical text: a `.proto` rendering of the file with fully qualified type names,
    /// no comments and a fixed layout, so that the same schema given as `.proto` text
    /// (whatever its whitespace and comments) or as its descriptor yields the same string.
    pub fn canonical(&self) -> String {
        self.rendered.clone()
    }

    /// The base64 of the serialized `FileDescriptorProto` of the file, without source
    /// code info (served for `?format=serialized`).
    pub fn serialized(&self) -> String {
        STANDARD.encode(serialize_without_source_info(&self.file))
    }

    /// Readable `.proto` text: the text as registered, or for a schema registered as a
    /// descriptor, a rendering of it (the canonical text).
    pub fn text(&self) -> String {
        match &self.source {
            Some(text) => text.clone(),
            None => self.rendered.clone(),
        }
    }

    /// Why a consumer using `self` (the new schema) cannot read data written with `old`
    /// (empty: it can), after Confluent Schema Registry's Protobuf rules. BACKWARD checks
    /// `new.backward_errors(old)`, FORWARD `old.backward_errors(new)`.
    pub fn backward_errors(&self, old: &ProtobufSchema) -> Vec<String> {
        let mut check = Compat::default();
        let (old_package, new_package) = (old.file.package_name(), self.file.package_name());
        if old_package != new_package {
            check.errors.push(format!(
                "PACKAGE_CHANGED: package changed from '{old_package}' to '{new_package}'"
            ));
        }
        let old_messages: Vec<_> = old.file.messages().collect();
        let new_messages: Vec<_> = self.file.messages().collect();
        check.compare_scopes(&old_messages, &new_messages, 0);
        check.errors
    }

    /// The message type a Confluent wire-format record refers to by its message indexes:
    /// `[]` or `[0]` is the first message of the file, `[1, 0]` the first nested message
    /// of the second top-level message. Nested messages count in descriptor order, which
    /// includes the entry messages of map fields (as the Python and Go serializers do).
    pub fn message_by_indexes(&self, indexes: &[i32]) -> Option<MessageDescriptor> {
        let (first, rest) = indexes.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        let mut message = self.file.messages().nth(usize::try_from(first).ok()?)?;
        for &index in rest {
            let child = message.child_messages().nth(usize::try_from(index).ok()?)?;
            message = child;
        }
        Some(message)
    }

    /// The descriptor pool holding this file and its dependencies.
    pub fn pool(&self) -> &DescriptorPool {
        self.file.parent_pool()
    }

    /// The file's descriptor.
    pub fn file(&self) -> FileDescriptor {
        self.file.clone()
    }

    /// The name of the file in the pool: the descriptor's own name, or
    /// [`DEFAULT_FILE_NAME`] for text (another name if a reference already has it).
    pub fn file_name(&self) -> &str {
        self.file.name()
    }
}

// ---------------------------------------------------------------------------------------
// Loading files into a pool.
// ---------------------------------------------------------------------------------------

/// One file to add to the pool, parsed but not yet resolved.
struct Source {
    /// The parsed file (from text: unresolved type names, with source info).
    proto: FileDescriptorProto,
    /// Its text, when given as text.
    text: Option<String>,
    /// Its serialized descriptor (source info removed), when given as a descriptor;
    /// decoded by the pool itself so that extension options survive.
    encoded: Option<Vec<u8>>,
}

impl Source {
    /// Parses `schema` (text or base64 descriptor); `name` is the import path it must be
    /// known by, or `None` for the main file (a descriptor keeps its own name).
    fn load(schema: &str, name: Option<&str>) -> Result<Source, String> {
        if schema.trim().is_empty() {
            return Err("schema is empty".into());
        }
        if let Some(bytes) = base64_bytes(schema) {
            return Source::load_descriptor(&bytes, name);
        }
        if looks_like_base64(schema) {
            return Err("not valid .proto text, nor valid base64 of a FileDescriptorProto".into());
        }
        let file_name = name.unwrap_or(DEFAULT_FILE_NAME);
        // The error's Debug form is "file:line:column: message".
        let proto = protox::file::File::from_source(file_name, schema)
            .map(FileDescriptorProto::from)
            .map_err(|e| format!("{e:?}"))?;
        Ok(Source {
            proto,
            text: Some(schema.to_owned()),
            encoded: None,
        })
    }

    /// Decodes a serialized `FileDescriptorProto`, drops its source info and sets its name
    /// (`name`, or its own, or [`DEFAULT_FILE_NAME`] if it has none).
    fn load_descriptor(bytes: &[u8], name: Option<&str>) -> Result<Source, String> {
        let invalid = |e: &dyn std::fmt::Display| {
            format!("not a valid serialized google.protobuf.FileDescriptorProto: {e}")
        };
        let descriptor = file_descriptor_proto_type()?;
        let mut message = DynamicMessage::decode(descriptor, bytes).map_err(|e| invalid(&e))?;
        message.clear_field_by_number(9); // source_code_info
        let own = message
            .get_field_by_number(1)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let wanted = match name {
            Some(name) => name.to_owned(),
            None if own.is_empty() => DEFAULT_FILE_NAME.to_owned(),
            None => own.clone(),
        };
        if wanted != own {
            message
                .try_set_field_by_number(1, Value::String(wanted))
                .map_err(|e| invalid(&e))?;
        }
        let encoded = message.encode_to_vec();
        let proto = FileDescriptorProto::decode(encoded.as_slice()).map_err(|e| invalid(&e))?;
        Ok(Source {
            proto,
            text: None,
            encoded: Some(encoded),
        })
    }

    /// Adds the file to `pool` (its imports must be there already).
    fn add_to(&self, pool: &mut DescriptorPool) -> Result<(), DescriptorError> {
        if let Some(bytes) = &self.encoded {
            return pool.decode_file_descriptor_proto(bytes.as_slice());
        }
        // Without source info, which would only weigh on the pool and on rendering; when
        // the file is invalid, again with it (a failed add leaves the pool as it was) for
        // the line and column of the error.
        let stripped = FileDescriptorProto {
            source_code_info: None,
            ..self.proto.clone()
        };
        pool.add_file_descriptor_proto(stripped)
            .or_else(|_| pool.add_file_descriptor_proto(self.proto.clone()))
    }
}

/// The `google.protobuf.FileDescriptorProto` message type (from prost-reflect's copy of
/// the well-known types).
fn file_descriptor_proto_type() -> Result<MessageDescriptor, String> {
    DescriptorPool::global()
        .get_message_by_name("google.protobuf.FileDescriptorProto")
        .ok_or_else(|| "google.protobuf.FileDescriptorProto is not known".to_owned())
}

/// Whether `text` is made only of base64 characters (no `.proto` text is).
fn looks_like_base64(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// The bytes `text` is the base64 of (padded or not), if it is.
fn base64_bytes(text: &str) -> Option<Vec<u8>> {
    if !looks_like_base64(text) {
        return None;
    }
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

/// Adds files to a pool in import order.
struct Loader<'a> {
    /// The files given (the main file and its references), by name.
    sources: &'a HashMap<String, Source>,
    /// The name of the main file.
    main: &'a str,
    pool: DescriptorPool,
    /// The chain of files being added, each importing the next (to detect cycles).
    stack: Vec<String>,
}

impl Loader<'_> {
    /// Adds file `name` and, first, everything it imports: from the sources, or from the
    /// well-known types. `importer` is the file importing it.
    fn add(&mut self, name: &str, importer: Option<&str>) -> Result<(), String> {
        if self.pool.get_file_by_name(name).is_some() {
            return Ok(());
        }
        if let Some(at) = self.stack.iter().position(|n| n == name) {
            let mut cycle = self.stack[at..].join(" -> ");
            let _ = write!(cycle, " -> {name}");
            return Err(format!("import cycle: {cycle}"));
        }
        if self.stack.len() >= MAX_IMPORT_DEPTH {
            return Err(format!(
                "imports are nested too deeply (more than {MAX_IMPORT_DEPTH} levels)"
            ));
        }

        if let Some(source) = self.sources.get(name) {
            self.stack.push(name.to_owned());
            let mut seen = HashSet::new();
            for import in &source.proto.dependency {
                if !seen.insert(import) {
                    return Err(format!("'{name}' imports '{import}' twice"));
                }
                self.add(import, Some(name))?;
            }
            self.stack.pop();
            return source.add_to(&mut self.pool).map_err(|e| {
                let message = describe_descriptor_error(&e, source.text.is_some());
                if name == self.main {
                    message
                } else {
                    format!("in referenced schema '{name}': {message}")
                }
            });
        }

        let well_known = if name.starts_with("google/protobuf/") {
            DescriptorPool::global().get_file_by_name(name)
        } else {
            None
        };
        let Some(well_known) = well_known else {
            return Err(match importer {
                Some(importer) => format!(
                    "import '{name}' of '{importer}' not found: it must be given as a \
                     reference named '{name}' (only the google/protobuf/*.proto well-known \
                     types resolve without one)"
                ),
                None => format!("file '{name}' not found"),
            });
        };
        self.stack.push(name.to_owned());
        for import in &well_known.file_descriptor_proto().dependency {
            self.add(import, Some(name))?;
        }
        self.stack.pop();
        self.pool
            .decode_file_descriptor_proto(well_known.encode_to_vec().as_slice())
            .map_err(|e| format!("in '{name}': {}", describe_descriptor_error(&e, false)))
    }
}

/// A descriptor error (unknown type, duplicate name, ...), with its place in the text
/// when the file was given as text.
fn describe_descriptor_error(err: &DescriptorError, is_text: bool) -> String {
    let mut message = err.to_string();
    if let (Some(line), Some(column), true) = (err.line(), err.column(), is_text) {
        let _ = write!(message, " (line {}, column {})", line + 1, column + 1);
    }
    message
}

/// The serialized descriptor of `file` without its source code info, extension options
/// kept.
fn serialize_without_source_info(file: &FileDescriptor) -> Vec<u8> {
    let encoded = file.encode_to_vec();
    if let Ok(descriptor) = file_descriptor_proto_type()
        && let Ok(mut message) = DynamicMessage::decode(descriptor, encoded.as_slice())
    {
        message.clear_field_by_number(9);
        return message.encode_to_vec();
    }
    let mut proto = file.file_descriptor_proto().clone();
    proto.source_code_info = None;
    proto.encode_to_vec()
}

// ---------------------------------------------------------------------------------------
// Compatibility.
// ---------------------------------------------------------------------------------------

/// State of one compatibility check.
#[derive(Default)]
struct Compat {
    /// What is incompatible.
    errors: Vec<String>,
    /// Pairs of (old, new) message full names compared so far, and whether compatible
    /// (`true` while being compared, so that recursive types terminate).
    compared: HashMap<(String, String), bool>,
}

/// The wire-compatible groups of scalar types (an enum counts as a general number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarGroup {
    /// Varints: int32, int64, uint32, uint64, bool, enums.
    GeneralNumber,
    /// Zigzag varints: sint32, sint64.
    SignedNumber,
    /// Length-delimited text or bytes.
    StringOrBytes,
    /// fixed32, sfixed32.
    Fixed32,
    /// fixed64, sfixed64.
    Fixed64,
    /// float.
    Float,
    /// double.
    Double,
}

/// A field's type as the compatibility rules see it.
enum FieldType {
    /// A scalar or enum: its group and its name.
    Scalar(ScalarGroup, String),
    /// A message.
    Message(MessageDescriptor),
    /// A proto2 group.
    Group(MessageDescriptor),
    /// A map: key and value types.
    Map(Box<FieldType>, Box<FieldType>),
}

impl FieldType {
    fn of(field: &FieldDescriptor) -> FieldType {
        match field.kind() {
            Kind::Message(m) if field.is_map() => FieldType::Map(
                Box::new(FieldType::of(&m.map_entry_key_field())),
                Box::new(FieldType::of(&m.map_entry_value_field())),
            ),
            Kind::Message(m) if field.is_group() => FieldType::Group(m),
            Kind::Message(m) => FieldType::Message(m),
            Kind::Enum(e) => FieldType::Scalar(
                ScalarGroup::GeneralNumber,
                format!("enum {}", e.full_name()),
            ),
            kind => {
                let (group, name) = match kind {
                    Kind::Int32 => (ScalarGroup::GeneralNumber, "int32"),
                    Kind::Int64 => (ScalarGroup::GeneralNumber, "int64"),
                    Kind::Uint32 => (ScalarGroup::GeneralNumber, "uint32"),
                    Kind::Uint64 => (ScalarGroup::GeneralNumber, "uint64"),
                    Kind::Bool => (ScalarGroup::GeneralNumber, "bool"),
                    Kind::Sint32 => (ScalarGroup::SignedNumber, "sint32"),
                    Kind::Sint64 => (ScalarGroup::SignedNumber, "sint64"),
                    Kind::String => (ScalarGroup::StringOrBytes, "string"),
                    Kind::Bytes => (ScalarGroup::StringOrBytes, "bytes"),
                    Kind::Fixed32 => (ScalarGroup::Fixed32, "fixed32"),
                    Kind::Sfixed32 => (ScalarGroup::Fixed32, "sfixed32"),
                    Kind::Fixed64 => (ScalarGroup::Fixed64, "fixed64"),
                    Kind::Sfixed64 => (ScalarGroup::Fixed64, "sfixed64"),
                    Kind::Float => (ScalarGroup::Float, "float"),
                    _ => (ScalarGroup::Double, "double"),
                };
                FieldType::Scalar(group, name.to_owned())
            }
        }
    }

    /// Scalar, message, group or map.
    fn category(&self) -> u8 {
        match self {
            FieldType::Scalar(..) => 0,
            FieldType::Message(_) => 1,
            FieldType::Group(_) => 2,
            FieldType::Map(..) => 3,
        }
    }

    fn describe(&self) -> String {
        match self {
            FieldType::Scalar(_, name) => name.clone(),
            FieldType::Message(m) => format!("message {}", m.full_name()),
            FieldType::Group(m) => format!("group {}", m.full_name()),
            FieldType::Map(k, v) => format!("map<{}, {}>", k.describe(), v.describe()),
        }
    }
}

/// The name of a message within its package (`a.b.M` in package `a.b` is `M`).
fn local_name(message: &MessageDescriptor) -> &str {
    let package = message.package_name();
    if package.is_empty() {
        return message.full_name();
    }
    message
        .full_name()
        .strip_prefix(package)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(message.full_name())
}

/// The oneof a field is in, unless none or the synthetic one of a proto3 `optional`.
fn real_oneof(field: &FieldDescriptor) -> Option<String> {
    field
        .containing_oneof()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_owned())
}

impl Compat {
    /// Compares the messages of one scope (a file's top level, or a message's nested
    /// types), matched by name; returns whether compatible.
    fn compare_scopes(
        &mut self,
        old: &[MessageDescriptor],
        new: &[MessageDescriptor],
        depth: usize,
    ) -> bool {
        let mut compatible = true;
        let new_by_name: HashMap<&str, &MessageDescriptor> = new
            .iter()
            .filter(|m| !m.is_map_entry())
            .map(|m| (m.name(), m))
            .collect();
        for old_message in old.iter().filter(|m| !m.is_map_entry()) {
            match new_by_name.get(old_message.name()) {
                None => {
                    self.errors.push(format!(
                        "MESSAGE_REMOVED: message '{}' was removed or renamed",
                        old_message.full_name()
                    ));
                    compatible = false;
                }
                Some(new_message) => {
                    compatible &= self.compare_messages(old_message, new_message, depth);
                }
            }
        }
        compatible
    }

    /// Compares two versions of a message (once per pair); returns whether compatible.
    fn compare_messages(
        &mut self,
        old: &MessageDescriptor,
        new: &MessageDescriptor,
        depth: usize,
    ) -> bool {
        let key = (old.full_name().to_owned(), new.full_name().to_owned());
        if let Some(&compatible) = self.compared.get(&key) {
            return compatible;
        }
        self.compared.insert(key.clone(), true);
        let before = self.errors.len();
        let message = old.full_name();

        let old_fields: BTreeMap<u32, FieldDescriptor> =
            old.fields().map(|f| (f.number(), f)).collect();
        let new_fields: BTreeMap<u32, FieldDescriptor> =
            new.fields().map(|f| (f.number(), f)).collect();

        // Existing fields moved into a oneof: one may join a new oneof, more may not.
        for oneof in new.oneofs().filter(|o| !o.is_synthetic()) {
            let mut moved = Vec::new();
            let mut already_in_oneof = 0;
            for field in oneof.fields() {
                match old_fields.get(&field.number()) {
                    Some(old_field) if real_oneof(old_field).is_none() => {
                        moved.push(format!("'{}'", old_field.name()));
                    }
                    Some(_) => already_in_oneof += 1,
                    None => {}
                }
            }
            if moved.len() > 1 {
                self.errors.push(format!(
                    "MULTIPLE_FIELDS_MOVED_TO_ONEOF: fields {} of message '{message}' were \
                     moved into oneof '{}'",
                    moved.join(", "),
                    oneof.name()
                ));
            } else if moved.len() == 1 && already_in_oneof > 0 {
                self.errors.push(format!(
                    "FIELD_MOVED_TO_EXISTING_ONEOF: field {} of message '{message}' was moved \
                     into oneof '{}', which has fields of an existing oneof",
                    moved.join(", "),
                    oneof.name()
                ));
            }
        }

        let new_oneofs: HashSet<String> = new
            .oneofs()
            .filter(|o| !o.is_synthetic())
            .map(|o| o.name().to_owned())
            .collect();
        for (number, old_field) in &old_fields {
            match new_fields.get(number) {
                Some(new_field) => self.compare_fields(message, old_field, new_field, depth),
                None if old_field.is_required() => self.errors.push(format!(
                    "REQUIRED_FIELD_REMOVED: required field '{}' (number {number}) of message \
                     '{message}' was removed",
                    old_field.name()
                )),
                None => {
                    if let Some(oneof) = real_oneof(old_field)
                        && new_oneofs.contains(oneof.as_str())
                    {
                        self.errors.push(format!(
                            "ONEOF_FIELD_REMOVED: field '{}' (number {number}) of oneof \
                             '{oneof}' of message '{message}' was removed",
                            old_field.name()
                        ));
                    }
                }
            }
        }
        for (number, new_field) in &new_fields {
            if !old_fields.contains_key(number) && new_field.is_required() {
                self.errors.push(format!(
                    "REQUIRED_FIELD_ADDED: required field '{}' (number {number}) was added to \
                     message '{message}'",
                    new_field.name()
                ));
            }
        }

        let old_nested: Vec<_> = old.child_messages().collect();
        let new_nested: Vec<_> = new.child_messages().collect();
        self.compare_scopes(&old_nested, &new_nested, depth);

        let compatible = self.errors.len() == before;
        self.compared.insert(key, compatible);
        compatible
    }

    /// Compares two versions of a field (same number).
    fn compare_fields(
        &mut self,
        message: &str,
        old: &FieldDescriptor,
        new: &FieldDescriptor,
        depth: usize,
    ) {
        let field = old.name();
        if old.is_required() != new.is_required() {
            let change = if new.is_required() {
                "REQUIRED_FIELD_ADDED: field '{field}' of message '{message}' became required"
            } else {
                "REQUIRED_FIELD_REMOVED: field '{field}' of message '{message}' is no longer \
                 required"
            };
            self.errors.push(
                change
                    .replace("{field}", field)
                    .replace("{message}", message),
            );
        }
        let (old_type, new_type) = (FieldType::of(old), FieldType::of(new));
        let repeated = Some((old.is_list(), new.is_list()));
        self.compare_types(message, field, &old_type, &new_type, repeated, depth);
    }

    /// Compares two types of field `field` of `message`; `repeated` is whether the old
    /// and new fields are repeated (`None` for map keys and values).
    fn compare_types(
        &mut self,
        message: &str,
        field: &str,
        old: &FieldType,
        new: &FieldType,
        repeated: Option<(bool, bool)>,
        depth: usize,
    ) {
        if old.category() != new.category() {
            self.errors.push(format!(
                "FIELD_KIND_CHANGED: field '{field}' of message '{message}' changed from {} \
                 to {}",
                old.describe(),
                new.describe()
            ));
            return;
        }
        match (old, new) {
            (FieldType::Scalar(old_group, old_name), FieldType::Scalar(new_group, new_name)) => {
                if old_group != new_group {
                    self.errors.push(format!(
                        "FIELD_SCALAR_KIND_CHANGED: field '{field}' of message '{message}' \
                         changed from {old_name} to {new_name}"
                    ));
                } else if let Some((old_repeated, new_repeated)) = repeated
                    && old_repeated != new_repeated
                    && *old_group != ScalarGroup::StringOrBytes
                {
                    let label = |r: bool| if r { "repeated" } else { "singular" };
                    self.errors.push(format!(
                        "FIELD_NUMERIC_LABEL_CHANGED: field '{field}' of message '{message}' \
                         changed from {} {old_name} to {} {new_name}",
                        label(old_repeated),
                        label(new_repeated)
                    ));
                }
            }
            (FieldType::Message(old_m), FieldType::Message(new_m))
            | (FieldType::Group(old_m), FieldType::Group(new_m)) => {
                if local_name(old_m) != local_name(new_m) {
                    self.errors.push(format!(
                        "FIELD_NAMED_TYPE_CHANGED: field '{field}' of message '{message}' \
                         changed from {} to {}",
                        old.describe(),
                        new.describe()
                    ));
                } else if depth < MAX_COMPARE_DEPTH
                    && !self.compare_messages(old_m, new_m, depth + 1)
                {
                    self.errors.push(format!(
                        "FIELD_NAMED_TYPE_CHANGED: field '{field}' of message '{message}' has \
                         type {}, which changed incompatibly",
                        old_m.full_name()
                    ));
                }
            }
            (FieldType::Map(old_k, old_v), FieldType::Map(new_k, new_v)) => {
                self.compare_types(message, field, old_k, new_k, None, depth);
                self.compare_types(message, field, old_v, new_v, None, depth);
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rendering .proto text.
// ---------------------------------------------------------------------------------------

/// Field numbers of the `options` field of each descriptor message.
mod options_field {
    pub const FILE: u32 = 8;
    pub const MESSAGE: u32 = 7;
    pub const FIELD: u32 = 8;
    pub const ONEOF: u32 = 2;
    pub const ENUM: u32 = 3;
    pub const ENUM_VALUE: u32 = 3;
    pub const SERVICE: u32 = 3;
    pub const METHOD: u32 = 4;
}

/// Renders `file` as `.proto` text.
fn render_file(file: &FileDescriptor) -> String {
    let proto = file.file_descriptor_proto();
    let mut renderer = Renderer {
        pool: file.parent_pool(),
        proto2: !matches!(proto.syntax(), "proto3"),
        root: decode_for_options(file),
        groups: HashMap::new(),
        out: String::new(),
    };
    renderer.claim_groups(proto);
    renderer.file(proto);
    renderer.out
}

/// The file's descriptor as a dynamic message whose options decode with the extensions
/// the pool defines (custom options); `None` if it does not decode.
fn decode_for_options(file: &FileDescriptor) -> Option<DynamicMessage> {
    let encoded = file.encode_to_vec();
    let local = file
        .parent_pool()
        .get_message_by_name("google.protobuf.FileDescriptorProto");
    if let Some(descriptor) = local
        && let Ok(message) = DynamicMessage::decode(descriptor, encoded.as_slice())
    {
        return Some(message);
    }
    DynamicMessage::decode(file_descriptor_proto_type().ok()?, encoded.as_slice()).ok()
}

/// The value of field `number` of `message`, if set.
fn set_field(message: &DynamicMessage, number: u32) -> Option<&Value> {
    message
        .fields()
        .find(|(f, _)| f.number() == number)
        .map(|(_, v)| v)
}

/// The options message of the element at `path` (a source-info style path of the file
/// descriptor), whose options field is `options_number`.
fn options_at<'m>(
    root: &'m DynamicMessage,
    path: &[i32],
    options_number: u32,
) -> Option<&'m DynamicMessage> {
    let mut current = root;
    for pair in path.chunks(2) {
        let [field, index] = pair else {
            return None;
        };
        let list = set_field(current, u32::try_from(*field).ok()?)?.as_list()?;
        current = list.get(usize::try_from(*index).ok()?)?.as_message()?;
    }
    set_field(current, options_number)?.as_message()
}

/// Renders a file descriptor as `.proto` text.
struct Renderer<'a> {
    pool: &'a DescriptorPool,
    /// proto2 (labels always written, groups) rather than proto3.
    proto2: bool,
    /// The file as a dynamic message, for options.
    root: Option<DynamicMessage>,
    /// Group messages rendered inline by a field: message full name -> the path of the
    /// field that renders it.
    groups: HashMap<String, Vec<i32>>,
    out: String,
}

impl Renderer<'_> {
    /// Finds the proto2 group fields whose message is declared beside them, which are
    /// rendered as `group` fields (the message inline) rather than as messages.
    fn claim_groups(&mut self, file: &FileDescriptorProto) {
        if !self.proto2 {
            return;
        }
        let package = file.package();
        let mut declared = HashSet::new();
        for message in &file.message_type {
            collect_messages(&join(package, message.name()), message, &mut declared);
        }
        for (i, extension) in file.extension.iter().enumerate() {
            self.claim_group(package, extension, vec![7, index(i)], &declared);
        }
        for (i, message) in file.message_type.iter().enumerate() {
            self.claim_groups_in(
                &join(package, message.name()),
                message,
                vec![4, index(i)],
                &declared,
            );
        }
    }

    fn claim_groups_in(
        &mut self,
        scope: &str,
        message: &DescriptorProto,
        path: Vec<i32>,
        declared: &HashSet<String>,
    ) {
        for (i, field) in message.field.iter().enumerate() {
            self.claim_group(scope, field, extend(&path, 2, i), declared);
        }
        for (i, extension) in message.extension.iter().enumerate() {
            self.claim_group(scope, extension, extend(&path, 6, i), declared);
        }
        for (i, nested) in message.nested_type.iter().enumerate() {
            self.claim_groups_in(
                &join(scope, nested.name()),
                nested,
                extend(&path, 3, i),
                declared,
            );
        }
    }

    fn claim_group(
        &mut self,
        scope: &str,
        field: &FieldDescriptorProto,
        path: Vec<i32>,
        declared: &HashSet<String>,
    ) {
        if field.r#type() != Type::Group {
            return;
        }
        let Some(type_name) = field.type_name().strip_prefix('.') else {
            return;
        };
        let (parent, simple) = type_name.rsplit_once('.').unwrap_or(("", type_name));
        // The group syntax names the field after the message, in lower case.
        if field.name() != simple.to_ascii_lowercase() {
            return;
        }
        if parent == scope && declared.contains(type_name) && !self.groups.contains_key(type_name) {
            self.groups.insert(type_name.to_owned(), path);
        }
    }

    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// `(name, value)` of each option set in the options of the element at `path`.
    fn options(&self, path: &[i32], options_number: u32, skip: &[u32]) -> Vec<(String, String)> {
        let Some(options) = self
            .root
            .as_ref()
            .and_then(|root| options_at(root, path, options_number))
        else {
            return Vec::new();
        };
        let mut entries = Vec::new();
        for (field, value) in options.fields() {
            // 999: uninterpreted_option (resolved by the pool).
            if field.number() == 999 || skip.contains(&field.number()) {
                continue;
            }
            push_option(&mut entries, field.name().to_owned(), value, &field.kind());
        }
        for (extension, value) in options.extensions() {
            push_option(
                &mut entries,
                format!("(.{})", extension.full_name()),
                value,
                &extension.kind(),
            );
        }
        entries
    }

    /// Writes `option name = value;` statements.
    fn option_statements(&mut self, depth: usize, entries: &[(String, String)]) {
        for (name, value) in entries {
            self.line(depth, &format!("option {name} = {value};"));
        }
    }

    fn file(&mut self, file: &FileDescriptorProto) {
        if self.proto2 {
            self.line(0, "syntax = \"proto2\";");
        } else {
            self.line(0, "syntax = \"proto3\";");
        }
        if !file.package().is_empty() {
            self.out.push('\n');
            self.line(0, &format!("package {};", file.package()));
        }
        if !file.dependency.is_empty() {
            self.out.push('\n');
            for (i, dependency) in file.dependency.iter().enumerate() {
                let i = index(i);
                let modifier = if file.public_dependency.contains(&i) {
                    "public "
                } else if file.weak_dependency.contains(&i) {
                    "weak "
                } else {
                    ""
                };
                self.line(0, &format!("import {modifier}{};", quote_str(dependency)));
            }
        }
        let options = self.options(&[], options_field::FILE, &[]);
        if !options.is_empty() {
            self.out.push('\n');
            self.option_statements(0, &options);
        }
        let package = file.package();
        for (i, message) in file.message_type.iter().enumerate() {
            let full_name = join(package, message.name());
            if self.groups.contains_key(&full_name) {
                continue;
            }
            self.out.push('\n');
            self.message(0, &full_name, message, vec![4, index(i)]);
        }
        for (i, enumeration) in file.enum_type.iter().enumerate() {
            self.out.push('\n');
            self.enumeration(0, enumeration, vec![5, index(i)]);
        }
        if !file.extension.is_empty() {
            self.extensions(0, &file.extension, &[7]);
        }
        for (i, service) in file.service.iter().enumerate() {
            self.out.push('\n');
            self.service(service, vec![6, index(i)]);
        }
    }

    fn message(
        &mut self,
        depth: usize,
        full_name: &str,
        message: &DescriptorProto,
        path: Vec<i32>,
    ) {
        self.line(depth, &format!("message {} {{", message.name()));
        self.message_body(depth + 1, full_name, message, &path);
        self.line(depth, "}");
    }

    fn message_body(
        &mut self,
        depth: usize,
        full_name: &str,
        message: &DescriptorProto,
        path: &[i32],
    ) {
        // 7: map_entry, implied by the map syntax.
        let options = self.options(path, options_field::MESSAGE, &[7]);
        self.option_statements(depth, &options);

        // The fields of each real oneof, rendered where its first field is.
        let mut oneof_members: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, field) in message.field.iter().enumerate() {
            if let Some(oneof) = field.oneof_index.filter(|_| !field.proto3_optional()) {
                oneof_members.entry(oneof).or_default().push(i);
            }
        }
        for (i, field) in message.field.iter().enumerate() {
            match field.oneof_index.filter(|_| !field.proto3_optional()) {
                None => self.field(depth, field, &extend(path, 2, i), false),
                Some(oneof) => {
                    if let Some(members) = oneof_members.remove(&oneof) {
                        self.oneof(depth, message, oneof, &members, path);
                    }
                }
            }
        }
        for (i, nested) in message.nested_type.iter().enumerate() {
            let nested_name = join(full_name, nested.name());
            let is_map_entry = nested
                .options
                .as_ref()
                .is_some_and(|o| o.map_entry.unwrap_or(false));
            if is_map_entry || self.groups.contains_key(&nested_name) {
                continue;
            }
            self.message(depth, &nested_name, nested, extend(path, 3, i));
        }
        for (i, enumeration) in message.enum_type.iter().enumerate() {
            self.enumeration(depth, enumeration, extend(path, 4, i));
        }
        if !message.extension.is_empty() {
            let mut extension_path = path.to_vec();
            extension_path.push(6);
            self.extensions(depth, &message.extension, &extension_path);
        }
        if !message.extension_range.is_empty() {
            let ranges: Vec<String> = message
                .extension_range
                .iter()
                .map(|r| field_range(r.start(), r.end()))
                .collect();
            self.line(depth, &format!("extensions {};", ranges.join(", ")));
        }
        if !message.reserved_range.is_empty() {
            let ranges: Vec<String> = message
                .reserved_range
                .iter()
                .map(|r| field_range(r.start(), r.end()))
                .collect();
            self.line(depth, &format!("reserved {};", ranges.join(", ")));
        }
        if !message.reserved_name.is_empty() {
            let names: Vec<String> = message.reserved_name.iter().map(|n| quote_str(n)).collect();
            self.line(depth, &format!("reserved {};", names.join(", ")));
        }
    }

    /// Renders oneof number `oneof` of `message`, whose fields are `members`.
    fn oneof(
        &mut self,
        depth: usize,
        message: &DescriptorProto,
        oneof: i32,
        members: &[usize],
        path: &[i32],
    ) {
        let name = usize::try_from(oneof)
            .ok()
            .and_then(|i| message.oneof_decl.get(i))
            .map_or("", |o| o.name());
        self.line(depth, &format!("oneof {name} {{"));
        let mut oneof_path = path.to_vec();
        oneof_path.extend([8, oneof]);
        let options = self.options(&oneof_path, options_field::ONEOF, &[]);
        self.option_statements(depth + 1, &options);
        for &i in members {
            if let Some(field) = message.field.get(i) {
                self.field(depth + 1, field, &extend(path, 2, i), true);
            }
        }
        self.line(depth, "}");
    }

    /// Renders a field (or an extension) at `path`.
    fn field(&mut self, depth: usize, field: &FieldDescriptorProto, path: &[i32], in_oneof: bool) {
        let type_name = field
            .type_name()
            .strip_prefix('.')
            .unwrap_or(field.type_name());
        let map_entry = if field.label() == Label::Repeated && field.r#type() == Type::Message {
            self.pool
                .get_message_by_name(type_name)
                .filter(MessageDescriptor::is_map_entry)
        } else {
            None
        };
        let group = (field.r#type() == Type::Group)
            .then(|| self.groups.get(type_name))
            .flatten()
            .filter(|owner| owner.as_slice() == path)
            .is_some();

        let label = if in_oneof || map_entry.is_some() {
            ""
        } else {
            match field.label() {
                Label::Repeated => "repeated ",
                Label::Required => "required ",
                Label::Optional if self.proto2 || field.proto3_optional() => "optional ",
                Label::Optional => "",
            }
        };
        let type_text = match (&map_entry, group) {
            (Some(entry), _) => {
                let key = entry.map_entry_key_field();
                let value = entry.map_entry_value_field();
                format!(
                    "map<{}, {}>",
                    type_text(key.field_descriptor_proto()),
                    type_text(value.field_descriptor_proto())
                )
            }
            (None, true) => format!(
                "group {}",
                type_name.rsplit_once('.').map_or(type_name, |(_, n)| n)
            ),
            (None, false) => type_text(field),
        };
        let name = if group {
            String::new()
        } else {
            format!(" {}", field.name())
        };

        let mut options = Vec::new();
        if let Some(default) = &field.default_value {
            options.push(("default".to_owned(), default_text(field.r#type(), default)));
        }
        if let Some(json_name) = &field.json_name
            && !group
            && *json_name != default_json_name(field.name())
        {
            options.push(("json_name".to_owned(), quote_str(json_name)));
        }
        options.extend(self.options(path, options_field::FIELD, &[]));
        let options = if options.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = options
                .iter()
                .map(|(name, value)| format!("{name} = {value}"))
                .collect();
            format!(" [{}]", list.join(", "))
        };

        let declaration = format!("{label}{type_text}{name} = {}{options}", field.number());
        if !group {
            self.line(depth, &format!("{declaration};"));
            return;
        }
        self.line(depth, &format!("{declaration} {{"));
        if let Some(message) = self.pool.get_message_by_name(type_name) {
            let body = message.descriptor_proto().clone();
            let group_path = message.path().to_vec();
            self.message_body(depth + 1, type_name, &body, &group_path);
        }
        self.line(depth, "}");
    }

    /// Renders `extend` blocks for `extensions` (grouped by the type they extend, in
    /// order of first appearance); `path` is the path of the list.
    fn extensions(&mut self, depth: usize, extensions: &[FieldDescriptorProto], path: &[i32]) {
        let mut order: Vec<&str> = Vec::new();
        let mut by_extendee: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, extension) in extensions.iter().enumerate() {
            let members = by_extendee.entry(extension.extendee()).or_default();
            if members.is_empty() {
                order.push(extension.extendee());
            }
            members.push(i);
        }
        for extendee in order {
            if depth == 0 {
                self.out.push('\n');
            }
            self.line(depth, &format!("extend {} {{", absolute(extendee)));
            for &i in by_extendee.get(extendee).map_or(&[][..], Vec::as_slice) {
                let mut extension_path = path.to_vec();
                extension_path.push(index(i));
                self.field(depth + 1, &extensions[i], &extension_path, false);
            }
            self.line(depth, "}");
        }
    }

    fn enumeration(&mut self, depth: usize, enumeration: &EnumDescriptorProto, path: Vec<i32>) {
        self.line(depth, &format!("enum {} {{", enumeration.name()));
        let options = self.options(&path, options_field::ENUM, &[]);
        self.option_statements(depth + 1, &options);
        for (i, value) in enumeration.value.iter().enumerate() {
            let options = self.options(&extend(&path, 2, i), options_field::ENUM_VALUE, &[]);
            let options = if options.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = options
                    .iter()
                    .map(|(name, value)| format!("{name} = {value}"))
                    .collect();
                format!(" [{}]", list.join(", "))
            };
            self.line(
                depth + 1,
                &format!("{} = {}{options};", value.name(), value.number()),
            );
        }
        if !enumeration.reserved_range.is_empty() {
            let ranges: Vec<String> = enumeration
                .reserved_range
                .iter()
                .map(|r| enum_range(r.start(), r.end()))
                .collect();
            self.line(depth + 1, &format!("reserved {};", ranges.join(", ")));
        }
        if !enumeration.reserved_name.is_empty() {
            let names: Vec<String> = enumeration
                .reserved_name
                .iter()
                .map(|n| quote_str(n))
                .collect();
            self.line(depth + 1, &format!("reserved {};", names.join(", ")));
        }
        self.line(depth, "}");
    }

    fn service(&mut self, service: &ServiceDescriptorProto, path: Vec<i32>) {
        self.line(0, &format!("service {} {{", service.name()));
        let options = self.options(&path, options_field::SERVICE, &[]);
        self.option_statements(1, &options);
        for (i, method) in service.method.iter().enumerate() {
            let stream = |s: bool| if s { "stream " } else { "" };
            let signature = format!(
                "rpc {}({}{}) returns ({}{})",
                method.name(),
                stream(method.client_streaming()),
                absolute(method.input_type()),
                stream(method.server_streaming()),
                absolute(method.output_type())
            );
            let options = self.options(&extend(&path, 2, i), options_field::METHOD, &[]);
            if options.is_empty() {
                self.line(1, &format!("{signature};"));
            } else {
                self.line(1, &format!("{signature} {{"));
                self.option_statements(2, &options);
                self.line(1, "}");
            }
        }
        self.line(0, "}");
    }
}

/// Adds the full names of `message` (named `full_name`) and of its nested messages.
fn collect_messages(full_name: &str, message: &DescriptorProto, into: &mut HashSet<String>) {
    for nested in &message.nested_type {
        collect_messages(&join(full_name, nested.name()), nested, into);
    }
    into.insert(full_name.to_owned());
}

/// `scope.name`, or `name` in the root scope.
fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

/// `path` followed by `field`, `i`.
fn extend(path: &[i32], field: i32, i: usize) -> Vec<i32> {
    let mut path = path.to_vec();
    path.extend([field, index(i)]);
    path
}

/// An index as a path element.
fn index(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// A type name with a leading dot (fully qualified).
fn absolute(type_name: &str) -> String {
    if type_name.starts_with('.') {
        type_name.to_owned()
    } else {
        format!(".{type_name}")
    }
}

/// The type of a field as written in `.proto` text.
fn type_text(field: &FieldDescriptorProto) -> String {
    let scalar = match field.r#type() {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => return absolute(field.type_name()),
    };
    scalar.to_owned()
}

/// A message field number range `[start, end)` as in `reserved` and `extensions`.
fn field_range(start: i32, end: i32) -> String {
    if end >= MAX_FIELD_NUMBER_EXCLUSIVE {
        format!("{start} to max")
    } else if end <= start.saturating_add(1) {
        start.to_string()
    } else {
        format!("{start} to {}", end - 1)
    }
}

/// An enum number range `[start, end]` as in `reserved`.
fn enum_range(start: i32, end: i32) -> String {
    if end == i32::MAX {
        format!("{start} to max")
    } else if end <= start {
        start.to_string()
    } else {
        format!("{start} to {end}")
    }
}

/// The `default` of a field as written in `.proto` text, from the descriptor's
/// `default_value` (strings raw, bytes already C-escaped, enums by value name).
fn default_text(kind: Type, default: &str) -> String {
    match kind {
        Type::String => quote_str(default),
        Type::Bytes => format!("\"{default}\""),
        _ => default.to_owned(),
    }
}

/// The JSON name protoc gives a field by default (lowerCamelCase of its name).
fn default_json_name(name: &str) -> String {
    let mut json = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            json.extend(c.to_uppercase());
            upper = false;
        } else {
            json.push(c);
        }
    }
    json
}

/// Adds the option `name` with `value` (each element of a repeated option separately).
fn push_option(entries: &mut Vec<(String, String)>, name: String, value: &Value, kind: &Kind) {
    match value {
        Value::List(values) => {
            for value in values {
                entries.push((name.clone(), option_value(value, kind)));
            }
        }
        value => entries.push((name, option_value(value, kind))),
    }
}

/// An option value as written in `.proto` text.
fn option_value(value: &Value, kind: &Kind) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(x) => float_text(f64::from(*x)),
        Value::F64(x) => float_text(*x),
        Value::String(s) => quote_str(s),
        Value::Bytes(b) => quote_bytes(b),
        Value::EnumNumber(n) => match kind {
            Kind::Enum(e) => e
                .get_value(*n)
                .map_or_else(|| n.to_string(), |v| v.name().to_owned()),
            _ => n.to_string(),
        },
        Value::Message(m) => format!("{{ {} }}", m.to_text_format()),
        Value::List(_) | Value::Map(_) => "{}".to_owned(),
    }
}

/// A float as written in `.proto` text.
fn float_text(x: f64) -> String {
    if x.is_nan() {
        "nan".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{x:?}")
    }
}

/// A string literal: printable characters as they are, the rest escaped.
fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:03o}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A bytes literal: printable ASCII as it is, every other byte escaped in octal.
fn quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            b => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};

    fn parse(text: &str) -> ProtobufSchema {
        match ProtobufSchema::parse(text, &[]) {
            Ok(schema) => schema,
            Err(e) => panic!("schema should parse: {e}\n{text}"),
        }
    }

    fn dep(name: &str, schema: &str) -> Resolved {
        Resolved {
            name: name.to_owned(),
            schema: schema.to_owned(),
        }
    }

    /// Errors of `new` reading data of `old` (both proto3 bodies after a package line).
    fn compat(old: &str, new: &str) -> Vec<String> {
        parse(new).backward_errors(&parse(old))
    }

    fn assert_compatible(old: &str, new: &str) {
        let errors = compat(old, new);
        assert!(errors.is_empty(), "expected compatible, got {errors:?}");
    }

    /// Asserts exactly one kind of error, containing each of `needles`.
    fn assert_incompatible(old: &str, new: &str, needles: &[&str]) {
        let errors = compat(old, new);
        assert!(
            !errors.is_empty(),
            "expected incompatible:\n{old}\n---\n{new}"
        );
        for needle in needles {
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "no error mentions {needle:?}: {errors:?}"
            );
        }
    }

    const ORDER: &str = r#"
        syntax = "proto3";
        package shop;

        // An order.
        message Order {
          int64 id = 1;
          string customer = 2;
          repeated Line lines = 3;
          message Line { string sku = 1; int32 count = 2; }
        }
        message Refund { int64 order_id = 1; }
    "#;

    const RICH_PROTO3: &str = r#"
        syntax = "proto3";
        package shop.v1;
        import "google/protobuf/timestamp.proto";
        option java_package = "com.shop.v1";
        option java_multiple_files = true;

        /* An order. */
        message Order {
          int64 id = 1;
          string customer_name = 2 [json_name = "customer"];
          repeated Item items = 3;
          map<string, int32> counts = 4;
          google.protobuf.Timestamp created = 5;
          optional string note = 6;
          Status status = 7 [deprecated = true];
          oneof payment {
            string card = 8;
            Cash cash = 9;
          }
          repeated sint64 deltas = 10 [packed = false];
          map<int64, Item> by_id = 11;
          message Item { string sku = 1; uint32 qty = 2; }
          message Cash { int64 cents = 1; }
          enum Kind { KIND_UNSPECIFIED = 0; KIND_B = 1; }
          reserved 20, 30 to 40, 1000 to max;
          reserved "old_field";
        }
        enum Status {
          option allow_alias = true;
          STATUS_UNKNOWN = 0;
          STATUS_OK = 1;
          STATUS_FINE = 1 [deprecated = true];
          reserved 5 to 9, 100 to max;
          reserved "GONE";
        }
        service Orders {
          rpc Get(Order) returns (Order);
          rpc Stream(stream Order) returns (stream Order) { option deprecated = true; }
        }
    "#;

    const RICH_PROTO2: &str = r#"
        syntax = "proto2";
        package legacy;
        import "google/protobuf/descriptor.proto";

        extend google.protobuf.FieldOptions { optional string sensitive = 50001; }
        extend google.protobuf.MessageOptions { repeated int32 tags = 50002; }

        message Rec {
          option (tags) = 1;
          option (tags) = 2;
          required int32 id = 1;
          optional string name = 2 [default = "a \"b\"\n", (sensitive) = "pii"];
          optional bytes blob = 3 [default = "\001\377x"];
          optional double ratio = 4 [default = inf];
          repeated int32 nums = 5 [packed = true];
          optional group Extra = 6 { optional int32 x = 1; }
          optional E e = 7 [default = B];
          oneof choice { int32 a = 8; string b = 9; }
          extensions 100 to 199;
          enum E { A = 1; B = 2; }
          extend Rec { optional int32 nested_ext = 150; }
        }
        extend Rec { optional int32 more = 100; }
    "#;

    #[test]
    fn parses_proto3_text() {
        let schema = parse(ORDER);
        assert_eq!(schema.file_name(), DEFAULT_FILE_NAME);
        assert_eq!(schema.file().package_name(), "shop");
        assert_eq!(schema.text(), ORDER);
        let order = schema
            .pool()
            .get_message_by_name("shop.Order")
            .expect("Order in pool");
        assert_eq!(order.fields().count(), 3);
        assert!(schema.canonical().contains("message Order {"));
        assert!(!schema.canonical().contains("An order"));
    }

    #[test]
    fn parses_proto2_text() {
        let schema = parse(RICH_PROTO2);
        let rec = schema
            .pool()
            .get_message_by_name("legacy.Rec")
            .expect("Rec in pool");
        assert!(rec.get_field(1).expect("id").is_required());
        assert!(rec.get_field(6).expect("extra").is_group());
    }

    #[test]
    fn parses_base64_descriptor_from_serialized() {
        let text = parse(RICH_PROTO3);
        let serialized = text.serialized();
        let bytes = STANDARD.decode(&serialized).expect("valid base64");
        let proto = FileDescriptorProto::decode(bytes.as_slice()).expect("a descriptor");
        assert_eq!(proto.name(), DEFAULT_FILE_NAME);
        assert_eq!(proto.package(), "shop.v1");
        assert_eq!(proto.dependency, vec!["google/protobuf/timestamp.proto"]);
        assert!(proto.source_code_info.is_none());

        let descriptor = ProtobufSchema::parse(&serialized, &[]).expect("descriptor parses");
        assert_eq!(descriptor.canonical(), text.canonical());
        assert_eq!(descriptor.serialized(), serialized);
        assert!(
            descriptor
                .pool()
                .get_message_by_name("shop.v1.Order.Item")
                .is_some()
        );
    }

    #[test]
    fn parses_descriptor_built_with_prost_types() {
        // As Python's protoc output: no json_name, fully qualified type names.
        let proto = FileDescriptorProto {
            name: Some("shop/order.proto".into()),
            package: Some("shop".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("Order".into()),
                field: vec![
                    FieldDescriptorProto {
                        name: Some("order_id".into()),
                        number: Some(1),
                        label: Some(Label::Optional as i32),
                        r#type: Some(Type::Int64 as i32),
                        ..Default::default()
                    },
                    FieldDescriptorProto {
                        name: Some("lines".into()),
                        number: Some(2),
                        label: Some(Label::Repeated as i32),
                        r#type: Some(Type::Message as i32),
                        type_name: Some(".shop.Line".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut line = DescriptorProto {
            name: Some("Line".into()),
            ..Default::default()
        };
        line.field.push(FieldDescriptorProto {
            name: Some("sku".into()),
            number: Some(1),
            label: Some(Label::Optional as i32),
            r#type: Some(Type::String as i32),
            ..Default::default()
        });
        let mut proto = proto;
        proto.message_type.push(line);
        let encoded = STANDARD.encode(proto.encode_to_vec());

        let schema = ProtobufSchema::parse(&encoded, &[]).expect("descriptor parses");
        assert_eq!(schema.file_name(), "shop/order.proto");
        let text = parse(
            "syntax = \"proto3\"; package shop;\n\
             message Order { int64 order_id = 1; repeated Line lines = 2; }\n\
             message Line { string sku = 1; }",
        );
        assert_eq!(schema.canonical(), text.canonical());
        // Unpadded base64 is accepted too.
        let unpadded = STANDARD_NO_PAD.encode(proto.encode_to_vec());
        let again = ProtobufSchema::parse(&unpadded, &[]).expect("unpadded parses");
        assert_eq!(again.canonical(), schema.canonical());
    }

    #[test]
    fn python_style_descriptors_with_a_reference_and_a_well_known_import() {
        // As confluent-kafka's Python ProtobufSerializer registers them: both files as
        // base64 descriptors, the reference named by its file name, well-known imports not
        // referenced.
        let field =
            |name: &str, number: i32, kind: Type, type_name: Option<&str>| FieldDescriptorProto {
                name: Some(name.into()),
                number: Some(number),
                label: Some(Label::Optional as i32),
                r#type: Some(kind as i32),
                type_name: type_name.map(str::to_owned),
                ..Default::default()
            };
        let money = FileDescriptorProto {
            name: Some("floe_test/money.proto".into()),
            package: Some("floe.money".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("Money".into()),
                field: vec![
                    field("currency", 1, Type::String, None),
                    field("cents", 2, Type::Int64, None),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let order = FileDescriptorProto {
            name: Some("floe_test/order.proto".into()),
            package: Some("floe.order".into()),
            syntax: Some("proto3".into()),
            dependency: vec![
                "floe_test/money.proto".into(),
                "google/protobuf/timestamp.proto".into(),
            ],
            message_type: vec![DescriptorProto {
                name: Some("Order".into()),
                field: vec![
                    field("id", 1, Type::Int64, None),
                    field("total", 2, Type::Message, Some(".floe.money.Money")),
                    field("at", 3, Type::Message, Some(".google.protobuf.Timestamp")),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let money_b64 = STANDARD.encode(money.encode_to_vec());
        let order_b64 = STANDARD.encode(order.encode_to_vec());
        let deps = [dep("floe_test/money.proto", &money_b64)];
        let schema = ProtobufSchema::parse(&order_b64, &deps).expect("parses");
        assert_eq!(schema.file_name(), "floe_test/order.proto");
        let order_type = schema.message_by_indexes(&[0]).expect("Order");
        assert_eq!(order_type.full_name(), "floe.order.Order");
        let text = schema.text();
        assert!(text.contains("import \"floe_test/money.proto\";"), "{text}");
        assert!(text.contains(".floe.money.Money total = 2;"), "{text}");
        assert!(
            text.contains(".google.protobuf.Timestamp at = 3;"),
            "{text}"
        );
        // Its text, registered with the same reference, is the same schema.
        let from_text = ProtobufSchema::parse(&text, &deps).expect("text parses");
        assert_eq!(from_text.canonical(), schema.canonical());
        // The serialized form round-trips, with the file's name and imports.
        let bytes = STANDARD.decode(schema.serialized()).expect("base64");
        let proto = FileDescriptorProto::decode(bytes.as_slice()).expect("descriptor");
        assert_eq!(proto.name(), "floe_test/order.proto");
        assert_eq!(proto.dependency, order.dependency);
        // Without the reference it is invalid.
        let err = ProtobufSchema::parse(&order_b64, &[]).expect_err("missing reference");
        assert!(err.contains("floe_test/money.proto"), "{err}");
    }

    #[test]
    fn canonical_ignores_whitespace_and_comments() {
        let compact = parse(
            "syntax=\"proto3\";package shop;message Order{int64 id=1;string customer=2;\
             repeated Line lines=3;message Line{string sku=1;int32 count=2;}}\
             message Refund{int64 order_id=1;}",
        );
        assert_eq!(compact.canonical(), parse(ORDER).canonical());
        // Relative and fully qualified type names are the same schema.
        let qualified = ORDER.replace("repeated Line lines", "repeated .shop.Order.Line lines");
        assert_eq!(parse(&qualified).canonical(), parse(ORDER).canonical());
        assert_ne!(
            parse(&ORDER.replace("int32 count", "int64 count")).canonical(),
            parse(ORDER).canonical()
        );
    }

    #[test]
    fn canonical_of_text_equals_canonical_of_its_descriptor() {
        for text in [ORDER, RICH_PROTO3, RICH_PROTO2] {
            let schema = parse(text);
            let descriptor =
                ProtobufSchema::parse(&schema.serialized(), &[]).expect("descriptor parses");
            assert_eq!(descriptor.canonical(), schema.canonical(), "{text}");
        }
    }

    #[test]
    fn text_of_descriptor_reparses_to_the_same_schema() {
        for text in [ORDER, RICH_PROTO3, RICH_PROTO2] {
            let schema = parse(text);
            let descriptor =
                ProtobufSchema::parse(&schema.serialized(), &[]).expect("descriptor parses");
            let rendered = descriptor.text();
            assert_ne!(rendered, schema.serialized());
            let reparsed = match ProtobufSchema::parse(&rendered, &[]) {
                Ok(s) => s,
                Err(e) => panic!("rendered text should parse: {e}\n{rendered}"),
            };
            assert_eq!(reparsed.canonical(), schema.canonical(), "{rendered}");
            assert!(reparsed.backward_errors(&schema).is_empty());
            assert!(schema.backward_errors(&reparsed).is_empty());
        }
    }

    #[test]
    fn rendering_keeps_the_details() {
        let rendered = parse(RICH_PROTO3).canonical();
        for expected in [
            "syntax = \"proto3\";",
            "package shop.v1;",
            "import \"google/protobuf/timestamp.proto\";",
            "option java_package = \"com.shop.v1\";",
            "option java_multiple_files = true;",
            "string customer_name = 2 [json_name = \"customer\"];",
            "repeated .shop.v1.Order.Item items = 3;",
            "map<string, int32> counts = 4;",
            "map<int64, .shop.v1.Order.Item> by_id = 11;",
            ".google.protobuf.Timestamp created = 5;",
            "optional string note = 6;",
            ".shop.v1.Status status = 7 [deprecated = true];",
            "oneof payment {",
            "repeated sint64 deltas = 10 [packed = false];",
            "reserved 20, 30 to 40, 1000 to max;",
            "reserved \"old_field\";",
            "option allow_alias = true;",
            "STATUS_FINE = 1 [deprecated = true];",
            "reserved 5 to 9, 100 to max;",
            "rpc Get(.shop.v1.Order) returns (.shop.v1.Order);",
            "rpc Stream(stream .shop.v1.Order) returns (stream .shop.v1.Order) {",
        ] {
            assert!(
                rendered.contains(expected),
                "{expected:?} missing in\n{rendered}"
            );
        }
        assert!(!rendered.contains("CountsEntry"), "{rendered}");
        assert!(!rendered.contains("json_name = \"id\""), "{rendered}");

        let rendered = parse(RICH_PROTO2).canonical();
        for expected in [
            "syntax = \"proto2\";",
            "required int32 id = 1;",
            "optional string name = 2 [default = \"a \\\"b\\\"\\n\", (.legacy.sensitive) = \"pii\"];",
            "optional double ratio = 4 [default = inf];",
            "repeated int32 nums = 5 [packed = true];",
            "optional group Extra = 6 {",
            "optional .legacy.Rec.E e = 7 [default = B];",
            "option (.legacy.tags) = 1;",
            "option (.legacy.tags) = 2;",
            "extensions 100 to 199;",
            "extend .legacy.Rec {",
            "optional int32 more = 100;",
            "optional int32 nested_ext = 150;",
            "extend .google.protobuf.FieldOptions {",
        ] {
            assert!(
                rendered.contains(expected),
                "{expected:?} missing in\n{rendered}"
            );
        }
        assert!(!rendered.contains("message Extra"), "{rendered}");
    }

    #[test]
    fn resolves_a_referenced_file() {
        let other = "syntax = \"proto3\"; package common; message Money { int64 cents = 1; }";
        let main = "syntax = \"proto3\"; package shop; import \"other.proto\";\n\
                    message Order { common.Money total = 1; }";
        let schema = ProtobufSchema::parse(main, &[dep("other.proto", other)])
            .expect("parses with its reference");
        let order = schema
            .pool()
            .get_message_by_name("shop.Order")
            .expect("Order");
        match order.get_field(1).expect("total").kind() {
            Kind::Message(m) => assert_eq!(m.full_name(), "common.Money"),
            kind => panic!("unexpected kind {kind:?}"),
        }
        assert!(schema.canonical().contains(".common.Money total = 1;"));
        assert!(schema.canonical().contains("import \"other.proto\";"));

        // The reference given as a descriptor (its own name is replaced by the import
        // path), and the main file as a descriptor too.
        let other_descriptor = parse(other).serialized();
        let deps = [dep("other.proto", &other_descriptor)];
        let with_descriptor = ProtobufSchema::parse(main, &deps).expect("descriptor reference");
        assert_eq!(with_descriptor.canonical(), schema.canonical());
        let main_descriptor = ProtobufSchema::parse(&schema.serialized(), &deps)
            .expect("descriptor with descriptor reference");
        assert_eq!(main_descriptor.canonical(), schema.canonical());
        assert_eq!(
            main_descriptor
                .file()
                .dependencies()
                .next()
                .map(|f| f.name().to_owned()),
            Some("other.proto".to_owned())
        );

        // Transitive references, in dependency order.
        let base = "syntax = \"proto3\"; package base; message Id { string v = 1; }";
        let middle = "syntax = \"proto3\"; package mid; import \"base/id.proto\";\n\
                      message Ref { base.Id id = 1; }";
        let top = "syntax = \"proto3\"; import \"mid.proto\"; message Top { mid.Ref r = 1; }";
        let deps = [dep("base/id.proto", base), dep("mid.proto", middle)];
        ProtobufSchema::parse(top, &deps).expect("transitive references");
    }

    #[test]
    fn main_file_name_avoids_reference_names() {
        let other = "syntax = \"proto3\"; message A { int32 x = 1; }";
        let main = "syntax = \"proto3\"; import \"schema.proto\"; message B { A a = 1; }";
        let schema = ProtobufSchema::parse(main, &[dep("schema.proto", other)])
            .expect("parses under another name");
        assert_ne!(schema.file_name(), "schema.proto");
    }

    #[test]
    fn resolves_well_known_types_without_references() {
        let schema = parse(
            "syntax = \"proto3\"; package ev;\n\
             import \"google/protobuf/timestamp.proto\";\n\
             import \"google/protobuf/any.proto\";\n\
             import \"google/protobuf/struct.proto\";\n\
             import \"google/protobuf/wrappers.proto\";\n\
             import \"google/protobuf/duration.proto\";\n\
             import \"google/protobuf/empty.proto\";\n\
             import \"google/protobuf/field_mask.proto\";\n\
             message Event {\n\
               google.protobuf.Timestamp at = 1;\n\
               google.protobuf.Any payload = 2;\n\
               google.protobuf.Struct attrs = 3;\n\
               google.protobuf.StringValue label = 4;\n\
               google.protobuf.Duration took = 5;\n\
               google.protobuf.FieldMask mask = 6;\n\
             }",
        );
        assert!(
            schema
                .pool()
                .get_message_by_name("google.protobuf.Timestamp")
                .is_some()
        );
        let descriptor = ProtobufSchema::parse(&schema.serialized(), &[]).expect("descriptor");
        assert_eq!(descriptor.canonical(), schema.canonical());
    }

    #[test]
    fn rejects_invalid_inputs() {
        let cases: Vec<(String, Vec<Resolved>, &str)> = vec![
            ("".into(), vec![], "empty"),
            ("   \n".into(), vec![], "empty"),
            ("message {".into(), vec![], "schema.proto:1"),
            (
                "syntax = \"proto3\"; message A { Missing m = 1; }".into(),
                vec![],
                "Missing",
            ),
            (
                "syntax = \"proto3\";\nmessage A {\n int32 a = 1;\n int32 b = 1; }".into(),
                vec![],
                "(line 4, column",
            ),
            ("syntax = \"proto4\";".into(), vec![], "proto4"),
            ("not base64 !".into(), vec![], ""),
            ("AAAA".into(), vec![], "FileDescriptorProto"),
            ("@@@".into(), vec![], ""),
            ("////".into(), vec![], "FileDescriptorProto"),
            (
                STANDARD.encode([0xff_u8; 64]),
                vec![],
                "FileDescriptorProto",
            ),
            ("QUJD".into(), vec![], ""),
            ("abc".into(), vec![], "FileDescriptorProto"),
            (
                "syntax = \"proto3\"; import \"missing.proto\"; message A {}".into(),
                vec![],
                "missing.proto",
            ),
            (
                "syntax = \"proto3\"; import \"a.proto\"; message M {}".into(),
                vec![
                    dep("a.proto", "syntax = \"proto3\"; import \"b.proto\";"),
                    dep("b.proto", "syntax = \"proto3\"; import \"a.proto\";"),
                ],
                "cycle",
            ),
            (
                "syntax = \"proto3\"; import \"a.proto\"; message M {}".into(),
                vec![dep("a.proto", "syntax = \"proto3\"; message {")],
                "a.proto",
            ),
            (
                "syntax = \"proto3\"; import \"a.proto\"; message M {}".into(),
                vec![dep("a.proto", "%%%")],
                "a.proto",
            ),
            (
                "syntax = \"proto3\"; import \"a.proto\"; message M {}".into(),
                vec![dep(
                    "a.proto",
                    "syntax = \"proto3\"; message A { B b = 1; }",
                )],
                "in referenced schema 'a.proto': name 'B' is not defined",
            ),
            (
                "syntax = \"proto3\"; import \"a.proto\"; import \"a.proto\"; message M {}".into(),
                vec![dep("a.proto", "syntax = \"proto3\";")],
                "a.proto",
            ),
            (
                "syntax = \"proto3\"; message M { int32 a = 1; }".into(),
                vec![dep("", "syntax = \"proto3\";")],
                "empty name",
            ),
            ("x".repeat(MAX_SCHEMA_BYTES + 1), vec![], "too large"),
            (
                "syntax = \"proto3\";".into(),
                vec![
                    dep("a.proto", &"/".repeat(MAX_SCHEMA_BYTES)),
                    dep("b.proto", &"/".repeat(MAX_SCHEMA_BYTES)),
                    dep("c.proto", &"/".repeat(MAX_SCHEMA_BYTES)),
                    dep("d.proto", &"/".repeat(MAX_SCHEMA_BYTES)),
                ],
                "too large",
            ),
        ];
        for (text, deps, needle) in cases {
            match ProtobufSchema::parse(&text, &deps) {
                Ok(schema) => panic!(
                    "{:?} should be invalid, got {}",
                    text.chars().take(80).collect::<String>(),
                    schema.canonical()
                ),
                Err(e) => assert!(
                    e.contains(needle),
                    "error for {:?} should mention {needle:?}: {e}",
                    text.chars().take(80).collect::<String>()
                ),
            }
        }
    }

    #[test]
    fn descriptor_named_like_a_reference_is_rejected() {
        let other = "syntax = \"proto3\"; message A { int32 x = 1; }";
        let main = parse("syntax = \"proto3\"; message B { int32 y = 1; }");
        let bytes = STANDARD.decode(main.serialized()).expect("base64");
        let mut proto = FileDescriptorProto::decode(bytes.as_slice()).expect("descriptor");
        proto.name = Some("other.proto".into());
        let encoded = STANDARD.encode(proto.encode_to_vec());
        let err =
            ProtobufSchema::parse(&encoded, &[dep("other.proto", other)]).expect_err("name clash");
        assert!(err.contains("other.proto"), "{err}");
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic pseudo-random bytes, as descriptors and as text.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let _ = ProtobufSchema::parse(&STANDARD.encode(&bytes), &[]);
            let _ = ProtobufSchema::parse(&String::from_utf8_lossy(&bytes), &[]);
        }
        // Deep nesting is bounded by the parsers.
        let deep = format!(
            "syntax = \"proto3\"; {} {}",
            "message M { ".repeat(500),
            "}".repeat(500)
        );
        let _ = ProtobufSchema::parse(&deep, &[]);
    }

    #[test]
    fn large_schemas_are_handled() {
        // A long chain of message types, many oneofs, many extensions: linear work, and
        // bounded recursion.
        let n = 2000;
        let mut text = String::from("syntax = \"proto2\";\n");
        for i in 0..n {
            let _ = writeln!(
                text,
                "message M{i} {{ optional M{} next = 1; optional int32 v = 2; \
                 oneof o{i} {{ int32 a = 3; string b = 4; }} extensions 100 to 199; }}",
                i + 1
            );
        }
        let _ = writeln!(text, "message M{n} {{ optional int32 v = 1; }}");
        for i in 0..n {
            let _ = writeln!(text, "extend M{i} {{ optional int32 e{i} = 100; }}");
        }
        let old = parse(&text);
        let descriptor = ProtobufSchema::parse(&old.serialized(), &[]).expect("descriptor");
        assert_eq!(descriptor.canonical(), old.canonical());
        assert!(old.backward_errors(&descriptor).is_empty());
        let changed = parse(&text.replace(
            &format!("message M{n} {{ optional int32 v = 1; }}"),
            &format!("message M{n} {{ optional string v = 1; }}"),
        ));
        let errors = changed.backward_errors(&old);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("FIELD_SCALAR_KIND_CHANGED") && e.contains(&format!("M{n}"))),
            "{:?}",
            errors.iter().take(3).collect::<Vec<_>>()
        );
    }

    #[test]
    fn compatible_changes() {
        let base = "syntax = \"proto3\"; package shop;\n\
                    message Order { int64 id = 1; string name = 2; }";
        // Add a field.
        assert_compatible(
            base,
            "syntax = \"proto3\"; package shop;\n\
             message Order { int64 id = 1; string name = 2; int32 qty = 3; }",
        );
        // Remove a field.
        assert_compatible(
            base,
            "syntax = \"proto3\"; package shop; message Order { int64 id = 1; }",
        );
        // Add a message.
        assert_compatible(
            base,
            "syntax = \"proto3\"; package shop;\n\
             message Order { int64 id = 1; string name = 2; }\n\
             message Refund { int64 id = 1; }",
        );
        // Rename a field (same number).
        assert_compatible(
            base,
            "syntax = \"proto3\"; package shop;\n\
             message Order { int64 id = 1; string title = 2; }",
        );
        // Wire-compatible scalar changes.
        assert_compatible(
            base,
            "syntax = \"proto3\"; package shop;\n\
             message Order { uint64 id = 1; bytes name = 2; }",
        );
        // int32 <-> enum, string <-> repeated string, message <-> repeated message,
        // implicit <-> optional presence, a single field into a new oneof.
        assert_compatible(
            "syntax = \"proto3\"; message M { int32 a = 1; string b = 2; N c = 3; \
             int32 d = 4; int32 e = 5; } message N { int32 x = 1; }",
            "syntax = \"proto3\"; message M { E a = 1; repeated string b = 2; \
             repeated N c = 3; optional int32 d = 4; oneof o { int32 e = 5; int32 f = 6; } } \
             message N { int32 x = 1; } enum E { E0 = 0; }",
        );
        // Reordering messages and adding an enum value.
        assert_compatible(
            "syntax = \"proto3\"; message A { int32 x = 1; } message B { int32 y = 1; }\n\
             enum E { E0 = 0; }",
            "syntax = \"proto3\"; message B { int32 y = 1; } message A { int32 x = 1; }\n\
             enum E { E0 = 0; E1 = 1; }",
        );
        // Adding a field to a oneof, removing a whole oneof.
        assert_compatible(
            "syntax = \"proto3\"; message M { oneof o { int32 a = 1; string b = 2; } \
             oneof p { int32 c = 3; } }",
            "syntax = \"proto3\"; message M { oneof o { int32 a = 1; string b = 2; \
             int64 d = 4; } }",
        );
        // The same schema, as text and as descriptor.
        let text = parse(ORDER);
        let descriptor = ProtobufSchema::parse(&text.serialized(), &[]).expect("descriptor");
        assert!(text.backward_errors(&descriptor).is_empty());
        assert!(descriptor.backward_errors(&text).is_empty());
    }

    #[test]
    fn package_changed_is_incompatible() {
        assert_incompatible(
            "syntax = \"proto3\"; package shop; message Order { int64 id = 1; }",
            "syntax = \"proto3\"; package store; message Order { int64 id = 1; }",
            &["PACKAGE_CHANGED", "'shop'", "'store'"],
        );
    }

    #[test]
    fn message_removed_or_renamed_is_incompatible() {
        let errors = compat(ORDER, &ORDER.replace("message Refund", "message Return"));
        assert_eq!(
            errors,
            vec!["MESSAGE_REMOVED: message 'shop.Refund' was removed or renamed"]
        );
        assert_incompatible(
            ORDER,
            "syntax = \"proto3\"; package shop; message Order { int64 id = 1; }",
            &["MESSAGE_REMOVED", "shop.Refund"],
        );
        // A nested message.
        assert_incompatible(
            ORDER,
            &ORDER
                .replace("message Line", "message Row")
                .replace("Line lines", "Row lines"),
            &[
                "MESSAGE_REMOVED",
                "shop.Order.Line",
                "FIELD_NAMED_TYPE_CHANGED",
            ],
        );
    }

    #[test]
    fn scalar_kind_changed_is_incompatible() {
        let errors = compat(ORDER, &ORDER.replace("int32 count", "string count"));
        assert_eq!(
            errors,
            vec![
                "FIELD_SCALAR_KIND_CHANGED: field 'count' of message 'shop.Order.Line' changed \
                 from int32 to string",
                "FIELD_NAMED_TYPE_CHANGED: field 'lines' of message 'shop.Order' has type \
                 shop.Order.Line, which changed incompatibly",
            ]
        );
        for (old, new) in [
            ("int32", "sint32"),
            ("int64", "fixed64"),
            ("fixed32", "fixed64"),
            ("float", "double"),
            ("bool", "string"),
            ("sfixed32", "float"),
        ] {
            assert_incompatible(
                &format!("syntax = \"proto3\"; message M {{ {old} f = 1; }}"),
                &format!("syntax = \"proto3\"; message M {{ {new} f = 1; }}"),
                &["FIELD_SCALAR_KIND_CHANGED", "'f'", "'M'", old, new],
            );
        }
        for (old, new) in [
            ("int32", "bool"),
            ("sint32", "sint64"),
            ("fixed32", "sfixed32"),
            ("fixed64", "sfixed64"),
            ("string", "bytes"),
        ] {
            assert_compatible(
                &format!("syntax = \"proto3\"; message M {{ {old} f = 1; }}"),
                &format!("syntax = \"proto3\"; message M {{ {new} f = 1; }}"),
            );
        }
    }

    #[test]
    fn kind_changed_is_incompatible() {
        assert_incompatible(
            "syntax = \"proto3\"; message M { int32 f = 1; } message N { int32 x = 1; }",
            "syntax = \"proto3\"; message M { N f = 1; } message N { int32 x = 1; }",
            &[
                "FIELD_KIND_CHANGED",
                "field 'f' of message 'M'",
                "int32",
                "message N",
            ],
        );
        assert_incompatible(
            "syntax = \"proto3\"; message M { N f = 1; } message N { int32 x = 1; }",
            "syntax = \"proto3\"; message M { string f = 1; } message N { int32 x = 1; }",
            &["FIELD_KIND_CHANGED"],
        );
        assert_incompatible(
            "syntax = \"proto3\"; message M { map<string, int32> f = 1; }",
            "syntax = \"proto3\"; message M { repeated string f = 1; }",
            &["FIELD_KIND_CHANGED"],
        );
        assert_incompatible(
            "syntax = \"proto3\"; message M { map<string, int32> f = 1; }",
            "syntax = \"proto3\"; message M { map<string, string> f = 1; }",
            &["FIELD_SCALAR_KIND_CHANGED", "'f'"],
        );
    }

    #[test]
    fn named_type_changed_is_incompatible() {
        assert_incompatible(
            "syntax = \"proto3\"; message M { A f = 1; } message A { int32 x = 1; } \
             message B { int32 x = 1; }",
            "syntax = \"proto3\"; message M { B f = 1; } message A { int32 x = 1; } \
             message B { int32 x = 1; }",
            &[
                "FIELD_NAMED_TYPE_CHANGED",
                "field 'f' of message 'M'",
                "message A",
                "message B",
            ],
        );
        // Through a reference whose message changed incompatibly.
        let main = "syntax = \"proto3\"; import \"money.proto\"; \
                    message Order { common.Money total = 1; }";
        let old = ProtobufSchema::parse(
            main,
            &[dep(
                "money.proto",
                "syntax = \"proto3\"; package common; message Money { int64 cents = 1; }",
            )],
        )
        .expect("old");
        let new = ProtobufSchema::parse(
            main,
            &[dep(
                "money.proto",
                "syntax = \"proto3\"; package common; message Money { string cents = 1; }",
            )],
        )
        .expect("new");
        let errors = new.backward_errors(&old);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("FIELD_SCALAR_KIND_CHANGED") && e.contains("common.Money")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("FIELD_NAMED_TYPE_CHANGED") && e.contains("'total'")),
            "{errors:?}"
        );
        // Recursive types terminate.
        assert_compatible(
            "syntax = \"proto3\"; message Node { repeated Node children = 1; int32 v = 2; }",
            "syntax = \"proto3\"; message Node { repeated Node children = 1; int64 v = 2; }",
        );
        assert_incompatible(
            "syntax = \"proto3\"; message Node { repeated Node children = 1; int32 v = 2; }",
            "syntax = \"proto3\"; message Node { repeated Node children = 1; string v = 2; }",
            &["FIELD_SCALAR_KIND_CHANGED"],
        );
    }

    #[test]
    fn numeric_label_changed_is_incompatible() {
        assert_incompatible(
            "syntax = \"proto3\"; message M { optional int32 f = 1; }",
            "syntax = \"proto3\"; message M { repeated int32 f = 1; }",
            &[
                "FIELD_NUMERIC_LABEL_CHANGED",
                "'f'",
                "singular int32",
                "repeated int32",
            ],
        );
        assert_incompatible(
            "syntax = \"proto3\"; message M { repeated double f = 1; }",
            "syntax = \"proto3\"; message M { double f = 1; }",
            &["FIELD_NUMERIC_LABEL_CHANGED"],
        );
        assert_compatible(
            "syntax = \"proto3\"; message M { optional bytes f = 1; }",
            "syntax = \"proto3\"; message M { repeated bytes f = 1; }",
        );
    }

    #[test]
    fn required_fields_added_or_removed_are_incompatible() {
        let base = "syntax = \"proto2\"; message M { optional string a = 1; }";
        assert_incompatible(
            base,
            "syntax = \"proto2\"; message M { optional string a = 1; required string b = 2; }",
            &["REQUIRED_FIELD_ADDED", "'b'", "'M'"],
        );
        assert_incompatible(
            "syntax = \"proto2\"; message M { optional string a = 1; required string b = 2; }",
            base,
            &["REQUIRED_FIELD_REMOVED", "'b'"],
        );
        assert_incompatible(
            base,
            "syntax = \"proto2\"; message M { required string a = 1; }",
            &["REQUIRED_FIELD_ADDED", "'a'", "became required"],
        );
        assert_compatible(
            base,
            "syntax = \"proto2\"; message M { optional string a = 1; optional int32 b = 2; }",
        );
    }

    #[test]
    fn oneof_changes() {
        // A field removed from a oneof.
        assert_incompatible(
            "syntax = \"proto3\"; message M { oneof o { string a = 1; string b = 2; \
             int32 c = 3; } }",
            "syntax = \"proto3\"; message M { oneof o { string a = 1; string b = 2; } }",
            &["ONEOF_FIELD_REMOVED", "'c'", "'o'", "'M'"],
        );
        // Several existing fields moved into one oneof.
        assert_incompatible(
            "syntax = \"proto3\"; message M { string a = 1; string b = 2; }",
            "syntax = \"proto3\"; message M { oneof o { string a = 1; string b = 2; \
             int32 c = 3; } }",
            &["MULTIPLE_FIELDS_MOVED_TO_ONEOF", "'a'", "'b'", "'o'"],
        );
        // A field moved into a oneof made of fields of an existing oneof.
        assert_incompatible(
            "syntax = \"proto3\"; message M { string a = 1; oneof p { string b = 2; } }",
            "syntax = \"proto3\"; message M { oneof o { string a = 1; string b = 2; } }",
            &["FIELD_MOVED_TO_EXISTING_ONEOF", "'a'"],
        );
        // One field moved into a new oneof is fine.
        assert_compatible(
            "syntax = \"proto3\"; message M { string a = 1; string b = 2; }",
            "syntax = \"proto3\"; message M { string a = 1; oneof o { string b = 2; \
             int32 c = 3; } }",
        );
        // proto3 optional fields are not oneof members.
        assert_compatible(
            "syntax = \"proto3\"; message M { optional string a = 1; optional string b = 2; }",
            "syntax = \"proto3\"; message M { optional string a = 1; }",
        );
    }

    #[test]
    fn forward_is_backward_swapped() {
        let old = parse("syntax = \"proto2\"; message M { optional string a = 1; }");
        let new = parse(
            "syntax = \"proto2\"; message M { optional string a = 1; required int32 b = 2; }",
        );
        assert!(!new.backward_errors(&old).is_empty());
        assert!(!old.backward_errors(&new).is_empty());
        let newer = parse("syntax = \"proto2\"; message M { optional string a = 1; }");
        assert!(newer.backward_errors(&old).is_empty());
    }

    #[test]
    fn message_by_indexes() {
        let schema = parse(ORDER);
        let name = |indexes: &[i32]| {
            schema
                .message_by_indexes(indexes)
                .map(|m| m.full_name().to_owned())
        };
        assert_eq!(name(&[]).as_deref(), Some("shop.Order"));
        assert_eq!(name(&[0]).as_deref(), Some("shop.Order"));
        assert_eq!(name(&[1]).as_deref(), Some("shop.Refund"));
        assert_eq!(name(&[0, 0]).as_deref(), Some("shop.Order.Line"));
        assert_eq!(name(&[2]), None);
        assert_eq!(name(&[-1]), None);
        assert_eq!(name(&[0, 1]), None);
        assert_eq!(name(&[1, 0]), None);
        assert_eq!(name(&[0, 0, 0]), None);

        let nested = parse(
            "syntax = \"proto3\"; package p;\n\
             message A { int32 x = 1; }\n\
             message B { message C { int32 y = 1; } message D { int32 z = 1; } C c = 1; }",
        );
        let name = |indexes: &[i32]| {
            nested
                .message_by_indexes(indexes)
                .map(|m| m.full_name().to_owned())
        };
        assert_eq!(name(&[1]).as_deref(), Some("p.B"));
        assert_eq!(name(&[1, 0]).as_deref(), Some("p.B.C"));
        assert_eq!(name(&[1, 1]).as_deref(), Some("p.B.D"));
        assert_eq!(name(&[1, 2]), None);
        assert_eq!(name(&[i32::MAX]), None);

        let empty = parse("syntax = \"proto3\"; enum E { E0 = 0; }");
        assert!(empty.message_by_indexes(&[]).is_none());
    }
}
