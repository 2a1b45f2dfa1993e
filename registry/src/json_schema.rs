//! JSON Schemas: parsing, a canonical text, and Confluent Schema Registry's compatibility
//! rules.
//!
//! # Parsing
//!
//! [`JsonSchema::parse`] accepts a JSON Schema document of the drafts Confluent accepts (4,
//! 6, 7, 2019-09, 2020-12; a `$schema` naming an older json-schema.org draft is refused): a
//! JSON object or boolean. It checks that the document is well formed rather than validating
//! it against the meta-schema: every subschema is an object or a boolean, `type` names the
//! seven JSON types, the keywords that hold schemas (`properties`, `items`, `allOf`, `not`,
//! `definitions`, `$defs`, ...) hold schemas, `required` is an array of strings, numeric
//! keywords are numbers (lengths and counts non-negative integers, `multipleOf` positive),
//! and every `$ref` resolves. A `$ref` resolves to a location of the same document (`#`,
//! `#/definitions/X`, `#/$defs/X`, any JSON pointer, an `$anchor` or draft-6/7 `"$id": "#x"`,
//! a subschema's embedded `$id`) or to one of the referenced schemas ([`Resolved`]), named
//! by its reference name or its `$id`, either as written or resolved against the document's
//! `$id`, optionally with a `#` fragment into it. Nothing is ever fetched over the network.
//! Unknown keywords are annotations and ignored. `pattern` regular expressions are not
//! checked: they are ECMA-262 expressions, which no Rust engine implements exactly.
//! Inputs are bounded: [`MAX_SCHEMA_BYTES`] per document and [`MAX_DEPTH`] levels of
//! nesting, checked before the text is parsed.
//!
//! # Canonical text
//!
//! [`JsonSchema::canonical`] is the document written compactly with object keys sorted,
//! so the same schema registered with other whitespace or key order gives the same text.
//!
//! # Compatibility
//!
//! [`JsonSchema::backward_errors`] implements the rules of Confluent's
//! `io.confluent.kafka.schemaregistry.json.diff` package with its default (strict) set of
//! compatible changes, written anew for this crate. The old schema is the writer, the new
//! one the reader: the new schema must accept every document the old one accepts. Both
//! schemas are decomposed the way Confluent's schema loader does: a `type` array is an
//! `anyOf` of one schema per type, and a schema object combining several kinds of assertion
//! (say `type: string` with `enum`, or `properties` with `oneOf`) is an implicit `allOf` of
//! them. `$ref`s are followed on both sides (locally and into referenced schemas). A pair
//! of subschemas met again while being compared (recursive schemas) is taken as compatible
//! and every pair is compared once, memoized; since such an assumption can prove false,
//! passes repeat with the pairs found incompatible known as such until nothing changes
//! (the greatest fixpoint, as Confluent computes it). `allOf`/`anyOf`/`oneOf` subschemas
//! are paired by a maximum bipartite matching over compatible pairs, which asks for a pair
//! only when it needs it, trying subschemas of the same index first.
//!
//! On Confluent's own test data for this package (`diff-schema-examples*.json` and
//! `diff-combined-schema-examples*.json`, 263 pairs of drafts 7 and 2020-12) this gives the
//! same verdict, compatible or not, for every pair.
//!
//! Every incompatibility is reported as `NAME at #/json/path: detail` with Confluent's name
//! of the difference and the path where it is found (following the new schema's structure,
//! through references). The incompatible differences:
//!
//! * `TYPE_CHANGED` (a different kind of schema), `TYPE_NARROWED` (number to integer; integer
//!   to number is `TYPE_EXTENDED`, compatible), `SCHEMA_ADDED` (an `items` schema where
//!   there was none).
//! * Strings: `MAX_LENGTH_ADDED`/`_DECREASED`, `MIN_LENGTH_ADDED`/`_INCREASED`,
//!   `PATTERN_ADDED`/`_CHANGED`.
//! * Numbers: `MAXIMUM_ADDED`/`_DECREASED`, `MINIMUM_ADDED`/`_INCREASED`, the same for
//!   `EXCLUSIVE_MAXIMUM`/`EXCLUSIVE_MINIMUM` (draft 4's boolean form is read as the
//!   exclusive bound it means), `MULTIPLE_OF_ADDED`/`_EXPANDED`/`_CHANGED`.
//! * Enums and constants: `ENUM_ARRAY_NARROWED`, `ENUM_ARRAY_CHANGED`.
//! * Objects: `REQUIRED_ATTRIBUTE_ADDED` (an existing property became required without a
//!   default), `PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL`,
//!   `OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL` and
//!   `REQUIRED_PROPERTY_[WITH_DEFAULT_]ADDED_TO_OPEN_CONTENT_MODEL` (a property with a
//!   non-empty schema added where the old schema allowed any property: old data may hold
//!   anything under that name), `REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL`,
//!   `PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL` and
//!   `PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL` (against the
//!   `patternProperties`/`additionalProperties`/`unevaluatedProperties` schema that covers
//!   the name), `ADDITIONAL_PROPERTIES_REMOVED`/`_NARROWED`,
//!   `UNEVALUATED_PROPERTIES_REMOVED`/`_NARROWED`, `MAX_PROPERTIES_ADDED`/`_DECREASED`,
//!   `MIN_PROPERTIES_ADDED`/`_INCREASED`, `DEPENDENCY_ARRAY_ADDED`/`_EXTENDED`/`_CHANGED`,
//!   `DEPENDENCY_SCHEMA_ADDED`.
//! * Arrays: `ITEM_ADDED_TO_OPEN_CONTENT_MODEL`, `ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL`,
//!   `ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL`,
//!   `ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL` (tuple `items` or
//!   `prefixItems`), `ADDITIONAL_ITEMS_REMOVED`/`_NARROWED`,
//!   `UNEVALUATED_ITEMS_REMOVED`/`_NARROWED`, `MAX_ITEMS_ADDED`/`_DECREASED`,
//!   `MIN_ITEMS_ADDED`/`_INCREASED`, `MAX_CONTAINS_ADDED`/`_DECREASED`,
//!   `MIN_CONTAINS_ADDED`/`_INCREASED`, `UNIQUE_ITEMS_ADDED`.
//! * Combined schemas: `COMBINED_TYPE_CHANGED` (`allOf`/`anyOf`/`oneOf` changed, except to
//!   `anyOf` or between singletons), `PRODUCT_TYPE_EXTENDED` (more `allOf` subschemas),
//!   `SUM_TYPE_NARROWED` (fewer `anyOf`/`oneOf` subschemas), `COMBINED_TYPE_SUBSCHEMAS_CHANGED`
//!   (no one-to-one pairing of compatible subschemas covers the smaller side, found as a
//!   maximum bipartite matching), `NOT_TYPE_EXTENDED`.
//!
//! The compatible differences are not reported: the reverse of each of the above (a bound
//! removed or relaxed, an enum extended, ...), `ITEM_ADDED_TO_CLOSED_CONTENT_MODEL`,
//! `OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL` (adding an optional property to an
//! object that forbade other properties), `PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL`,
//! `PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL`, `REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED`, a
//! schema made a union containing the old one (`SUM_TYPE_EXTENDED`), an `allOf` member
//! dropped (`PRODUCT_TYPE_NARROWED`), `COMBINED_TYPE_EXTENDED`, and changes of `title`,
//! `description`, `default` and `$id`. A `false` old schema and a `true` (or `{}`) new
//! schema are compatible with anything.
//!
//! # Choices where the semantics were unclear
//!
//! Confluent's verdicts are followed even where they are debatable, so that a subject's
//! history accepted by Confluent is accepted here:
//!
//! * Adding an optional property to an open content model (no `additionalProperties`, or
//!   `true`) is incompatible, as in Confluent's default strict mode (old data may carry
//!   that name with any value), unless the property's schema is `true` or `{}`, required
//!   or not. Confluent's lenient mode is not implemented.
//! * A name that becomes `required` without being listed in `properties` is not compared.
//! * An object with `patternProperties` is not an open content model: a name none of its
//!   patterns matches is covered by `additionalProperties` (then `unevaluatedProperties`),
//!   and is closed when neither gives a schema.
//! * `additionalItems` is compared when `items` is absent (where it means nothing).
//! * Whether a schema *requires* its type is not compared (`{"minLength": 1}` and `{"type":
//!   "string", "minLength": 1}` are the same string schema), nor are `format`, `contains`,
//!   `propertyNames`, `patternProperties` themselves or `if`/`then`/`else`.
//!
//! Where Confluent's results come from its loader's representation rather than the
//! schema's meaning, the meaning wins (each is more lenient than Confluent, never
//! stricter): `additionalProperties: {}` (and `unevaluated*`, `additionalItems`) is the same
//! as `true`; an empty `items: {}` added is not `SCHEMA_ADDED`; `minLength`, `minItems` and
//! `minProperties` of 0 and `minContains` of 1 are the same as absent; `multipleOf` is
//! compared as a real number (Confluent truncates it to an integer).
//! Other choices:
//!
//! * Draft 4's `exclusiveMaximum: true` is read as making `maximum` exclusive (Confluent
//!   compares the numbers only), so adding it is `EXCLUSIVE_MAXIMUM_ADDED`.
//! * `patternProperties` names are matched with the `regex` crate; a pattern it cannot
//!   compile (ECMA-only syntax such as look-around) is taken to match every name.
//! * In drafts 4 to 7 (and without `$schema`), keywords next to a `$ref` are ignored; from
//!   2019-09 on they apply together with the reference.
//! * Relative references resolve against the document's root `$id` only (nested `$id`s are
//!   indexed but do not change the base of what they contain).
//! * Reports are more specific than Confluent's where its decomposition hides the cause: a
//!   narrowed `enum` next to a `type` is `ENUM_ARRAY_NARROWED` (Confluent says
//!   `COMBINED_TYPE_SUBSCHEMAS_CHANGED`), an assertion added next to a type is
//!   `PRODUCT_TYPE_EXTENDED` (Confluent says `TYPE_CHANGED`), a union narrowed to one of its
//!   members is `SUM_TYPE_NARROWED`; a failed subschema matching also reports the
//!   differences of the unmatched old subschemas with a new one of the same kind. At most
//!   32 differences are kept per pair of subschemas.
//! * The comparison runs on a thread of its own with a 32 MiB stack (on the caller's, with
//!   a depth limit of 64, should that thread not start) and is bounded: more than 200,000
//!   subschema comparisons, nesting deeper than 1,000, a combined schema of more than 1,000
//!   subschemas or more than 32 MiB of differences stops it, and the schemas are then
//!   reported incompatible (`COMPARISON_ABORTED`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

use crate::schema::Resolved;

/// Largest document accepted, the schema's own text and each referenced schema's.
pub const MAX_SCHEMA_BYTES: usize = 4 << 20;
/// Deepest nesting of JSON arrays and objects accepted (below `serde_json`'s own limit of
/// 128, so that the limit is reported as such).
pub const MAX_DEPTH: usize = 100;
/// Deepest nesting of subschema comparisons, on the comparison's own thread of
/// [`COMPARE_STACK_BYTES`] (a level takes a few KiB of stack in a debug build)...
const MAX_COMPARE_DEPTH: usize = 1_000;
/// ... or on the caller's thread, should that thread not start.
const MAX_INLINE_COMPARE_DEPTH: usize = 64;
/// Stack of the comparison's thread.
const COMPARE_STACK_BYTES: usize = 32 << 20;
/// Most subschema comparisons one compatibility check makes.
const MAX_COMPARE_STEPS: usize = 200_000;
/// Most differences kept for one pair of subschemas (and so reported).
const MAX_DIFFS: usize = 32;
/// Most bytes of differences the memo of a comparison holds.
const MAX_DIFF_BYTES: usize = 32 << 20;
/// Most `$ref`s followed in a row before a chain of references is taken as `true`.
const MAX_REF_HOPS: usize = 64;
/// Most subschemas of one `allOf`/`anyOf`/`oneOf` the comparison pairs up.
const MAX_SUBSCHEMAS: usize = 1_000;
/// The seven JSON types.
const JSON_TYPES: [&str; 7] = [
    "string", "number", "integer", "object", "array", "boolean", "null",
];
/// Keywords that make a schema without `type` a string schema.
const STRING_KEYWORDS: [&str; 4] = ["minLength", "maxLength", "pattern", "format"];
/// Keywords that make a schema without `type` a number schema.
const NUMBER_KEYWORDS: [&str; 5] = [
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];
/// Keywords that make a schema without `type` an object schema.
const OBJECT_KEYWORDS: [&str; 11] = [
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "minProperties",
    "maxProperties",
    "propertyNames",
    "unevaluatedProperties",
];
/// Keywords that make a schema without `type` an array schema.
const ARRAY_KEYWORDS: [&str; 10] = [
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedItems",
];

/// What a reference resolves to when it cannot be: the schema that accepts everything.
static TRUE_SCHEMA: Value = Value::Bool(true);

/// A parsed JSON Schema with the schemas it references.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    root: Doc,
    dep_docs: Vec<Doc>,
    deps: Vec<Resolved>,
    canonical: String,
}

/// One parsed document (the schema or a referenced one) with what resolving references
/// into it needs.
#[derive(Debug, Clone)]
struct Doc {
    /// The reference name ("" for the schema itself).
    name: String,
    value: Value,
    /// The root `$id`, the base of relative references.
    base: Option<String>,
    /// Drafts 4 to 7: keywords next to a `$ref` are ignored.
    legacy_ref: bool,
    /// Embedded `$id`s (as written and resolved against `base`) and the JSON pointer of
    /// the subschema each names.
    ids: Vec<(String, String)>,
    /// `$anchor`s (and draft 6/7 `"$id": "#name"`) and their JSON pointers.
    anchors: Vec<(String, String)>,
    /// Every `$ref`: where it is (`#/json/pointer`) and its value.
    refs: Vec<(String, String)>,
}

impl JsonSchema {
    /// Parses a JSON Schema document (drafts 4, 6, 7, 2019-09, 2020-12 as Confluent
    /// accepts; a JSON object or boolean) whose `$ref`s may name the schemas of `deps`.
    /// The error says why it is not a valid schema (the registry's 42201).
    pub fn parse(text: &str, deps: &[Resolved]) -> Result<JsonSchema, String> {
        let root = Doc::load("", text)?;
        let mut dep_docs = Vec::with_capacity(deps.len());
        for dep in deps {
            let doc = Doc::load(&dep.name, &dep.schema)
                .map_err(|e| format!("referenced schema '{}': {e}", dep.name))?;
            dep_docs.push(doc);
        }
        let canonical = canonical_json(&root.value, false);
        let schema = JsonSchema {
            root,
            dep_docs,
            deps: deps.to_vec(),
            canonical,
        };
        schema.check_refs()?;
        Ok(schema)
    }

    /// The canonical text: the document with sorted keys and no whitespace, the same for
    /// the same schema written with other whitespace or key order.
    pub fn canonical(&self) -> String {
        self.canonical.clone()
    }

    /// Why a consumer using `self` (the new schema) cannot read data written with `old`
    /// (empty: it can). This is the BACKWARD direction; FORWARD swaps the two schemas.
    pub fn backward_errors(&self, old: &JsonSchema) -> Vec<String> {
        // Recursive schemas compare recursively: on a thread with a stack sized for it.
        let on_thread = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("json-schema-compat".into())
                .stack_size(COMPARE_STACK_BYTES)
                .spawn_scoped(scope, || self.compare(old, MAX_COMPARE_DEPTH))
                .ok()
                .map(|handle| handle.join())
        });
        match on_thread {
            Some(Ok(errors)) => errors,
            Some(Err(_)) => vec!["COMPARISON_ABORTED at #/: the comparison failed".into()],
            None => self.compare(old, MAX_INLINE_COMPARE_DEPTH),
        }
    }

    fn compare(&self, old: &JsonSchema, max_depth: usize) -> Vec<String> {
        let mut comparer = Comparer::new(old, self, max_depth);
        let diffs = comparer.run(H::root(Side::Old, old), H::root(Side::New, self));
        let only_echoes = diffs.iter().all(|d| d.echo);
        let mut seen = HashSet::new();
        let mut out: Vec<String> = diffs
            .iter()
            .filter(|d| only_echoes || !d.echo)
            .map(Diff::message)
            .filter(|m| seen.insert(m.clone()))
            .collect();
        if let Some(why) = comparer.aborted {
            out.push(format!(
                "COMPARISON_ABORTED at #/: {why}; the schemas are taken as incompatible"
            ));
        }
        out
    }

    /// The parsed document.
    pub fn value(&self) -> &Value {
        &self.root.value
    }

    /// The referenced documents by name.
    pub fn deps(&self) -> &[Resolved] {
        &self.deps
    }

    /// Document `i`: 0 is the schema itself, then the referenced ones in `deps` order.
    fn doc(&self, i: usize) -> Option<&Doc> {
        if i == 0 {
            Some(&self.root)
        } else {
            self.dep_docs.get(i - 1)
        }
    }

    fn docs(&self) -> impl Iterator<Item = (usize, &Doc)> {
        std::iter::once(&self.root)
            .chain(self.dep_docs.iter())
            .enumerate()
    }

    /// Every `$ref` of every document resolves.
    fn check_refs(&self) -> Result<(), String> {
        for (i, doc) in self.docs() {
            for (at, reference) in &doc.refs {
                if self.resolve(i, reference).is_none() {
                    let why = format!(
                        "$ref \"{reference}\" at {at} resolves to nothing: it is neither a \
                         location in this document nor a referenced schema"
                    );
                    return Err(if i == 0 {
                        why
                    } else {
                        format!("referenced schema '{}': {why}", doc.name)
                    });
                }
            }
        }
        Ok(())
    }

    /// The document and value a `$ref` found in document `doc` points to.
    fn resolve(&self, doc: usize, reference: &str) -> Option<(usize, &Value)> {
        let (base, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let (doc, start) = if base.is_empty() {
            (doc, &self.doc(doc)?.value)
        } else {
            self.find_base(doc, base)?
        };
        let fragment = percent_decode(fragment);
        if fragment.is_empty() {
            return Some((doc, start));
        }
        if fragment.starts_with('/') {
            return start.pointer(&fragment).map(|v| (doc, v));
        }
        let d = self.doc(doc)?;
        d.anchors
            .iter()
            .find(|(anchor, _)| *anchor == fragment)
            .and_then(|(_, pointer)| d.value.pointer(pointer))
            .map(|v| (doc, v))
    }

    /// The document (or embedded `$id` subschema) a reference's non-fragment part names.
    fn find_base(&self, doc: usize, base: &str) -> Option<(usize, &Value)> {
        let from = self.doc(doc)?;
        let absolute = join_url(from.base.as_deref(), base);
        let names = |s: &str| s == base || s == absolute;
        for (i, d) in self.docs() {
            let named = i > 0
                && (names(d.name.trim_end_matches('#'))
                    || names(&join_url(self.root.base.as_deref(), &d.name)));
            if named || d.base.as_deref().is_some_and(names) {
                return Some((i, &d.value));
            }
        }
        for (i, d) in self.docs() {
            for (id, pointer) in &d.ids {
                if names(id) {
                    return d.value.pointer(pointer).map(|v| (i, v));
                }
            }
        }
        None
    }
}

impl Doc {
    /// Parses and checks one document.
    fn load(name: &str, text: &str) -> Result<Doc, String> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(format!(
                "schema of {} bytes is larger than the limit of {MAX_SCHEMA_BYTES}",
                text.len()
            ));
        }
        check_nesting(text)?;
        let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        if !matches!(value, Value::Object(_) | Value::Bool(_)) {
            return Err(format!(
                "a JSON schema is an object or a boolean, not {}",
                json_kind(&value)
            ));
        }
        let (draft4, legacy_ref) = draft_of(&value)?;
        let base = value
            .get("$id")
            .or_else(|| if draft4 { value.get("id") } else { None })
            .and_then(Value::as_str)
            .map(|id| id.split('#').next().unwrap_or_default().to_string())
            .filter(|id| !id.is_empty());
        let mut walker = Walker {
            draft4,
            base: base.as_deref(),
            ptr: String::new(),
            ids: Vec::new(),
            anchors: Vec::new(),
            refs: Vec::new(),
        };
        walker.schema(&value)?;
        let Walker {
            ids, anchors, refs, ..
        } = walker;
        Ok(Doc {
            name: name.to_string(),
            value,
            base,
            legacy_ref,
            ids,
            anchors,
            refs,
        })
    }
}

/// Whether the document is draft 4 (`id` instead of `$id`) and whether keywords next to a
/// `$ref` are ignored (drafts 4 to 7, the default).
fn draft_of(value: &Value) -> Result<(bool, bool), String> {
    let Some(declared) = value.get("$schema") else {
        return Ok((false, true));
    };
    let Some(uri) = declared.as_str() else {
        return Err("$schema must be a string".into());
    };
    if uri.contains("draft-04") {
        Ok((true, true))
    } else if uri.contains("draft-06") || uri.contains("draft-07") {
        Ok((false, true))
    } else if uri.contains("2019-09") || uri.contains("2020-12") {
        Ok((false, false))
    } else if uri.contains("json-schema.org") && uri.contains("draft-0") {
        Err(format!(
            "unsupported $schema \"{uri}\": the drafts supported are 4, 6, 7, 2019-09 and \
             2020-12"
        ))
    } else {
        Ok((false, true))
    }
}

/// Refuses text nesting arrays and objects deeper than [`MAX_DEPTH`], before parsing it.
fn check_nesting(text: &str) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!(
                        "schema nests arrays and objects deeper than {MAX_DEPTH} levels"
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Walks every subschema of a document, checking keywords and collecting `$id`s,
/// anchors and `$ref`s. Recursion is bounded by [`MAX_DEPTH`].
struct Walker<'b> {
    draft4: bool,
    base: Option<&'b str>,
    /// JSON pointer of the current location.
    ptr: String,
    ids: Vec<(String, String)>,
    anchors: Vec<(String, String)>,
    refs: Vec<(String, String)>,
}

impl Walker<'_> {
    fn fail(&self, why: impl std::fmt::Display) -> String {
        format!("{why} at #{}", self.ptr)
    }

    fn enter<R>(&mut self, segment: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.ptr.len();
        self.ptr.push('/');
        push_pointer_segment(&mut self.ptr, segment);
        let result = f(self);
        self.ptr.truncate(len);
        result
    }

    fn schema(&mut self, v: &Value) -> Result<(), String> {
        match v {
            Value::Bool(_) => Ok(()),
            Value::Object(m) => self.object(m),
            other => Err(self.fail(format!(
                "a schema must be an object or a boolean, not {}",
                json_kind(other)
            ))),
        }
    }

    fn object(&mut self, m: &Map<String, Value>) -> Result<(), String> {
        let id = m
            .get("$id")
            .or_else(|| if self.draft4 { m.get("id") } else { None });
        if let Some(id) = id {
            match id.as_str() {
                Some(id) => self.record_id(id),
                None if m.contains_key("$id") => return Err(self.fail("$id must be a string")),
                // Draft 4's `id` may be a property schema named "id" only under
                // `properties`, never here; anything else is an annotation.
                None => {}
            }
        }
        for key in ["$anchor", "$dynamicAnchor"] {
            if let Some(anchor) = m.get(key) {
                let Some(anchor) = anchor.as_str() else {
                    return Err(self.fail(format!("{key} must be a string")));
                };
                self.anchors.push((anchor.to_string(), self.ptr.clone()));
            }
        }
        for (key, value) in m {
            self.enter(key, |w| w.keyword(key, value))?;
        }
        Ok(())
    }

    fn record_id(&mut self, id: &str) {
        let (base, fragment) = id.split_once('#').unwrap_or((id, ""));
        if !fragment.is_empty() && !fragment.starts_with('/') {
            self.anchors.push((fragment.to_string(), self.ptr.clone()));
        }
        if !base.is_empty() {
            self.ids.push((base.to_string(), self.ptr.clone()));
            let absolute = join_url(self.base, base);
            if absolute != base {
                self.ids.push((absolute, self.ptr.clone()));
            }
        }
    }

    fn keyword(&mut self, key: &str, v: &Value) -> Result<(), String> {
        match key {
            "$ref" => {
                let Some(reference) = v.as_str() else {
                    return Err(self.fail("$ref must be a string"));
                };
                self.refs
                    .push((format!("#{}", self.ptr), reference.to_string()));
                Ok(())
            }
            "$schema" | "$recursiveRef" | "$dynamicRef" | "pattern" | "format" => {
                if v.is_string() {
                    Ok(())
                } else {
                    Err(self.fail(format!("{key} must be a string")))
                }
            }
            "type" => self.types(v),
            "enum" => {
                if v.is_array() {
                    Ok(())
                } else {
                    Err(self.fail("enum must be an array"))
                }
            }
            "required" => self.string_array(key, v),
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
            | "maxProperties" | "minContains" | "maxContains" => {
                if count(Some(v)).is_some() {
                    Ok(())
                } else {
                    Err(self.fail(format!("{key} must be a non-negative integer")))
                }
            }
            "minimum" | "maximum" => {
                if v.is_number() {
                    Ok(())
                } else {
                    Err(self.fail(format!("{key} must be a number")))
                }
            }
            "exclusiveMinimum" | "exclusiveMaximum" => {
                if v.is_number() || v.is_boolean() {
                    Ok(())
                } else {
                    Err(self.fail(format!("{key} must be a number")))
                }
            }
            "multipleOf" => {
                if v.as_f64().is_some_and(|f| f > 0.0) {
                    Ok(())
                } else {
                    Err(self.fail("multipleOf must be a number greater than 0"))
                }
            }
            "uniqueItems" => {
                if v.is_boolean() {
                    Ok(())
                } else {
                    Err(self.fail("uniqueItems must be a boolean"))
                }
            }
            "properties" | "patternProperties" | "definitions" | "$defs" | "dependentSchemas" => {
                let Some(m) = v.as_object() else {
                    return Err(self.fail(format!("{key} must be an object of schemas")));
                };
                for (name, schema) in m {
                    self.enter(name, |w| w.schema(schema))?;
                }
                Ok(())
            }
            "dependencies" => {
                let Some(m) = v.as_object() else {
                    return Err(self.fail("dependencies must be an object"));
                };
                for (name, dep) in m {
                    self.enter(name, |w| {
                        if dep.is_array() {
                            w.string_array("a property dependency", dep)
                        } else {
                            w.schema(dep)
                        }
                    })?;
                }
                Ok(())
            }
            "dependentRequired" => {
                let Some(m) = v.as_object() else {
                    return Err(self.fail("dependentRequired must be an object"));
                };
                for (name, dep) in m {
                    self.enter(name, |w| w.string_array("a property dependency", dep))?;
                }
                Ok(())
            }
            "items" => match v {
                Value::Array(list) => self.schema_list(list),
                other => self.schema(other),
            },
            "prefixItems" => match v {
                Value::Array(list) => self.schema_list(list),
                _ => Err(self.fail("prefixItems must be an array of schemas")),
            },
            "allOf" | "anyOf" | "oneOf" => match v {
                Value::Array(list) if !list.is_empty() => self.schema_list(list),
                _ => Err(self.fail(format!("{key} must be a non-empty array of schemas"))),
            },
            "additionalItems"
            | "additionalProperties"
            | "contains"
            | "propertyNames"
            | "not"
            | "if"
            | "then"
            | "else"
            | "unevaluatedItems"
            | "unevaluatedProperties"
            | "contentSchema" => self.schema(v),
            _ => Ok(()),
        }
    }

    fn schema_list(&mut self, list: &[Value]) -> Result<(), String> {
        for (i, schema) in list.iter().enumerate() {
            self.enter(&i.to_string(), |w| w.schema(schema))?;
        }
        Ok(())
    }

    fn string_array(&self, what: &str, v: &Value) -> Result<(), String> {
        match v {
            Value::Array(list) if list.iter().all(Value::is_string) => Ok(()),
            _ => Err(self.fail(format!("{what} must be an array of strings"))),
        }
    }

    fn types(&self, v: &Value) -> Result<(), String> {
        let check = |name: &Value| match name.as_str() {
            Some(name) if JSON_TYPES.contains(&name) => Ok(()),
            Some(name) => Err(self.fail(format!(
                "unknown type \"{name}\" (the types are {})",
                JSON_TYPES.join(", ")
            ))),
            None => Err(self.fail(format!("type must be a string, not {}", json_kind(name)))),
        };
        match v {
            Value::Array(names) if names.is_empty() => {
                Err(self.fail("type must name at least one type"))
            }
            Value::Array(names) => names.iter().try_for_each(check),
            other => check(other),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Compatibility.
// ---------------------------------------------------------------------------------------

/// Which of the two schemas a subschema belongs to (what its references resolve in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Old,
    New,
}

/// The kinds of a typed schema (integer being a number that must be whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    String,
    Number,
    Integer,
    Object,
    Array,
    Boolean,
    Null,
}

impl Kind {
    fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "string" => Kind::String,
            "number" => Kind::Number,
            "integer" => Kind::Integer,
            "object" => Kind::Object,
            "array" => Kind::Array,
            "boolean" => Kind::Boolean,
            "null" => Kind::Null,
            _ => return None,
        })
    }

    fn class(self) -> Class {
        match self {
            Kind::String => Class::String,
            Kind::Number | Kind::Integer => Class::Number,
            Kind::Object => Class::Object,
            Kind::Array => Class::Array,
            Kind::Boolean => Class::Boolean,
            Kind::Null => Class::Null,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Integer => "integer",
            Kind::Object => "object",
            Kind::Array => "array",
            Kind::Boolean => "boolean",
            Kind::Null => "null",
        }
    }
}

/// Which part of a schema object a handle stands for: the whole object, or one of the
/// assertions it combines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Facet {
    Whole,
    Ref,
    Enum,
    Const,
    AllOf,
    AnyOf,
    OneOf,
    Not,
    Cond,
    /// A `type` array: a union of one typed schema per type.
    Types,
    Typed(Kind),
}

/// A subschema of one side.
#[derive(Debug, Clone, Copy)]
struct H<'a> {
    side: Side,
    doc: usize,
    v: &'a Value,
    facet: Facet,
}

impl<'a> H<'a> {
    fn root(side: Side, schema: &'a JsonSchema) -> H<'a> {
        H {
            side,
            doc: 0,
            v: &schema.root.value,
            facet: Facet::Whole,
        }
    }

    /// A subschema found inside this one (same side and document).
    fn with(self, v: &'a Value) -> H<'a> {
        H {
            v,
            facet: Facet::Whole,
            ..self
        }
    }

    fn key(self) -> (usize, Facet) {
        (std::ptr::from_ref(self.v) as usize, self.facet)
    }

    fn get(self, key: &str) -> Option<&'a Value> {
        self.v.get(key)
    }
}

/// The comparison classes of leaf schemas (Confluent's schema classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    String,
    Number,
    Object,
    Array,
    Boolean,
    Null,
    Enum,
    Const,
    Not,
    Cond,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crit {
    All,
    Any,
    One,
}

impl Crit {
    fn name(self) -> &'static str {
        match self {
            Crit::All => "allOf",
            Crit::Any => "anyOf",
            Crit::One => "oneOf",
        }
    }
}

/// Where a combined schema comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `allOf`/`anyOf`/`oneOf` as written.
    Explicit,
    /// Several assertions of one schema object.
    Synthetic,
    /// A `type` array.
    Types,
}

#[derive(Debug, Clone)]
struct Comb<'a> {
    crit: Crit,
    members: Vec<H<'a>>,
    form: Form,
}

#[derive(Debug, Clone)]
enum Shape<'a> {
    Any,
    Never,
    Ref,
    Leaf(Class),
    Combined(Comb<'a>),
}

/// What a shape is compared as, to pair subschemas of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClassKey {
    Any,
    Never,
    Leaf(Class),
    Combined(Crit, Form),
}

/// How an object (array) treats properties (items) it does not list.
#[derive(Debug, Clone, Copy)]
enum Extra<'a> {
    Open,
    Closed,
    Schema(H<'a>),
}

/// One incompatibility, its path relative to the pair of schemas it was found in.
#[derive(Debug, Clone)]
struct Diff {
    name: &'static str,
    path: String,
    detail: String,
    /// Met again through a cycle of references (the first occurrence is reported too,
    /// unless a failed subschema matching hid it).
    echo: bool,
}

impl Diff {
    fn new(name: &'static str, detail: impl Into<String>) -> Diff {
        Diff {
            name,
            path: String::new(),
            detail: detail.into(),
            echo: false,
        }
    }

    fn at(name: &'static str, path: &str, detail: impl Into<String>) -> Diff {
        Diff {
            name,
            path: path.to_string(),
            detail: detail.into(),
            echo: false,
        }
    }

    fn message(&self) -> String {
        format!("{} at #/{}: {}", self.name, self.path, self.detail)
    }
}

/// Adds `diffs`, found under `segment` (a relative path, or "" for here), to `out`.
fn nest(out: &mut Vec<Diff>, segment: &str, diffs: Vec<Diff>) {
    for mut d in diffs {
        if !segment.is_empty() {
            d.path = if d.path.is_empty() {
                segment.to_string()
            } else {
                format!("{segment}/{}", d.path)
            };
        }
        out.push(d);
    }
}

/// A pair of subschemas (old, new) by identity.
type PairKey = ((usize, Facet), (usize, Facet));

/// One compatibility check between an old and a new schema.
///
/// A pair met again while it is being compared (a cycle through references) is taken as
/// compatible, and every result is memoized, so a pass compares each pair once. A result
/// may then rest on such an assumption that turns out false; so passes repeat, each
/// taking the pairs the previous one found incompatible as incompatible when a cycle
/// meets them, until the set of incompatible pairs stops growing (it only grows, and is
/// bounded by the number of pairs): the greatest fixpoint, as Confluent computes it.
struct Comparer<'a> {
    old: &'a JsonSchema,
    new: &'a JsonSchema,
    /// Results of pairs compared this pass, paths relative to the pair.
    memo: HashMap<PairKey, Vec<Diff>>,
    /// Pairs being compared: meeting one again is a cycle.
    in_progress: HashSet<PairKey>,
    /// Pairs a previous pass found incompatible, with their differences.
    known_incompatible: HashMap<PairKey, Vec<Diff>>,
    /// Whether this pass took a pair met in a cycle as compatible.
    assumed: bool,
    depth: usize,
    max_depth: usize,
    /// Comparisons made, over all passes.
    steps: usize,
    /// Bytes of the differences memoized, over all passes.
    diff_bytes: usize,
    /// Hashes of the canonical text of subschemas, by address, to drop repeated ones.
    text_hashes: HashMap<usize, u64>,
    aborted: Option<&'static str>,
}

impl<'a> Comparer<'a> {
    fn new(old: &'a JsonSchema, new: &'a JsonSchema, max_depth: usize) -> Comparer<'a> {
        Comparer {
            old,
            new,
            memo: HashMap::new(),
            in_progress: HashSet::new(),
            known_incompatible: HashMap::new(),
            assumed: false,
            depth: 0,
            max_depth,
            steps: 0,
            diff_bytes: 0,
            text_hashes: HashMap::new(),
            aborted: None,
        }
    }

    /// Compares two whole schemas, pass after pass until the fixpoint.
    fn run(&mut self, o: H<'a>, u: H<'a>) -> Vec<Diff> {
        loop {
            self.memo.clear();
            self.in_progress.clear();
            self.assumed = false;
            self.depth = 0;
            let diffs = self.cmp(o, u);
            if self.aborted.is_some() || !self.assumed {
                return diffs;
            }
            let incompatible: HashMap<PairKey, Vec<Diff>> = self
                .memo
                .drain()
                .filter(|(_, diffs)| !diffs.is_empty())
                .collect();
            if incompatible
                .keys()
                .all(|k| self.known_incompatible.contains_key(k))
            {
                return diffs;
            }
            self.known_incompatible.extend(incompatible);
        }
    }

    fn schema(&self, side: Side) -> &'a JsonSchema {
        match side {
            Side::Old => self.old,
            Side::New => self.new,
        }
    }

    fn abort(&mut self, why: &'static str) {
        if self.aborted.is_none() {
            self.aborted = Some(why);
        }
    }

    /// The assertions a schema object combines.
    fn facets(&self, h: H<'a>, m: &Map<String, Value>) -> Vec<Facet> {
        let legacy = self.schema(h.side).doc(h.doc).is_none_or(|d| d.legacy_ref);
        let has_ref = m.get("$ref").is_some_and(Value::is_string);
        if has_ref && legacy {
            return vec![Facet::Ref];
        }
        let mut facets = Vec::new();
        match m.get("type") {
            Some(Value::String(name)) => facets.extend(Kind::from_name(name).map(Facet::Typed)),
            Some(Value::Array(_)) => match type_kinds(h.v).as_slice() {
                [] => {}
                [one] => facets.push(Facet::Typed(*one)),
                _ => facets.push(Facet::Types),
            },
            _ => {
                let present = |keys: &[&str]| keys.iter().any(|k| m.contains_key(*k));
                if present(&STRING_KEYWORDS) {
                    facets.push(Facet::Typed(Kind::String));
                }
                if present(&NUMBER_KEYWORDS) {
                    facets.push(Facet::Typed(Kind::Number));
                }
                if present(&OBJECT_KEYWORDS) {
                    facets.push(Facet::Typed(Kind::Object));
                }
                if present(&ARRAY_KEYWORDS) {
                    facets.push(Facet::Typed(Kind::Array));
                }
            }
        }
        if m.get("enum").is_some_and(Value::is_array) {
            facets.push(Facet::Enum);
        }
        if m.contains_key("const") {
            facets.push(Facet::Const);
        }
        for (key, facet) in [
            ("allOf", Facet::AllOf),
            ("anyOf", Facet::AnyOf),
            ("oneOf", Facet::OneOf),
        ] {
            if m.get(key).is_some_and(Value::is_array) {
                facets.push(facet);
            }
        }
        if m.contains_key("not") {
            facets.push(Facet::Not);
        }
        if m.contains_key("if") {
            facets.push(Facet::Cond);
        }
        if has_ref {
            facets.push(Facet::Ref);
        }
        facets
    }

    fn shape(&self, h: H<'a>) -> Shape<'a> {
        let members = |key: &str| -> Vec<H<'a>> {
            h.get(key)
                .and_then(Value::as_array)
                .map(|list| list.iter().map(|v| h.with(v)).collect())
                .unwrap_or_default()
        };
        let explicit = |crit: Crit, key: &str| {
            Shape::Combined(Comb {
                crit,
                members: members(key),
                form: Form::Explicit,
            })
        };
        match h.facet {
            Facet::Whole => match h.v {
                Value::Bool(false) => Shape::Never,
                Value::Object(m) => match self.facets(h, m).as_slice() {
                    [] => Shape::Any,
                    [one] => self.shape(H { facet: *one, ..h }),
                    many => Shape::Combined(Comb {
                        crit: Crit::All,
                        members: many.iter().map(|f| H { facet: *f, ..h }).collect(),
                        form: Form::Synthetic,
                    }),
                },
                _ => Shape::Any,
            },
            Facet::Ref => Shape::Ref,
            Facet::Enum => Shape::Leaf(Class::Enum),
            Facet::Const => Shape::Leaf(Class::Const),
            Facet::Not => Shape::Leaf(Class::Not),
            Facet::Cond => Shape::Leaf(Class::Cond),
            Facet::AllOf => explicit(Crit::All, "allOf"),
            Facet::AnyOf => explicit(Crit::Any, "anyOf"),
            Facet::OneOf => explicit(Crit::One, "oneOf"),
            Facet::Types => Shape::Combined(Comb {
                crit: Crit::Any,
                members: type_kinds(h.v)
                    .into_iter()
                    .map(|k| H {
                        facet: Facet::Typed(k),
                        ..h
                    })
                    .collect(),
                form: Form::Types,
            }),
            Facet::Typed(kind) => Shape::Leaf(kind.class()),
        }
    }

    /// Follows references until a schema that is not one; a schema object of a single
    /// assertion becomes that assertion.
    fn normalize(&self, mut h: H<'a>) -> H<'a> {
        for _ in 0..MAX_REF_HOPS {
            if h.facet == Facet::Whole
                && let Value::Object(m) = h.v
                && let [only] = self.facets(h, m).as_slice()
            {
                h = H { facet: *only, ..h };
            }
            if h.facet != Facet::Ref {
                return h;
            }
            let Some(reference) = h.get("$ref").and_then(Value::as_str) else {
                break;
            };
            match self.schema(h.side).resolve(h.doc, reference) {
                Some((doc, v)) => {
                    h = H {
                        side: h.side,
                        doc,
                        v,
                        facet: Facet::Whole,
                    }
                }
                None => break,
            }
        }
        H {
            v: &TRUE_SCHEMA,
            facet: Facet::Whole,
            ..h
        }
    }

    fn class_of(&self, h: H<'a>) -> ClassKey {
        match self.shape(self.normalize(h)) {
            Shape::Any | Shape::Ref => ClassKey::Any,
            Shape::Never => ClassKey::Never,
            Shape::Leaf(class) => ClassKey::Leaf(class),
            Shape::Combined(c) => ClassKey::Combined(c.crit, c.form),
        }
    }

    fn is_any(&self, h: H<'a>) -> bool {
        self.class_of(h) == ClassKey::Any
    }

    fn is_never(&self, h: H<'a>) -> bool {
        self.class_of(h) == ClassKey::Never
    }

    fn has_default(&self, h: H<'a>) -> bool {
        h.get("default").is_some() || self.normalize(h).get("default").is_some()
    }

    /// A short description of a schema for messages.
    fn describe(&self, h: H<'a>, depth: usize) -> String {
        let h = self.normalize(h);
        match self.shape(h) {
            Shape::Any | Shape::Ref => "any value".into(),
            Shape::Never => "no value (false)".into(),
            Shape::Leaf(class) => match (class, h.facet) {
                (_, Facet::Typed(kind)) => kind.name().into(),
                (Class::Enum, _) => "enum".into(),
                (Class::Const, _) => "const".into(),
                (Class::Not, _) => "not".into(),
                (Class::Cond, _) => "if/then/else".into(),
                _ => "typed schema".into(),
            },
            Shape::Combined(c) if depth < 3 && c.form != Form::Explicit => {
                let parts: Vec<String> = c
                    .members
                    .iter()
                    .map(|m| self.describe(*m, depth + 1))
                    .collect();
                parts.join(if c.form == Form::Types { "|" } else { " with " })
            }
            Shape::Combined(c) => c.crit.name().into(),
        }
    }

    fn extra(&self, h: H<'a>, v: Option<&'a Value>) -> Extra<'a> {
        match v {
            None => Extra::Open,
            Some(v) => {
                let s = h.with(v);
                match self.class_of(s) {
                    ClassKey::Never => Extra::Closed,
                    ClassKey::Any => Extra::Open,
                    _ => Extra::Schema(s),
                }
            }
        }
    }

    /// Compares an old subschema with a new one: the incompatibilities, paths relative
    /// to the pair.
    fn cmp(&mut self, o: H<'a>, u: H<'a>) -> Vec<Diff> {
        if self.aborted.is_some() {
            return Vec::new();
        }
        self.steps += 1;
        if self.steps > MAX_COMPARE_STEPS {
            self.abort("the comparison needs more than 200000 steps");
            return Vec::new();
        }
        let (o, u) = (self.normalize(o), self.normalize(u));
        let key = (o.key(), u.key());
        if let Some(known) = self.memo.get(&key) {
            return known.clone();
        }
        if self.in_progress.contains(&key) {
            // A cycle through references: compatible unless a previous pass found not.
            if let Some(known) = self.known_incompatible.get(&key) {
                let echo = known.first().map(|d| Diff {
                    echo: true,
                    ..d.clone()
                });
                return echo.into_iter().collect();
            }
            self.assumed = true;
            return Vec::new();
        }
        if self.depth >= self.max_depth {
            self.abort("the schemas nest deeper than the comparison follows");
            return Vec::new();
        }
        self.depth += 1;
        self.in_progress.insert(key);
        let mut diffs = self.cmp_shapes(o, u);
        self.in_progress.remove(&key);
        self.depth -= 1;
        diffs.truncate(MAX_DIFFS);
        self.diff_bytes += diffs
            .iter()
            .map(|d| d.path.len() + d.detail.len() + 64)
            .sum::<usize>();
        if self.diff_bytes > MAX_DIFF_BYTES {
            self.abort("the differences found exceed the memory the comparison may use");
            return Vec::new();
        }
        self.memo.insert(key, diffs.clone());
        diffs
    }

    /// [`Comparer::cmp`] of optional subschemas: an absent one is `true`.
    fn cmp_opt(&mut self, what: &str, o: Option<H<'a>>, u: Option<H<'a>>) -> Vec<Diff> {
        match (o, u) {
            (Some(o), Some(u)) => self.cmp(o, u),
            (None, Some(u)) if !self.is_any(u) => vec![Diff::new(
                "SCHEMA_ADDED",
                format!("the new schema constrains {what}, which the old one left open"),
            )],
            _ => Vec::new(),
        }
    }

    fn cmp_shapes(&mut self, o: H<'a>, u: H<'a>) -> Vec<Diff> {
        let (so, su) = (self.shape(o), self.shape(u));
        if matches!(su, Shape::Any | Shape::Ref) || matches!(so, Shape::Never) {
            return Vec::new();
        }
        match (&so, &su) {
            (Shape::Combined(_), Shape::Combined(_)) => {}
            (_, Shape::Combined(cu)) => {
                if let [only] = cu.members.as_slice() {
                    if self.cmp(o, *only).is_empty() {
                        return Vec::new();
                    }
                } else if cu.crit != Crit::All {
                    // SUM_TYPE_EXTENDED: the old schema is one of the new union's members.
                    for m in cu.members.clone() {
                        if self.cmp(o, m).is_empty() {
                            return Vec::new();
                        }
                    }
                }
            }
            (Shape::Combined(co), _) => {
                if let [only] = co.members.as_slice() {
                    if self.cmp(*only, u).is_empty() {
                        return Vec::new();
                    }
                } else if co.crit == Crit::All {
                    // PRODUCT_TYPE_NARROWED: the new schema is one of the old conjuncts.
                    for m in co.members.clone() {
                        if self.cmp(m, u).is_empty() {
                            return Vec::new();
                        }
                    }
                }
            }
            _ => {}
        }
        match (&so, &su) {
            (Shape::Combined(co), Shape::Combined(cu)) => self.cmp_combined(co, cu),
            (Shape::Leaf(a), Shape::Leaf(b)) if a == b => self.cmp_leaf(*a, o, u),
            _ => self.mismatch(o, u, &so, &su),
        }
    }

    /// The two schemas are of different kinds.
    fn mismatch(&mut self, o: H<'a>, u: H<'a>, so: &Shape<'a>, su: &Shape<'a>) -> Vec<Diff> {
        let change = format!("{} -> {}", self.describe(o, 0), self.describe(u, 0));
        match (so, su) {
            (Shape::Leaf(class), Shape::Combined(cu)) if cu.form == Form::Synthetic => {
                // The new schema adds assertions next to one of the old schema's kind.
                let mut out = Vec::new();
                let mut paired = false;
                for m in cu.members.clone() {
                    if !paired && self.class_of(m) == ClassKey::Leaf(*class) {
                        paired = true;
                        let diffs = self.cmp(o, m);
                        out.extend(diffs);
                    } else {
                        out.push(Diff::new(
                            "PRODUCT_TYPE_EXTENDED",
                            format!("the new schema adds {}", self.describe(m, 0)),
                        ));
                    }
                }
                if !paired {
                    out.insert(0, Diff::new("TYPE_CHANGED", change));
                }
                out
            }
            (Shape::Combined(co), _) if co.crit != Crit::All => {
                vec![Diff::new("SUM_TYPE_NARROWED", change)]
            }
            _ => vec![Diff::new("TYPE_CHANGED", change)],
        }
    }

    fn cmp_leaf(&mut self, class: Class, o: H<'a>, u: H<'a>) -> Vec<Diff> {
        match class {
            Class::String => cmp_string(o, u),
            Class::Number => cmp_number(o, u),
            Class::Object => self.cmp_object(o, u),
            Class::Array => self.cmp_array(o, u),
            Class::Enum => cmp_enum(o, u),
            Class::Const => {
                let (a, b) = (o.get("const"), u.get("const"));
                if a.map(|v| canonical_json(v, true)) == b.map(|v| canonical_json(v, true)) {
                    Vec::new()
                } else {
                    vec![Diff::at(
                        "ENUM_ARRAY_CHANGED",
                        "const",
                        format!("const {} -> {}", brief(a), brief(b)),
                    )]
                }
            }
            Class::Not => {
                let (Some(a), Some(b)) = (o.get("not"), u.get("not")) else {
                    return Vec::new();
                };
                // The new schema must exclude no more than the old one: reversed roles.
                if self.cmp(u.with(b), o.with(a)).is_empty() {
                    Vec::new()
                } else {
                    vec![Diff::at(
                        "NOT_TYPE_EXTENDED",
                        "not",
                        "the new schema excludes values the old one accepts",
                    )]
                }
            }
            Class::Boolean | Class::Null | Class::Cond => Vec::new(),
        }
    }

    /// The subschemas without repeats (by canonical text, for written subschemas).
    fn dedup(&mut self, members: &[H<'a>]) -> Vec<H<'a>> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let key = match m.facet {
                Facet::Whole => {
                    let ptr = std::ptr::from_ref(m.v) as usize;
                    let hash = *self.text_hashes.entry(ptr).or_insert_with(|| {
                        let mut hasher = std::hash::DefaultHasher::new();
                        canonical_json(m.v, true).hash(&mut hasher);
                        hasher.finish()
                    });
                    (Facet::Whole, hash)
                }
                facet => (facet, 0),
            };
            if seen.insert(key) {
                out.push(*m);
            }
        }
        out
    }

    fn cmp_combined(&mut self, co: &Comb<'a>, cu: &Comb<'a>) -> Vec<Diff> {
        let (om, um) = (self.dedup(&co.members), self.dedup(&cu.members));
        let (no, nu) = (om.len(), um.len());
        if no > MAX_SUBSCHEMAS || nu > MAX_SUBSCHEMAS {
            self.abort("a combined schema has more than 1000 subschemas");
            return Vec::new();
        }
        if co.crit != cu.crit {
            let extended = cu.crit == Crit::Any
                || (no == 1 && nu == 1)
                || (no == 1 && cu.crit == Crit::One)
                || (nu == 1 && co.crit == Crit::All);
            if !extended {
                return vec![Diff::new(
                    "COMBINED_TYPE_CHANGED",
                    format!("{} -> {}", co.crit.name(), cu.crit.name()),
                )];
            }
        }
        let mut out = Vec::new();
        if no < nu && cu.crit == Crit::All {
            out.push(Diff::new(
                "PRODUCT_TYPE_EXTENDED",
                format!("allOf of {no} subschemas -> {nu}"),
            ));
        }
        if no > nu && co.crit != Crit::All {
            out.push(Diff::new(
                "SUM_TYPE_NARROWED",
                format!("{} of {no} subschemas -> {nu}", co.crit.name()),
            ));
        }
        // Which pairs are compatible is found as the matching asks, so that unions kept in
        // order (or extended) cost a comparison per subschema, not one per pair.
        let mut known = vec![None; no * nu];
        let tolerated = no.saturating_sub(nu);
        let unmatched = max_matching(no, nu, tolerated, &mut |i, j| {
            let slot = i * nu + j;
            if let Some(Some(compatible)) = known.get(slot) {
                return *compatible;
            }
            let compatible = match (om.get(i), um.get(j)) {
                (Some(a), Some(b)) => self.cmp(*a, *b).is_empty(),
                _ => false,
            };
            if let Some(entry) = known.get_mut(slot) {
                *entry = Some(compatible);
            }
            compatible
        });
        if unmatched.len() > tolerated {
            let explanation = self.explain(co, &om, &um, &unmatched);
            if co.form != Form::Explicit && cu.form != Form::Explicit && !explanation.is_empty() {
                out.extend(explanation);
            } else {
                let unmatched: Vec<String> = unmatched.iter().map(usize::to_string).collect();
                out.push(Diff::new(
                    "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                    format!(
                        "{} subschema(s) {} of the old schema match no subschema of the new one",
                        co.crit.name(),
                        unmatched.join(", ")
                    ),
                ));
                out.extend(explanation);
            }
        }
        out
    }

    /// Why old subschemas found no compatible partner: their differences with a new
    /// subschema of the same kind, and (between assertions of one schema object) the new
    /// assertions of a kind the old schema did not have.
    fn explain(
        &mut self,
        co: &Comb<'a>,
        om: &[H<'a>],
        um: &[H<'a>],
        unmatched: &[usize],
    ) -> Vec<Diff> {
        let mut out = Vec::new();
        let old_classes: Vec<ClassKey> = om.iter().map(|m| self.class_of(*m)).collect();
        for &i in unmatched {
            let Some(a) = om.get(i) else {
                continue;
            };
            let class = self.class_of(*a);
            let partner = um.iter().copied().find(|b| self.class_of(*b) == class);
            if let Some(b) = partner {
                let diffs = self.cmp(*a, b);
                let segment = match co.form {
                    Form::Explicit => format!("{}/{i}", co.crit.name()),
                    _ => String::new(),
                };
                nest(&mut out, &segment, diffs);
            }
        }
        if co.form == Form::Synthetic {
            for b in um {
                if !old_classes.contains(&self.class_of(*b)) {
                    out.push(Diff::new(
                        "PRODUCT_TYPE_EXTENDED",
                        format!("the new schema adds {}", self.describe(*b, 0)),
                    ));
                }
            }
        }
        out
    }

    fn cmp_object(&mut self, o: H<'a>, u: H<'a>) -> Vec<Diff> {
        let mut out = Vec::new();
        let (op, up) = (properties(o), properties(u));
        let (oreq, ureq) = (required(o), required(u));
        // As Confluent, only properties both schemas list: a newly listed one is judged as
        // an added property below, and a required name neither lists is not compared.
        for key in ureq.difference(&oreq) {
            let (Some(_), Some(new)) = (op.get(key), up.get(key)) else {
                continue;
            };
            if self.has_default(u.with(new)) {
                continue; // REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED
            }
            out.push(Diff::at(
                "REQUIRED_ATTRIBUTE_ADDED",
                &format!("required/{}", escape_segment(key)),
                format!("property '{key}' is required by the new schema, not by the old one"),
            ));
        }
        let keys: BTreeSet<&str> = op.keys().chain(up.keys()).copied().collect();
        for key in keys {
            let segment = format!("properties/{}", escape_segment(key));
            match (op.get(key), up.get(key)) {
                (Some(a), Some(b)) => {
                    let diffs = self.cmp(o.with(a), u.with(b));
                    nest(&mut out, &segment, diffs);
                }
                (Some(a), None) => self.property_removed(&mut out, &segment, key, o.with(a), u),
                (None, Some(b)) => {
                    let is_required = ureq.contains(key);
                    self.property_added(&mut out, &segment, key, o, u.with(b), is_required);
                }
                (None, None) => {}
            }
        }
        self.cmp_dependencies(&mut out, o, u);
        let (ao, au) = (
            self.extra(o, o.get("additionalProperties")),
            self.extra(u, u.get("additionalProperties")),
        );
        self.cmp_extra(
            &mut out,
            "additionalProperties",
            [
                "ADDITIONAL_PROPERTIES_REMOVED",
                "ADDITIONAL_PROPERTIES_NARROWED",
            ],
            ao,
            au,
        );
        let (vo, vu) = (
            self.extra(o, o.get("unevaluatedProperties")),
            self.extra(u, u.get("unevaluatedProperties")),
        );
        self.cmp_extra(
            &mut out,
            "unevaluatedProperties",
            [
                "UNEVALUATED_PROPERTIES_REMOVED",
                "UNEVALUATED_PROPERTIES_NARROWED",
            ],
            vo,
            vu,
        );
        upper_bound(
            &mut out,
            "maxProperties",
            o,
            u,
            ["MAX_PROPERTIES_ADDED", "MAX_PROPERTIES_DECREASED"],
        );
        lower_bound(
            &mut out,
            "minProperties",
            o,
            u,
            Some(0.0),
            ["MIN_PROPERTIES_ADDED", "MIN_PROPERTIES_INCREASED"],
        );
        out
    }

    /// How an object treats a property it does not list. As Confluent, an object with
    /// `patternProperties` is not an open content model: a name none of its patterns
    /// matches falls to `additionalProperties`, then `unevaluatedProperties`, and is taken
    /// as closed when neither gives a schema.
    fn cover(&self, h: H<'a>, name: &str) -> Extra<'a> {
        let patterns = h.get("patternProperties").and_then(Value::as_object);
        for (pattern, schema) in patterns.into_iter().flatten() {
            if pattern_matches(pattern, name) {
                return self.extra(h, Some(schema));
            }
        }
        let fallback = match self.extra(h, h.get("additionalProperties")) {
            Extra::Open => self.extra(h, h.get("unevaluatedProperties")),
            other => other,
        };
        match fallback {
            Extra::Open if patterns.is_some_and(|p| !p.is_empty()) => Extra::Closed,
            other => other,
        }
    }

    fn property_removed(
        &mut self,
        out: &mut Vec<Diff>,
        segment: &str,
        name: &str,
        old_property: H<'a>,
        u: H<'a>,
    ) {
        match self.cover(u, name) {
            Extra::Open => {} // PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL
            Extra::Schema(s) => {
                let diffs = self.cmp(old_property, s);
                if !diffs.is_empty() {
                    nest(out, segment, diffs);
                    out.push(Diff::at(
                        "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                        segment,
                        format!(
                            "property '{name}' was removed and the schema the new one applies \
                             to unlisted properties rejects its old values"
                        ),
                    ));
                }
            }
            Extra::Closed => {
                if !self.is_never(old_property) {
                    out.push(Diff::at(
                        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                        segment,
                        format!(
                            "property '{name}' was removed and the new schema forbids \
                             unlisted properties"
                        ),
                    ));
                }
            }
        }
    }

    fn property_added(
        &mut self,
        out: &mut Vec<Diff>,
        segment: &str,
        name: &str,
        o: H<'a>,
        new_property: H<'a>,
        is_required: bool,
    ) {
        let has_default = is_required && self.has_default(new_property);
        let required_unfilled = is_required && !has_default;
        let unopen = |out: &mut Vec<Diff>| {
            if required_unfilled {
                out.push(Diff::at(
                    "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
                    segment,
                    format!("required property '{name}' was added without a default"),
                ));
            }
        };
        match self.cover(o, name) {
            Extra::Open => {
                let diff = if self.is_any(new_property) {
                    // PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL (even if
                    // required, as Confluent).
                    None
                } else if has_default {
                    Some("REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL")
                } else if is_required {
                    Some("REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL")
                } else {
                    Some("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL")
                };
                if let Some(diff) = diff {
                    out.push(Diff::at(
                        diff,
                        segment,
                        format!(
                            "property '{name}' was added but the old schema allowed any \
                             property, so old data may hold any value under that name"
                        ),
                    ));
                }
            }
            Extra::Schema(s) => {
                let diffs = self.cmp(s, new_property);
                if !diffs.is_empty() {
                    nest(out, segment, diffs);
                    out.push(Diff::at(
                        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                        segment,
                        format!(
                            "property '{name}' was added and rejects values the old schema \
                             accepted for unlisted properties"
                        ),
                    ));
                }
                unopen(out);
            }
            // OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL is compatible.
            Extra::Closed => unopen(out),
        }
    }

    fn cmp_extra(
        &mut self,
        out: &mut Vec<Diff>,
        keyword: &str,
        [removed, narrowed]: [&'static str; 2],
        o: Extra<'a>,
        u: Extra<'a>,
    ) {
        match (o, u) {
            (Extra::Closed, _) | (_, Extra::Open) => {}
            (_, Extra::Closed) => out.push(Diff::at(
                removed,
                keyword,
                format!("the new schema forbids what {keyword} allowed in the old one"),
            )),
            (Extra::Open, Extra::Schema(_)) => out.push(Diff::at(
                narrowed,
                keyword,
                format!("the new schema constrains {keyword}, which the old one left open"),
            )),
            (Extra::Schema(a), Extra::Schema(b)) => {
                let diffs = self.cmp(a, b);
                nest(out, keyword, diffs);
            }
        }
    }

    fn cmp_dependencies(&mut self, out: &mut Vec<Diff>, o: H<'a>, u: H<'a>) {
        let (oa, os) = dependencies(o);
        let (ua, us) = dependencies(u);
        for (key, new) in &ua {
            let segment = format!("dependencies/{}", escape_segment(key));
            match oa.get(key) {
                None => out.push(Diff::at(
                    "DEPENDENCY_ARRAY_ADDED",
                    &segment,
                    format!("the new schema makes '{key}' require other properties"),
                )),
                Some(old) if old == new || old.is_superset(new) => {}
                Some(old) if new.is_superset(old) => out.push(Diff::at(
                    "DEPENDENCY_ARRAY_EXTENDED",
                    &segment,
                    format!("the new schema makes '{key}' require more properties"),
                )),
                Some(_) => out.push(Diff::at(
                    "DEPENDENCY_ARRAY_CHANGED",
                    &segment,
                    format!("the properties '{key}' requires changed"),
                )),
            }
        }
        for (key, new) in us {
            let segment = format!("dependencies/{}", escape_segment(key));
            let new = u.with(new);
            match os.get(key) {
                None if self.is_any(new) => {}
                None => out.push(Diff::at(
                    "DEPENDENCY_SCHEMA_ADDED",
                    &segment,
                    format!("the new schema adds a schema dependency on '{key}'"),
                )),
                Some(old) => {
                    let diffs = self.cmp(o.with(old), new);
                    nest(out, &segment, diffs);
                }
            }
        }
    }

    fn cmp_array(&mut self, o: H<'a>, u: H<'a>) -> Vec<Diff> {
        let mut out = Vec::new();
        let (oi, ui) = (items(o.v), items(u.v));
        let diffs = self.cmp_opt(
            "array items",
            oi.all.map(|v| o.with(v)),
            ui.all.map(|v| u.with(v)),
        );
        nest(&mut out, "items", diffs);
        let common = oi.tuple.len().min(ui.tuple.len());
        for (i, (a, b)) in oi.tuple.iter().zip(ui.tuple).enumerate() {
            let diffs = self.cmp(o.with(a), u.with(b));
            nest(&mut out, &format!("{}/{i}", ui.tuple_keyword), diffs);
        }
        let (cover_o, cover_u) = (self.cover_items(o, &oi), self.cover_items(u, &ui));
        for (i, a) in oi.tuple.iter().enumerate().skip(common) {
            let segment = format!("{}/{i}", oi.tuple_keyword);
            let a = o.with(a);
            match cover_u {
                Extra::Open => {} // ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL
                Extra::Schema(s) => {
                    let diffs = self.cmp(a, s);
                    if !diffs.is_empty() {
                        nest(&mut out, &segment, diffs);
                        out.push(Diff::at(
                            "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            &segment,
                            format!(
                                "tuple item {i} was removed and the new schema's additional \
                                 items schema rejects its old values"
                            ),
                        ));
                    }
                }
                Extra::Closed => {
                    if !self.is_never(a) {
                        out.push(Diff::at(
                            "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                            &segment,
                            format!(
                                "tuple item {i} was removed and the new schema forbids \
                                 additional items"
                            ),
                        ));
                    }
                }
            }
        }
        for (i, b) in ui.tuple.iter().enumerate().skip(common) {
            let segment = format!("{}/{i}", ui.tuple_keyword);
            let b = u.with(b);
            match cover_o {
                Extra::Open => {
                    if !self.is_any(b) {
                        out.push(Diff::at(
                            "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
                            &segment,
                            format!(
                                "tuple item {i} was added but the old schema allowed any \
                                 additional item"
                            ),
                        ));
                    }
                }
                Extra::Schema(s) => {
                    let diffs = self.cmp(s, b);
                    if !diffs.is_empty() {
                        nest(&mut out, &segment, diffs);
                        out.push(Diff::at(
                            "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            &segment,
                            format!(
                                "tuple item {i} was added and rejects values the old schema \
                                 accepted as additional items"
                            ),
                        ));
                    }
                }
                Extra::Closed => {} // ITEM_ADDED_TO_CLOSED_CONTENT_MODEL
            }
        }
        let (eo, eu) = (self.extra(o, oi.extra), self.extra(u, ui.extra));
        self.cmp_extra(
            &mut out,
            ui.extra_keyword,
            ["ADDITIONAL_ITEMS_REMOVED", "ADDITIONAL_ITEMS_NARROWED"],
            eo,
            eu,
        );
        let (vo, vu) = (
            self.extra(o, o.get("unevaluatedItems")),
            self.extra(u, u.get("unevaluatedItems")),
        );
        self.cmp_extra(
            &mut out,
            "unevaluatedItems",
            ["UNEVALUATED_ITEMS_REMOVED", "UNEVALUATED_ITEMS_NARROWED"],
            vo,
            vu,
        );
        upper_bound(
            &mut out,
            "maxItems",
            o,
            u,
            ["MAX_ITEMS_ADDED", "MAX_ITEMS_DECREASED"],
        );
        lower_bound(
            &mut out,
            "minItems",
            o,
            u,
            Some(0.0),
            ["MIN_ITEMS_ADDED", "MIN_ITEMS_INCREASED"],
        );
        let unique = |h: H<'a>| h.get("uniqueItems").and_then(Value::as_bool) == Some(true);
        if unique(u) && !unique(o) {
            out.push(Diff::at(
                "UNIQUE_ITEMS_ADDED",
                "uniqueItems",
                "the new schema requires unique items",
            ));
        }
        upper_bound(
            &mut out,
            "maxContains",
            o,
            u,
            ["MAX_CONTAINS_ADDED", "MAX_CONTAINS_DECREASED"],
        );
        lower_bound(
            &mut out,
            "minContains",
            o,
            u,
            Some(1.0),
            ["MIN_CONTAINS_ADDED", "MIN_CONTAINS_INCREASED"],
        );
        out
    }

    /// How an array treats items past its tuple.
    fn cover_items(&self, h: H<'a>, parts: &Items<'a>) -> Extra<'a> {
        match self.extra(h, parts.extra) {
            Extra::Open => self.extra(h, h.get("unevaluatedItems")),
            other => other,
        }
    }
}

/// The item schemas of an array schema: one for all items, or a tuple and what follows.
struct Items<'a> {
    all: Option<&'a Value>,
    tuple: &'a [Value],
    tuple_keyword: &'static str,
    extra: Option<&'a Value>,
    extra_keyword: &'static str,
}

fn items(v: &Value) -> Items<'_> {
    if let Some(prefix) = v.get("prefixItems").and_then(Value::as_array) {
        return Items {
            all: None,
            tuple: prefix,
            tuple_keyword: "prefixItems",
            extra: v.get("items"),
            extra_keyword: "items",
        };
    }
    match v.get("items") {
        Some(Value::Array(tuple)) => Items {
            all: None,
            tuple,
            tuple_keyword: "items",
            extra: v.get("additionalItems"),
            extra_keyword: "additionalItems",
        },
        // `additionalItems` means nothing without tuple `items`, but Confluent compares it
        // all the same when `items` is absent.
        None => Items {
            all: None,
            tuple: &[],
            tuple_keyword: "items",
            extra: v.get("additionalItems"),
            extra_keyword: "additionalItems",
        },
        all => Items {
            all,
            tuple: &[],
            tuple_keyword: "items",
            extra: None,
            extra_keyword: "additionalItems",
        },
    }
}

fn properties<'a>(h: H<'a>) -> BTreeMap<&'a str, &'a Value> {
    h.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

fn required<'a>(h: H<'a>) -> BTreeSet<&'a str> {
    h.get("required")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

type PropertyDeps<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;
type SchemaDeps<'a> = BTreeMap<&'a str, &'a Value>;

/// Property dependencies (`dependencies` arrays, `dependentRequired`) and schema
/// dependencies (`dependencies` schemas, `dependentSchemas`).
fn dependencies<'a>(h: H<'a>) -> (PropertyDeps<'a>, SchemaDeps<'a>) {
    let mut arrays = BTreeMap::new();
    let mut schemas = BTreeMap::new();
    let entries = ["dependencies", "dependentRequired", "dependentSchemas"]
        .into_iter()
        .filter_map(|k| h.get(k).and_then(Value::as_object))
        .flat_map(|m| m.iter());
    for (key, dep) in entries {
        match dep {
            Value::Array(names) => {
                arrays
                    .entry(key.as_str())
                    .or_insert_with(BTreeSet::new)
                    .extend(names.iter().filter_map(Value::as_str));
            }
            schema => {
                schemas.insert(key.as_str(), schema);
            }
        }
    }
    (arrays, schemas)
}

fn type_kinds(v: &Value) -> Vec<Kind> {
    let mut kinds = Vec::new();
    let names: Vec<&str> = match v.get("type") {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for kind in names.into_iter().filter_map(Kind::from_name) {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

fn cmp_string(o: H<'_>, u: H<'_>) -> Vec<Diff> {
    let mut out = Vec::new();
    upper_bound(
        &mut out,
        "maxLength",
        o,
        u,
        ["MAX_LENGTH_ADDED", "MAX_LENGTH_DECREASED"],
    );
    lower_bound(
        &mut out,
        "minLength",
        o,
        u,
        Some(0.0),
        ["MIN_LENGTH_ADDED", "MIN_LENGTH_INCREASED"],
    );
    match (
        o.get("pattern").and_then(Value::as_str),
        u.get("pattern").and_then(Value::as_str),
    ) {
        (None, Some(p)) => out.push(Diff::at(
            "PATTERN_ADDED",
            "pattern",
            format!("pattern \"{p}\" added"),
        )),
        (Some(a), Some(b)) if a != b => out.push(Diff::at(
            "PATTERN_CHANGED",
            "pattern",
            format!("pattern \"{a}\" -> \"{b}\""),
        )),
        _ => {}
    }
    out
}

fn cmp_number(o: H<'_>, u: H<'_>) -> Vec<Diff> {
    let mut out = Vec::new();
    let (max_o, xmax_o) = bound_pair(o, "maximum", "exclusiveMaximum");
    let (max_u, xmax_u) = bound_pair(u, "maximum", "exclusiveMaximum");
    let (min_o, xmin_o) = bound_pair(o, "minimum", "exclusiveMinimum");
    let (min_u, xmin_u) = bound_pair(u, "minimum", "exclusiveMinimum");
    compare_bound(
        &mut out,
        "maximum",
        (max_o, max_u),
        true,
        ["MAXIMUM_ADDED", "MAXIMUM_DECREASED"],
    );
    compare_bound(
        &mut out,
        "exclusiveMaximum",
        (xmax_o, xmax_u),
        true,
        ["EXCLUSIVE_MAXIMUM_ADDED", "EXCLUSIVE_MAXIMUM_DECREASED"],
    );
    compare_bound(
        &mut out,
        "minimum",
        (min_o, min_u),
        false,
        ["MINIMUM_ADDED", "MINIMUM_INCREASED"],
    );
    compare_bound(
        &mut out,
        "exclusiveMinimum",
        (xmin_o, xmin_u),
        false,
        ["EXCLUSIVE_MINIMUM_ADDED", "EXCLUSIVE_MINIMUM_INCREASED"],
    );
    let multiple = |h: H<'_>| h.get("multipleOf").and_then(Value::as_f64);
    match (multiple(o), multiple(u)) {
        (None, Some(b)) => out.push(Diff::at(
            "MULTIPLE_OF_ADDED",
            "multipleOf",
            format!("multipleOf {b} added"),
        )),
        (Some(a), Some(b)) if a != b => {
            if is_whole(b / a) {
                out.push(Diff::at(
                    "MULTIPLE_OF_EXPANDED",
                    "multipleOf",
                    format!("multipleOf {a} -> {b}"),
                ));
            } else if !is_whole(a / b) {
                out.push(Diff::at(
                    "MULTIPLE_OF_CHANGED",
                    "multipleOf",
                    format!("multipleOf {a} -> {b}"),
                ));
            }
        }
        _ => {}
    }
    if u.facet == Facet::Typed(Kind::Integer) && o.facet != Facet::Typed(Kind::Integer) {
        out.push(Diff::new("TYPE_NARROWED", "number -> integer"));
    }
    out
}

/// An inclusive and an exclusive bound; draft 4's `exclusiveMaximum: true` makes
/// `maximum` exclusive.
fn bound_pair(h: H<'_>, inclusive: &str, exclusive: &str) -> (Option<f64>, Option<f64>) {
    let value = h.get(inclusive).and_then(Value::as_f64);
    match h.get(exclusive) {
        Some(Value::Bool(true)) => (None, value),
        Some(limit) => (value, limit.as_f64()),
        None => (value, None),
    }
}

fn is_whole(x: f64) -> bool {
    x.is_finite() && (x - x.round()).abs() <= 1e-9 * x.abs().max(1.0)
}

/// A bound where smaller is narrower (`upper`) or larger is narrower.
fn compare_bound(
    out: &mut Vec<Diff>,
    keyword: &str,
    (o, u): (Option<f64>, Option<f64>),
    upper: bool,
    [added, narrowed]: [&'static str; 2],
) {
    match (o, u) {
        (None, Some(b)) => out.push(Diff::at(added, keyword, format!("{keyword} {b} added"))),
        (Some(a), Some(b)) if (upper && b < a) || (!upper && b > a) => {
            out.push(Diff::at(narrowed, keyword, format!("{keyword} {a} -> {b}")))
        }
        _ => {}
    }
}

fn upper_bound(out: &mut Vec<Diff>, keyword: &str, o: H<'_>, u: H<'_>, names: [&'static str; 2]) {
    let value = |h: H<'_>| count(h.get(keyword));
    compare_bound(out, keyword, (value(o), value(u)), true, names);
}

/// A lower bound whose absence means `default`.
fn lower_bound(
    out: &mut Vec<Diff>,
    keyword: &str,
    o: H<'_>,
    u: H<'_>,
    default: Option<f64>,
    [added, increased]: [&'static str; 2],
) {
    let (a, b) = (count(o.get(keyword)), count(u.get(keyword)));
    let (ea, eb) = (a.or(default), b.or(default));
    if let Some(eb) = eb
        && ea.is_none_or(|ea| eb > ea)
    {
        let name = if a.is_none() { added } else { increased };
        let detail = match a {
            Some(a) => format!("{keyword} {a} -> {eb}"),
            None => format!("{keyword} {eb} added"),
        };
        out.push(Diff::at(name, keyword, detail));
    }
}

fn cmp_enum(o: H<'_>, u: H<'_>) -> Vec<Diff> {
    fn values<'v>(h: H<'v>) -> Vec<(String, &'v Value)> {
        h.get("enum")
            .and_then(Value::as_array)
            .map(|list| list.iter().map(|v| (canonical_json(v, true), v)).collect())
            .unwrap_or_default()
    }
    let (old, new) = (values(o), values(u));
    let new_keys: HashSet<&str> = new.iter().map(|(k, _)| k.as_str()).collect();
    let old_keys: HashSet<&str> = old.iter().map(|(k, _)| k.as_str()).collect();
    let missing: Vec<&str> = old
        .iter()
        .filter(|(k, _)| !new_keys.contains(k.as_str()))
        .map(|(k, _)| k.as_str())
        .collect();
    if missing.is_empty() {
        return Vec::new(); // ENUM_ARRAY_EXTENDED or unchanged
    }
    let added = new.iter().any(|(k, _)| !old_keys.contains(k.as_str()));
    let name = if added {
        "ENUM_ARRAY_CHANGED"
    } else {
        "ENUM_ARRAY_NARROWED"
    };
    vec![Diff::at(
        name,
        "enum",
        format!(
            "the new schema's enum lacks {}",
            abbreviate(&missing, 5).join(", ")
        ),
    )]
}

fn abbreviate<'s>(items: &[&'s str], most: usize) -> Vec<&'s str> {
    let mut shown: Vec<&str> = items.iter().take(most).copied().collect();
    if items.len() > most {
        shown.push("...");
    }
    shown
}

/// A value for a message, cut short.
fn brief(v: Option<&Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(v) => {
            let text = canonical_json(v, false);
            if text.chars().count() > 60 {
                let cut: String = text.chars().take(57).collect();
                format!("{cut}...")
            } else {
                text
            }
        }
    }
}

/// Pairs `left` vertices with `right` ones along edges `edge(l, r)` tells, by augmenting
/// paths (each left vertex first tries the right one of its own index), and returns the
/// left vertices left unpaired. A left vertex that finds no augmenting path in its turn
/// stays unpaired in a maximum matching, so the search stops at the `tolerated + 1`-th:
/// the caller only needs to know that the matching falls short.
fn max_matching(
    left: usize,
    right: usize,
    tolerated: usize,
    edge: &mut dyn FnMut(usize, usize) -> bool,
) -> Vec<usize> {
    fn augment(
        l: usize,
        edge: &mut dyn FnMut(usize, usize) -> bool,
        seen: &mut [bool],
        partner_of_right: &mut [Option<usize>],
    ) -> bool {
        let right = seen.len();
        for r in (l.min(right)..right).chain(0..l.min(right)) {
            if seen.get(r).copied().unwrap_or(true) || !edge(l, r) {
                continue;
            }
            if let Some(visited) = seen.get_mut(r) {
                *visited = true;
            }
            let free = match partner_of_right.get(r).copied().flatten() {
                None => true,
                Some(other) => augment(other, edge, seen, partner_of_right),
            };
            if free {
                if let Some(slot) = partner_of_right.get_mut(r) {
                    *slot = Some(l);
                }
                return true;
            }
        }
        false
    }
    let mut partner_of_right = vec![None; right];
    let mut unpaired = Vec::new();
    for l in 0..left {
        let mut seen = vec![false; right];
        if !augment(l, edge, &mut seen, &mut partner_of_right) {
            unpaired.push(l);
            if unpaired.len() > tolerated {
                break;
            }
        }
    }
    unpaired
}

/// Whether a `patternProperties` pattern matches a property name; one the `regex` crate
/// cannot compile is taken to match.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    match regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) => re.is_match(name),
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------------------
// JSON helpers.
// ---------------------------------------------------------------------------------------

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A non-negative whole number.
fn count(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    if let Some(n) = v.as_u64() {
        // Counts beyond 2^53 lose precision; they are limits nobody reaches.
        return Some(n as f64);
    }
    v.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0)
}

/// `value` written compactly with sorted keys; with `numbers`, numbers of the same value
/// are written alike (`1` and `1.0`), for comparing values.
fn canonical_json(value: &Value, numbers: bool) -> String {
    let mut out = String::new();
    write_json(value, numbers, &mut out);
    out
}

fn write_json(value: &Value, numbers: bool, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let whole = n
                .as_f64()
                .filter(|f| numbers && n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15);
            match whole {
                Some(f) => {
                    let _ = write!(out, "{}", f as i64);
                }
                None => {
                    let _ = write!(out, "{n}");
                }
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(list) => {
            out.push('[');
            for (i, item) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, numbers, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_json(item, numbers, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a JSON pointer segment (`~` and `/` escaped).
fn push_pointer_segment(out: &mut String, segment: &str) {
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

fn escape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    push_pointer_segment(&mut out, segment);
    out
}

/// Decodes `%XX` escapes of a URI fragment.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes.get(i), hex) {
            (Some(b'%'), Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (Some(&b), _) => {
                out.push(b);
                i += 1;
            }
            (None, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves a URI reference against a base URI (enough of RFC 3986 for schema ids:
/// absolute references, network-path, absolute-path and relative-path references).
fn join_url(base: Option<&str>, reference: &str) -> String {
    let has_scheme = reference.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let Some(base) = base.filter(|_| !has_scheme) else {
        return reference.to_string();
    };
    let scheme_end = base.find("://").map(|i| i + 3);
    if reference.starts_with("//") {
        let scheme = base.split_once(':').map_or("", |(s, _)| s);
        return format!("{scheme}:{reference}");
    }
    if reference.starts_with('/') {
        let authority_end = scheme_end
            .and_then(|start| base[start..].find('/').map(|i| start + i))
            .unwrap_or(base.len());
        return format!("{}{reference}", &base[..authority_end]);
    }
    let reference = reference.strip_prefix("./").unwrap_or(reference);
    match base.rfind('/') {
        Some(i) if scheme_end.is_none_or(|start| i >= start) => {
            format!("{}{reference}", &base[..=i])
        }
        _ if scheme_end.is_some() => format!("{base}/{reference}"),
        _ => reference.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> JsonSchema {
        JsonSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn dep(name: &str, schema: &str) -> Resolved {
        Resolved {
            name: name.into(),
            schema: schema.into(),
        }
    }

    /// The errors of reading data written with `old` using `new`.
    fn errors(old: &str, new: &str) -> Vec<String> {
        parse(new).backward_errors(&parse(old))
    }

    fn compatible(old: &str, new: &str) -> bool {
        errors(old, new).is_empty()
    }

    fn assert_compatible(old: &str, new: &str) {
        let errors = errors(old, new);
        assert!(errors.is_empty(), "{old} -> {new}: {errors:?}");
    }

    /// The errors, asserting one of them starts with `expected`.
    fn assert_error(old: &str, new: &str, expected: &str) -> Vec<String> {
        let errors = errors(old, new);
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{old} -> {new}: expected {expected}, got {errors:?}"
        );
        errors
    }

    // ------------------------------------------------------------------ parsing

    #[test]
    fn parses_an_object_with_nested_properties() {
        let schema = parse(
            r#"{
                "$schema": "http://json-schema.org/draft-07/schema#",
                "title": "Person",
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "age": {"type": ["integer", "null"], "minimum": 0},
                    "address": {
                        "type": "object",
                        "properties": {
                            "street": {"type": "string"},
                            "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
                        },
                        "required": ["street"],
                        "additionalProperties": false
                    },
                    "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}
                },
                "required": ["name"]
            }"#,
        );
        assert_eq!(schema.value()["title"], "Person");
        assert!(schema.deps().is_empty());
    }

    #[test]
    fn parses_boolean_schemas_and_every_draft() {
        parse("true");
        parse("false");
        parse("{}");
        for draft in [
            "http://json-schema.org/draft-04/schema#",
            "http://json-schema.org/draft-06/schema#",
            "http://json-schema.org/draft-07/schema#",
            "https://json-schema.org/draft/2019-09/schema",
            "https://json-schema.org/draft/2020-12/schema",
        ] {
            parse(&format!(r#"{{"$schema": "{draft}", "type": "string"}}"#));
        }
        let err = JsonSchema::parse(
            r#"{"$schema": "http://json-schema.org/draft-03/schema#"}"#,
            &[],
        )
        .unwrap_err();
        assert!(err.contains("unsupported $schema"), "{err}");
    }

    #[test]
    fn parses_refs_to_local_definitions() {
        parse(
            r##"{
                "type": "object",
                "properties": {
                    "home": {"$ref": "#/definitions/address"},
                    "work": {"$ref": "#/$defs/address"},
                    "other": {"$ref": "#addr"},
                    "self": {"$ref": "#"},
                    "street": {"$ref": "#/definitions/address/properties/street"},
                    "escaped": {"$ref": "#/definitions/a~1b%20c"}
                },
                "definitions": {
                    "address": {"type": "object", "properties": {"street": {"type": "string"}}},
                    "a/b c": {"type": "string"}
                },
                "$defs": {
                    "address": {"$anchor": "addr", "type": "object"}
                }
            }"##,
        );
    }

    #[test]
    fn parses_refs_to_referenced_schemas() {
        let address = dep(
            "address.json",
            r#"{"type": "object", "properties": {"street": {"type": "string"}},
                "definitions": {"zip": {"type": "string"}}}"#,
        );
        let schema = JsonSchema::parse(
            r#"{"type": "object", "properties": {
                "address": {"$ref": "address.json"},
                "zip": {"$ref": "address.json#/definitions/zip"}
            }}"#,
            std::slice::from_ref(&address),
        )
        .unwrap();
        assert_eq!(schema.deps(), std::slice::from_ref(&address));

        // By URL, relative to the schema's $id, and by the referenced schema's $id.
        let by_url = dep(
            "https://example.com/schemas/address.schema.json",
            r#"{"type": "object"}"#,
        );
        JsonSchema::parse(
            r#"{"properties": {"a": {"$ref": "https://example.com/schemas/address.schema.json"}}}"#,
            std::slice::from_ref(&by_url),
        )
        .unwrap();
        JsonSchema::parse(
            r#"{"$id": "https://example.com/schemas/person.schema.json",
                "properties": {"a": {"$ref": "address.schema.json"}}}"#,
            std::slice::from_ref(&by_url),
        )
        .unwrap();
        let by_id = dep(
            "customer-address",
            r#"{"$id": "https://example.com/address.json", "type": "object"}"#,
        );
        JsonSchema::parse(
            r#"{"properties": {"a": {"$ref": "https://example.com/address.json"}}}"#,
            &[by_id],
        )
        .unwrap();
    }

    #[test]
    fn rejects_bad_json_and_non_schemas() {
        for text in ["", "{", r#"{"type": "string",}"#, "nul", "{\"a\" 1}"] {
            let err = JsonSchema::parse(text, &[]).unwrap_err();
            assert!(err.starts_with("invalid JSON"), "{text}: {err}");
        }
        for text in ["42", "\"string\"", "[]", "null"] {
            let err = JsonSchema::parse(text, &[]).unwrap_err();
            assert!(err.contains("object or a boolean"), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_bad_type_names() {
        let err =
            JsonSchema::parse(r#"{"properties": {"a": {"type": "strin"}}}"#, &[]).unwrap_err();
        assert!(err.contains("unknown type \"strin\""), "{err}");
        assert!(err.contains("#/properties/a/type"), "{err}");
        for text in [
            r#"{"type": ["string", "text"]}"#,
            r#"{"type": 3}"#,
            r#"{"type": []}"#,
            r#"{"type": "any"}"#,
        ] {
            assert!(JsonSchema::parse(text, &[]).is_err(), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_keywords() {
        for (text, why) in [
            (r#"{"properties": []}"#, "properties must be an object"),
            (r#"{"properties": {"a": 1}}"#, "a schema must be an object"),
            (
                r#"{"required": "a"}"#,
                "required must be an array of strings",
            ),
            (
                r#"{"required": ["a", 1]}"#,
                "required must be an array of strings",
            ),
            (r#"{"items": 1}"#, "a schema must be an object"),
            (r#"{"items": [{}, 2]}"#, "a schema must be an object"),
            (r#"{"allOf": []}"#, "allOf must be a non-empty array"),
            (r#"{"not": "x"}"#, "a schema must be an object"),
            (
                r#"{"maxLength": -1}"#,
                "maxLength must be a non-negative integer",
            ),
            (
                r#"{"minItems": 1.5}"#,
                "minItems must be a non-negative integer",
            ),
            (
                r#"{"multipleOf": 0}"#,
                "multipleOf must be a number greater than 0",
            ),
            (r#"{"minimum": "1"}"#, "minimum must be a number"),
            (r#"{"enum": "a"}"#, "enum must be an array"),
            (r#"{"$ref": 1}"#, "$ref must be a string"),
            (
                r#"{"additionalProperties": 1}"#,
                "a schema must be an object",
            ),
            (
                r#"{"definitions": {"a": []}}"#,
                "a schema must be an object",
            ),
        ] {
            let err = JsonSchema::parse(text, &[]).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_dangling_refs() {
        for text in [
            r##"{"$ref": "#/definitions/missing"}"##,
            r##"{"properties": {"a": {"$ref": "#/$defs/missing"}}, "$defs": {}}"##,
            r##"{"items": {"$ref": "#nowhere"}}"##,
            r##"{"$ref": "other.json"}"##,
            r##"{"$ref": "https://example.com/other.json#/definitions/x"}"##,
        ] {
            let err = JsonSchema::parse(text, &[]).unwrap_err();
            assert!(err.contains("resolves to nothing"), "{text}: {err}");
        }
        // A fragment into a referenced schema must exist too.
        let err = JsonSchema::parse(
            r#"{"$ref": "a.json#/definitions/x"}"#,
            &[dep("a.json", "{}")],
        )
        .unwrap_err();
        assert!(err.contains("resolves to nothing"), "{err}");
        // So must the references of referenced schemas.
        let err = JsonSchema::parse(
            r#"{"$ref": "a.json"}"#,
            &[dep("a.json", r#"{"$ref": "b.json"}"#)],
        )
        .unwrap_err();
        assert!(err.starts_with("referenced schema 'a.json'"), "{err}");
        let err = JsonSchema::parse("{}", &[dep("a.json", "{")]).unwrap_err();
        assert!(
            err.starts_with("referenced schema 'a.json': invalid JSON"),
            "{err}"
        );
    }

    #[test]
    fn rejects_too_deep_and_too_large_input() {
        let deep = format!(
            "{}{}",
            r#"{"items":"#.repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        let err = JsonSchema::parse(&deep, &[]).unwrap_err();
        assert!(err.contains("deeper than"), "{err}");
        let very_deep = "[".repeat(100_000);
        assert!(JsonSchema::parse(&very_deep, &[]).is_err());
        // Brackets inside strings do not count.
        parse(&format!(r#"{{"description": "{}"}}"#, "[{".repeat(1000)));
        // Nesting within the limit is fine.
        let ok = format!(
            "{}{{}}{}",
            r#"{"items":"#.repeat(MAX_DEPTH - 1),
            "}".repeat(MAX_DEPTH - 1)
        );
        parse(&ok);
        let large = format!(r#"{{"description": "{}"}}"#, "x".repeat(MAX_SCHEMA_BYTES));
        let err = JsonSchema::parse(&large, &[]).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            r##"{"$ref": "#/definitions/a", "definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}}"##,
            r##"{"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#", "type": "string"}"##,
            r#"{"$ref": "%zz"}"#,
            r##"{"$ref": "#%"}"##,
            r##"{"$id": "#", "$ref": "#"}"##,
            r#"{"$id": "urn:x", "$ref": "urn:x#/properties/a", "properties": {"a": {}}}"#,
            r#"{"patternProperties": {"(": {"type": "string"}}}"#,
            r#"{"type": "number", "multipleOf": 1e308, "maximum": 1e308}"#,
            r#"{"enum": [1, 1.0, {"a": [null]}], "const": {"x": 1}}"#,
            r#"{"dependencies": {"a": ["b"], "c": {"required": ["d"]}}}"#,
            r#"{"items": [true, false], "additionalItems": false}"#,
            r#"{"prefixItems": [{}], "items": false, "unevaluatedItems": false}"#,
            r#"{"if": {}, "then": {}, "else": {}}"#,
            r#"{"\u0000": "\ud800"}"#,
        ];
        let parsed: Vec<JsonSchema> = odd
            .iter()
            .filter_map(|text| JsonSchema::parse(text, &[]).ok())
            .collect();
        // Rejected: the two undecodable references and the lone surrogate.
        assert_eq!(parsed.len(), odd.len() - 3);
        for a in &parsed {
            for b in &parsed {
                let _ = a.backward_errors(b);
            }
            let _ = a.canonical();
        }
    }

    // ------------------------------------------------------------------ canonical text

    #[test]
    fn canonical_text_ignores_whitespace_and_key_order() {
        let a = parse(
            r#"{"type": "object", "properties": {"b": {"type": "string"}, "a": {"enum": [2, 1]}}}"#,
        );
        let b = parse(
            "{\n  \"properties\": {\n    \"a\": {\"enum\": [2,1]},\n    \"b\": {\"type\":\"string\"}\n  },\n  \"type\": \"object\"\n}",
        );
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(
            a.canonical(),
            r#"{"properties":{"a":{"enum":[2,1]},"b":{"type":"string"}},"type":"object"}"#
        );
        // Array order is meaningful.
        let c = parse(
            r#"{"properties": {"a": {"enum": [1, 2]}, "b": {"type": "string"}}, "type": "object"}"#,
        );
        assert_ne!(a.canonical(), c.canonical());
        // Strings are escaped as JSON.
        let d = parse(r#"{"description": "a \"quoted\"\nline \u0001 é"}"#);
        assert_eq!(
            d.canonical(),
            "{\"description\":\"a \\\"quoted\\\"\\nline \\u0001 é\"}"
        );
        let reparsed: Value = serde_json::from_str(&d.canonical()).unwrap();
        assert_eq!(&reparsed, d.value());
    }

    // ------------------------------------------------------------------ compatibility

    const PERSON: &str = r#"{"type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name"]}"#;
    const CLOSED_PERSON: &str = r#"{"type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name"], "additionalProperties": false}"#;

    #[test]
    fn identical_schemas_are_compatible() {
        for text in [
            PERSON,
            CLOSED_PERSON,
            "true",
            "{}",
            r#"{"type": ["string", "null"]}"#,
        ] {
            assert_compatible(text, text);
        }
        // Annotations may change.
        assert_compatible(
            r#"{"type": "string", "title": "a", "description": "b", "default": "c"}"#,
            r#"{"type": "string", "title": "x", "description": "y", "default": "z", "$id": "q"}"#,
        );
    }

    #[test]
    fn optional_property_added_to_a_closed_model_is_compatible() {
        assert_compatible(
            CLOSED_PERSON,
            r#"{"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                               "email": {"type": "string"}},
                "required": ["name"], "additionalProperties": false}"#,
        );
    }

    #[test]
    fn optional_property_added_to_an_open_model_is_incompatible() {
        let errors = assert_error(
            PERSON,
            r#"{"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                               "email": {"type": "string"}},
                "required": ["name"]}"#,
            "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at #/properties/email",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        // ... unless the new property accepts anything.
        assert_compatible(
            PERSON,
            r#"{"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                               "extra": {}, "more": true},
                "required": ["name"]}"#,
        );
    }

    #[test]
    fn required_property_added_is_incompatible() {
        assert_error(
            CLOSED_PERSON,
            r#"{"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                               "email": {"type": "string"}},
                "required": ["name", "email"], "additionalProperties": false}"#,
            "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL at #/properties/email",
        );
        assert_error(
            PERSON,
            r#"{"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                               "email": {"type": "string"}},
                "required": ["name", "email"]}"#,
            "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at #/properties/email",
        );
        // With a default, a closed model may add a required property.
        assert_compatible(
            CLOSED_PERSON,
            r#"{"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                               "email": {"type": "string", "default": ""}},
                "required": ["name", "email"], "additionalProperties": false}"#,
        );
    }

    #[test]
    fn property_becoming_required_is_incompatible() {
        let errors = assert_error(
            PERSON,
            r#"{"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name", "age"]}"#,
            "REQUIRED_ATTRIBUTE_ADDED at #/required/age",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        // No longer required, or required with a default: compatible.
        assert_compatible(
            PERSON,
            r#"{"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}"#,
        );
        assert_compatible(
            PERSON,
            r#"{"type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer", "default": 0}},
                "required": ["name", "age"]}"#,
        );
        // As Confluent, a required name neither schema lists is not compared.
        assert_compatible(
            r#"{"type": "object"}"#,
            r#"{"type": "object", "required": ["id"]}"#,
        );
    }

    #[test]
    fn property_removed_from_closed_and_open_models() {
        assert_error(
            CLOSED_PERSON,
            r#"{"type": "object", "properties": {"name": {"type": "string"}},
                "required": ["name"], "additionalProperties": false}"#,
            "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at #/properties/age",
        );
        assert_compatible(
            PERSON,
            r#"{"type": "object", "properties": {"name": {"type": "string"}},
                "required": ["name"]}"#,
        );
        // A property the old schema forbade may go.
        assert_compatible(
            r#"{"type": "object", "properties": {"a": false}, "additionalProperties": false}"#,
            r#"{"type": "object", "additionalProperties": false}"#,
        );
        // Closing an open model.
        assert_error(
            PERSON,
            CLOSED_PERSON,
            "ADDITIONAL_PROPERTIES_REMOVED at #/additionalProperties",
        );
        assert_compatible(CLOSED_PERSON, PERSON);
    }

    #[test]
    fn type_changes() {
        let errors = assert_error(
            r#"{"type": "object", "properties": {"age": {"type": "string"}}}"#,
            r#"{"type": "object", "properties": {"age": {"type": "integer"}}}"#,
            "TYPE_CHANGED at #/properties/age",
        );
        assert_eq!(
            errors,
            ["TYPE_CHANGED at #/properties/age: string -> integer"]
        );
        assert_error(
            r#"{"type": "integer"}"#,
            r#"{"type": "string"}"#,
            "TYPE_CHANGED at #/: integer -> string",
        );
        assert_error(r#"{"type": "string"}"#, "false", "TYPE_CHANGED at #/");
        assert_error("{}", r#"{"type": "string"}"#, "TYPE_CHANGED at #/");
        // Anything may become `true`/`{}`, and `false` may become anything.
        assert_compatible(PERSON, "{}");
        assert_compatible(PERSON, "true");
        assert_compatible("false", PERSON);
    }

    #[test]
    fn integer_widens_to_number_but_number_does_not_narrow_to_integer() {
        assert_compatible(r#"{"type": "integer"}"#, r#"{"type": "number"}"#);
        assert_compatible(
            r#"{"properties": {"n": {"type": "integer", "maximum": 5}}}"#,
            r#"{"properties": {"n": {"type": "number", "maximum": 5}}}"#,
        );
        assert_eq!(
            errors(r#"{"type": "number"}"#, r#"{"type": "integer"}"#),
            ["TYPE_NARROWED at #/: number -> integer"]
        );
    }

    #[test]
    fn enum_narrowed_and_widened() {
        let abc = r#"{"type": "string", "enum": ["a", "b", "c"]}"#;
        let ab = r#"{"type": "string", "enum": ["a", "b"]}"#;
        let abcd = r#"{"type": "string", "enum": ["a", "b", "c", "d"]}"#;
        let errors = assert_error(abc, ab, "ENUM_ARRAY_NARROWED at #/enum");
        assert!(errors[0].contains("\"c\""), "{errors:?}");
        assert_compatible(abc, abcd);
        assert_error(
            abc,
            r#"{"type": "string", "enum": ["a", "b", "x"]}"#,
            "ENUM_ARRAY_CHANGED at #/enum",
        );
        // Without a type, and nested.
        assert_error(
            r#"{"properties": {"c": {"enum": [1, 2]}}}"#,
            r#"{"properties": {"c": {"enum": [2]}}}"#,
            "ENUM_ARRAY_NARROWED at #/properties/c/enum",
        );
        assert_compatible(r#"{"enum": [1, 2]}"#, r#"{"enum": [2.0, 1, 3]}"#);
        // Dropping the enum is compatible; adding one is not.
        assert_compatible(abc, r#"{"type": "string"}"#);
        assert_error(r#"{"type": "string"}"#, abc, "PRODUCT_TYPE_EXTENDED at #/");
        assert_error(
            r#"{"const": "a"}"#,
            r#"{"const": "b"}"#,
            "ENUM_ARRAY_CHANGED at #/const",
        );
    }

    #[test]
    fn string_constraints() {
        let errors = assert_error(
            r#"{"type": "string", "maxLength": 10}"#,
            r#"{"type": "string", "maxLength": 5}"#,
            "MAX_LENGTH_DECREASED at #/maxLength",
        );
        assert_eq!(
            errors,
            ["MAX_LENGTH_DECREASED at #/maxLength: maxLength 10 -> 5"]
        );
        assert_compatible(
            r#"{"type": "string", "maxLength": 5}"#,
            r#"{"type": "string", "maxLength": 10}"#,
        );
        assert_compatible(
            r#"{"type": "string", "maxLength": 5}"#,
            r#"{"type": "string"}"#,
        );
        assert_error(
            r#"{"type": "string"}"#,
            r#"{"type": "string", "maxLength": 5}"#,
            "MAX_LENGTH_ADDED",
        );
        assert_error(
            r#"{"type": "string", "minLength": 1}"#,
            r#"{"type": "string", "minLength": 2}"#,
            "MIN_LENGTH_INCREASED",
        );
        assert_error(
            r#"{"type": "string"}"#,
            r#"{"type": "string", "minLength": 2}"#,
            "MIN_LENGTH_ADDED",
        );
        assert_compatible(
            r#"{"type": "string"}"#,
            r#"{"type": "string", "minLength": 0}"#,
        );
        assert_error(
            r#"{"type": "string"}"#,
            r#"{"type": "string", "pattern": "^a"}"#,
            "PATTERN_ADDED",
        );
        assert_error(
            r#"{"type": "string", "pattern": "^a"}"#,
            r#"{"type": "string", "pattern": "^b"}"#,
            "PATTERN_CHANGED",
        );
        assert_compatible(
            r#"{"type": "string", "pattern": "^a"}"#,
            r#"{"type": "string"}"#,
        );
    }

    #[test]
    fn number_constraints() {
        let n = |extra: &str| format!(r#"{{"type": "number"{extra}}}"#);
        assert_error(
            &n(""),
            &n(r#", "maximum": 5"#),
            "MAXIMUM_ADDED at #/maximum",
        );
        assert_error(
            &n(r#", "maximum": 5"#),
            &n(r#", "maximum": 4"#),
            "MAXIMUM_DECREASED",
        );
        assert_compatible(&n(r#", "maximum": 5"#), &n(r#", "maximum": 6"#));
        assert_error(
            &n(r#", "minimum": 5"#),
            &n(r#", "minimum": 6"#),
            "MINIMUM_INCREASED",
        );
        assert_compatible(&n(r#", "minimum": 5"#), &n(""));
        assert_error(
            &n(r#", "exclusiveMaximum": 5"#),
            &n(r#", "exclusiveMaximum": 4.5"#),
            "EXCLUSIVE_MAXIMUM_DECREASED",
        );
        assert_error(
            &n(""),
            &n(r#", "exclusiveMinimum": 0"#),
            "EXCLUSIVE_MINIMUM_ADDED",
        );
        // Draft 4's boolean form.
        assert_error(
            &n(r#", "maximum": 5"#),
            &n(r#", "maximum": 5, "exclusiveMaximum": true"#),
            "EXCLUSIVE_MAXIMUM_ADDED",
        );
        assert_error(&n(""), &n(r#", "multipleOf": 2"#), "MULTIPLE_OF_ADDED");
        assert_error(
            &n(r#", "multipleOf": 2"#),
            &n(r#", "multipleOf": 4"#),
            "MULTIPLE_OF_EXPANDED",
        );
        assert_compatible(&n(r#", "multipleOf": 4"#), &n(r#", "multipleOf": 2"#));
        assert_compatible(&n(r#", "multipleOf": 0.02"#), &n(r#", "multipleOf": 0.01"#));
        assert_error(
            &n(r#", "multipleOf": 2"#),
            &n(r#", "multipleOf": 3"#),
            "MULTIPLE_OF_CHANGED",
        );
    }

    #[test]
    fn nested_changes_are_reported_with_their_path() {
        let old = r#"{"type": "object", "properties": {"address": {"type": "object",
            "properties": {"zip": {"type": "string", "maxLength": 10},
                           "lines": {"type": "array", "items": {"type": "string"}}}}}}"#;
        let new = r#"{"type": "object", "properties": {"address": {"type": "object",
            "properties": {"zip": {"type": "integer"},
                           "lines": {"type": "array", "items": {"type": "string", "maxLength": 3}}}}}}"#;
        let errors = errors(old, new);
        assert_eq!(
            errors,
            [
                "MAX_LENGTH_ADDED at #/properties/address/properties/lines/items/maxLength: maxLength 3 added",
                "TYPE_CHANGED at #/properties/address/properties/zip: string -> integer",
            ]
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("TYPE_CHANGED at #/properties/address/properties/zip"))
        );
    }

    #[test]
    fn references_are_resolved_while_comparing() {
        let old = r##"{"type": "object",
            "properties": {"home": {"$ref": "#/definitions/address"}},
            "definitions": {"address": {"type": "object",
                "properties": {"zip": {"type": "string"}}}}}"##;
        let new = r##"{"type": "object",
            "properties": {"home": {"$ref": "#/$defs/addr"}},
            "$defs": {"addr": {"type": "object",
                "properties": {"zip": {"type": "integer"}}}}}"##;
        assert_eq!(
            errors(old, new),
            ["TYPE_CHANGED at #/properties/home/properties/zip: string -> integer"]
        );
        // Moving a schema into a definition, or out of one, changes nothing.
        let inline = r#"{"type": "object", "properties": {"home": {"type": "object",
            "properties": {"zip": {"type": "string"}}}}}"#;
        assert_compatible(old, inline);
        assert_compatible(inline, old);
    }

    #[test]
    fn references_into_referenced_schemas_are_resolved() {
        let v1 = dep(
            "address.json",
            r#"{"type": "object", "properties": {"zip": {"type": "string"}}}"#,
        );
        let v2 = dep(
            "address.json",
            r#"{"type": "object", "properties": {"zip": {"type": "string", "maxLength": 5}}}"#,
        );
        let text = r#"{"type": "object", "properties": {"home": {"$ref": "address.json"}}}"#;
        let old = JsonSchema::parse(text, std::slice::from_ref(&v1)).unwrap();
        let same = JsonSchema::parse(text, std::slice::from_ref(&v1)).unwrap();
        let new = JsonSchema::parse(text, std::slice::from_ref(&v2)).unwrap();
        assert!(same.backward_errors(&old).is_empty());
        assert_eq!(
            new.backward_errors(&old),
            ["MAX_LENGTH_ADDED at #/properties/home/properties/zip/maxLength: maxLength 5 added"]
        );
        assert!(old.backward_errors(&new).is_empty());
        // A fragment into a referenced schema, whose own local refs resolve in it.
        let defs = dep(
            "defs.json",
            r##"{"definitions": {"zip": {"$ref": "#/definitions/code"},
                                 "code": {"type": "string"}}}"##,
        );
        let by_fragment = JsonSchema::parse(
            r#"{"properties": {"zip": {"$ref": "defs.json#/definitions/zip"}}}"#,
            &[defs],
        )
        .unwrap();
        let inline = parse(r#"{"properties": {"zip": {"type": "integer"}}}"#);
        assert_eq!(
            inline.backward_errors(&by_fragment),
            ["TYPE_CHANGED at #/properties/zip: string -> integer"]
        );
    }

    const TREE: &str = r##"{"$ref": "#/definitions/node", "definitions": {"node": {
        "type": "object",
        "properties": {"value": {"type": "integer"},
                       "children": {"type": "array", "items": {"$ref": "#/definitions/node"}}}}}}"##;

    #[test]
    fn cyclic_references_terminate() {
        assert_compatible(TREE, TREE);
        let widened = TREE.replace(r#""type": "integer""#, r#""type": "number""#);
        assert_compatible(TREE, &widened);
        let changed = TREE.replace(r#""type": "integer""#, r#""type": "string""#);
        assert_eq!(
            errors(TREE, &changed),
            ["TYPE_CHANGED at #/properties/value: integer -> string"]
        );
        // Mutually recursive definitions, with a change deep inside.
        let pair = |t: &str| {
            format!(
                r##"{{"$ref": "#/definitions/a", "definitions": {{
                    "a": {{"type": "object", "properties": {{"b": {{"$ref": "#/definitions/b"}}}}}},
                    "b": {{"type": "object", "properties": {{"a": {{"$ref": "#/definitions/a"}},
                                                          "x": {{"type": "{t}"}}}}}}}}}}"##
            )
        };
        assert_compatible(&pair("string"), &pair("string"));
        assert_error(
            &pair("string"),
            &pair("boolean"),
            "TYPE_CHANGED at #/properties/b/properties/x",
        );
        // References that only lead to themselves.
        assert_compatible(r##"{"$ref": "#"}"##, r##"{"$ref": "#"}"##);
        let ring = r##"{"$ref": "#/definitions/a", "definitions": {
            "a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}}"##;
        assert_compatible(ring, ring);
    }

    #[test]
    fn pathological_schemas_are_bounded() {
        // A long chain of distinct definitions is followed (on the comparison's own
        // thread, whatever the caller's stack) ...
        let chain = |n: usize, last: &str| {
            let defs: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        r##""d{i}": {{"type": "object", "properties": {{
                            "next": {{"$ref": "#/definitions/d{}"}}, "x": {{"type": "integer"}}}}}}"##,
                        i + 1
                    )
                })
                .chain([format!(r#""d{n}": {{"type": "{last}"}}"#)])
                .collect();
            format!(
                r##"{{"$ref": "#/definitions/d0", "definitions": {{{}}}}}"##,
                defs.join(",")
            )
        };
        assert_compatible(&chain(500, "string"), &chain(500, "string"));
        let errors = assert_error(
            &chain(500, "string"),
            &chain(500, "integer"),
            "TYPE_CHANGED at #/properties/next/properties/next/",
        );
        assert!(
            errors[0].ends_with("/properties/next: string -> integer"),
            "{errors:?}"
        );
        // ... up to a depth, past which the comparison stops rather than overflow.
        assert_error(
            &chain(MAX_COMPARE_DEPTH + 10, "string"),
            &chain(MAX_COMPARE_DEPTH + 10, "string"),
            "COMPARISON_ABORTED at #/",
        );
        // Many mutually referencing unions: the comparison stops after a bounded number
        // of steps.
        let mut defs = Vec::new();
        for i in 0..16 {
            let members: Vec<String> = (0..16)
                .map(|j| format!(r##"{{"$ref": "#/definitions/d{}"}}"##, (i + j + 1) % 16))
                .chain([format!(
                    r#"{{"type": "object", "properties": {{"v{i}": {{"type": "string"}}}}}}"#
                )])
                .collect();
            defs.push(format!(r#""d{i}": {{"anyOf": [{}]}}"#, members.join(",")));
        }
        let text = format!(
            r##"{{"$ref": "#/definitions/d0", "definitions": {{{}}}}}"##,
            defs.join(",")
        );
        let a = parse(&text);
        let b = parse(&text.replace(r#""type": "string""#, r#""type": "integer""#));
        let started = std::time::Instant::now();
        assert!(!b.backward_errors(&a).is_empty());
        assert!(a.backward_errors(&a).is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn unions_and_nullable_types() {
        let s = r#"{"type": "string"}"#;
        let sn = r#"{"type": ["string", "null"]}"#;
        assert_compatible(s, sn);
        assert_error(sn, s, "SUM_TYPE_NARROWED at #/");
        assert_compatible(s, r#"{"oneOf": [{"type": "null"}, {"type": "string"}]}"#);
        assert_compatible(
            r#"{"oneOf": [{"type": "string"}]}"#,
            r#"{"oneOf": [{"type": "number"}, {"type": "string"}]}"#,
        );
        assert_error(
            r#"{"oneOf": [{"type": "number"}, {"type": "string"}]}"#,
            r#"{"oneOf": [{"type": "string"}]}"#,
            "SUM_TYPE_NARROWED at #/",
        );
        assert_error(
            r#"{"oneOf": [{"type": "string"}]}"#,
            r#"{"oneOf": [{"type": "number"}]}"#,
            "COMBINED_TYPE_SUBSCHEMAS_CHANGED at #/",
        );
        // A member changed: the pairing fails and the member's difference is shown.
        let errors = assert_error(
            r#"{"oneOf": [{"type": "null"}, {"type": "object", "properties": {"a": {"type": "string"}}}]}"#,
            r#"{"oneOf": [{"type": "null"}, {"type": "object", "properties": {"a": {"type": "integer"}}}]}"#,
            "COMBINED_TYPE_SUBSCHEMAS_CHANGED at #/",
        );
        assert!(
            errors
                .contains(&"TYPE_CHANGED at #/oneOf/1/properties/a: string -> integer".to_string()),
            "{errors:?}"
        );
        // Criteria.
        assert_compatible(
            r#"{"oneOf": [{"type": "string"}, {"type": "integer"}]}"#,
            r#"{"anyOf": [{"type": "string"}, {"type": "integer"}]}"#,
        );
        assert_compatible(
            r#"{"oneOf": [{"type": "string"}]}"#,
            r#"{"allOf": [{"type": "string"}]}"#,
        );
        assert_error(
            r#"{"oneOf": [{"type": "string"}, {"type": "integer"}]}"#,
            r#"{"allOf": [{"type": "string"}]}"#,
            "COMBINED_TYPE_CHANGED at #/: oneOf -> allOf",
        );
        // allOf: fewer conjuncts is compatible, more is not.
        let a2 = r#"{"allOf": [{"type": "string"}, {"maxLength": 5}]}"#;
        let a1 = r#"{"allOf": [{"type": "string"}]}"#;
        assert_compatible(a2, a1);
        assert_error(a1, a2, "PRODUCT_TYPE_EXTENDED at #/");
        // Duplicates do not count.
        assert_compatible(
            r#"{"allOf": [{"type": "string"}, {"type": "string"}]}"#,
            r#"{"allOf": [{"type": "string"}]}"#,
        );
        // not: the new schema may exclude less, not more.
        assert_compatible(
            r#"{"not": {"type": "string"}}"#,
            r#"{"not": {"type": "string", "maxLength": 3}}"#,
        );
        assert_error(
            r#"{"not": {"type": "string", "maxLength": 3}}"#,
            r#"{"not": {"type": "string"}}"#,
            "NOT_TYPE_EXTENDED at #/not",
        );
    }

    #[test]
    fn additional_and_pattern_properties() {
        let open = r#"{"type": "object"}"#;
        let map_of_strings = r#"{"type": "object", "additionalProperties": {"type": "string"}}"#;
        assert_error(
            open,
            map_of_strings,
            "ADDITIONAL_PROPERTIES_NARROWED at #/additionalProperties",
        );
        assert_compatible(map_of_strings, open);
        assert_error(
            map_of_strings,
            r#"{"type": "object", "additionalProperties": {"type": "integer"}}"#,
            "TYPE_CHANGED at #/additionalProperties",
        );
        assert_compatible(open, r#"{"type": "object", "additionalProperties": {}}"#);
        // A property added that the old additionalProperties schema covers.
        assert_compatible(
            map_of_strings,
            r#"{"type": "object", "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"}}"#,
        );
        assert_error(
            map_of_strings,
            r#"{"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}},
                "additionalProperties": {"type": "string"}}"#,
            "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL at #/properties/a",
        );
        let pattern = r#"{"type": "object", "patternProperties": {"^i_": {"type": "integer"}},
            "additionalProperties": false}"#;
        assert_compatible(
            pattern,
            r#"{"type": "object", "properties": {"i_count": {"type": "number"}},
                "patternProperties": {"^i_": {"type": "integer"}}, "additionalProperties": false}"#,
        );
        assert_error(
            pattern,
            r#"{"type": "object", "properties": {"i_count": {"type": "string"}},
                "patternProperties": {"^i_": {"type": "integer"}}, "additionalProperties": false}"#,
            "TYPE_CHANGED at #/properties/i_count",
        );
        assert_error(
            r#"{"type": "object", "properties": {"i_count": {"type": "number"}},
                "patternProperties": {"^i_": {"type": "integer"}}, "additionalProperties": false}"#,
            pattern,
            "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL at #/properties/i_count",
        );
        // As Confluent, a name no pattern covers, without additionalProperties, is
        // taken as closed.
        assert_compatible(
            r#"{"type": "object", "patternProperties": {"^i_": {"type": "integer"}}}"#,
            r#"{"type": "object", "properties": {"s": {"type": "string"}},
                "patternProperties": {"^i_": {"type": "integer"}}}"#,
        );
        // A pattern the regex crate cannot compile (look-ahead) is taken to match.
        assert_error(
            r#"{"type": "object", "patternProperties": {"^(?!x)": {"type": "integer"}},
                "additionalProperties": false}"#,
            r#"{"type": "object", "properties": {"s": {"type": "string"}},
                "patternProperties": {"^(?!x)": {"type": "integer"}},
                "additionalProperties": false}"#,
            "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL at #/properties/s",
        );
    }

    #[test]
    fn arrays() {
        let a =
            |extra: &str| format!(r#"{{"type": "array", "items": {{"type": "string"}}{extra}}}"#);
        assert_error(
            &a(""),
            &a(r#", "maxItems": 3"#),
            "MAX_ITEMS_ADDED at #/maxItems",
        );
        assert_error(
            &a(r#", "maxItems": 3"#),
            &a(r#", "maxItems": 2"#),
            "MAX_ITEMS_DECREASED",
        );
        assert_error(
            &a(r#", "minItems": 1"#),
            &a(r#", "minItems": 2"#),
            "MIN_ITEMS_INCREASED",
        );
        assert_compatible(&a(r#", "minItems": 2"#), &a(""));
        assert_error(&a(""), &a(r#", "uniqueItems": true"#), "UNIQUE_ITEMS_ADDED");
        assert_compatible(&a(r#", "uniqueItems": true"#), &a(""));
        assert_error(r#"{"type": "array"}"#, &a(""), "SCHEMA_ADDED at #/items");
        assert_compatible(&a(""), r#"{"type": "array"}"#);
        assert_error(
            &a(""),
            r#"{"type": "array", "items": {"type": "integer"}}"#,
            "TYPE_CHANGED at #/items",
        );
        // Tuples.
        let closed2 = r#"{"type": "array", "items": [{"type": "string"}, {"type": "integer"}],
            "additionalItems": false}"#;
        let closed3 = r#"{"type": "array",
            "items": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}],
            "additionalItems": false}"#;
        let open2 = r#"{"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}"#;
        let open3 = r#"{"type": "array",
            "items": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]}"#;
        assert_compatible(closed2, closed3); // ITEM_ADDED_TO_CLOSED_CONTENT_MODEL
        assert_error(
            closed3,
            closed2,
            "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL at #/items/2",
        );
        assert_error(
            open2,
            open3,
            "ITEM_ADDED_TO_OPEN_CONTENT_MODEL at #/items/2",
        );
        assert_compatible(open3, open2);
        assert_error(
            open2,
            closed2,
            "ADDITIONAL_ITEMS_REMOVED at #/additionalItems",
        );
        assert_error(
            open2,
            r#"{"type": "array", "items": [{"type": "string"}, {"type": "string"}]}"#,
            "TYPE_CHANGED at #/items/1",
        );
        // 2020-12 prefixItems.
        assert_compatible(
            r#"{"type": "array", "prefixItems": [{"type": "string"}], "items": false}"#,
            r#"{"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false}"#,
        );
        assert_error(
            r#"{"type": "array", "prefixItems": [{"type": "string"}]}"#,
            r#"{"type": "array", "prefixItems": [{"type": "string"}], "items": false}"#,
            "ADDITIONAL_ITEMS_REMOVED at #/items",
        );
    }

    #[test]
    fn dependencies_changes() {
        assert_error(
            r#"{"type": "object"}"#,
            r#"{"type": "object", "dependencies": {"a": ["b"]}}"#,
            "DEPENDENCY_ARRAY_ADDED at #/dependencies/a",
        );
        assert_compatible(
            r#"{"type": "object", "dependencies": {"a": ["b", "c"]}}"#,
            r#"{"type": "object", "dependentRequired": {"a": ["b"]}}"#,
        );
        assert_error(
            r#"{"type": "object", "dependencies": {"a": ["b"]}}"#,
            r#"{"type": "object", "dependencies": {"a": ["b", "c"]}}"#,
            "DEPENDENCY_ARRAY_EXTENDED",
        );
        assert_error(
            r#"{"type": "object"}"#,
            r#"{"type": "object", "dependencies": {"a": {"required": ["b"]}}}"#,
            "DEPENDENCY_SCHEMA_ADDED",
        );
    }

    #[test]
    fn forward_compatibility_swaps_the_schemas() {
        // A new optional property in a closed model: backward compatible, not forward.
        let new = parse(
            r#"{"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "additionalProperties": false}"#,
        );
        let old = parse(
            r#"{"type": "object", "properties": {"a": {"type": "string"}},
                "additionalProperties": false}"#,
        );
        assert!(new.backward_errors(&old).is_empty());
        let forward = old.backward_errors(&new);
        assert_eq!(
            forward,
            [
                "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at #/properties/b: property 'b' was \
              removed and the new schema forbids unlisted properties"
            ]
        );
    }

    #[test]
    fn siblings_of_ref_follow_the_draft() {
        // Draft 7: keywords next to $ref are ignored.
        let d7 = |t: &str| {
            format!(
                r##"{{"$schema": "http://json-schema.org/draft-07/schema#",
                     "$ref": "#/definitions/s", "type": "{t}",
                     "definitions": {{"s": {{"type": "string"}}}}}}"##
            )
        };
        assert_compatible(&d7("string"), &d7("integer"));
        // 2020-12: they apply.
        let d2020 = |extra: &str| {
            format!(
                r##"{{"$schema": "https://json-schema.org/draft/2020-12/schema",
                     "$ref": "#/$defs/s"{extra}, "$defs": {{"s": {{"type": "string"}}}}}}"##
            )
        };
        assert!(!compatible(&d2020(""), &d2020(r#", "maxLength": 3"#)));
        assert!(compatible(&d2020(r#", "maxLength": 3"#), &d2020("")));
    }
}
