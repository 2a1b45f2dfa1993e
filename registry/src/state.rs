//! The registry's state: subjects and their versions, schemas by id, compatibility levels
//! and modes. It changes only by applying `_schemas` records ([`State::apply`]), both when
//! the topic is replayed at start and after a write has been made durable, so what is served
//! is always what the log holds.
//!
//! Schemas are parsed on first use, not when applied: after compaction a schema may come
//! before the schema it references, and a replay should not parse thousands of schemas no
//! one asks for.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use crate::compat::{Compatibility, Mode};
use crate::records::{Record, SchemaValue};
use crate::schema::{Parsed, Reference, Resolved, SchemaType};

/// How deep references may nest (a schema referencing one referencing one ...).
pub const MAX_REFERENCE_DEPTH: usize = 32;

/// A schema as stored under its id: the same id for the same schema in every subject.
#[derive(Debug)]
pub struct StoredSchema {
    /// Id.
    pub id: i32,
    /// Type.
    pub schema_type: SchemaType,
    /// Text as first registered.
    pub schema: String,
    /// References.
    pub references: Vec<Reference>,
    parsed: OnceLock<Result<Arc<Parsed>, String>>,
    canonical: OnceLock<Option<String>>,
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The schema's id.
    pub id: i32,
    /// Soft-deleted.
    pub deleted: bool,
}

/// The whole state.
#[derive(Debug, Default)]
pub struct State {
    subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    schemas: BTreeMap<i32, Arc<StoredSchema>>,
    /// Ids by (type, exact text, references): the fast path of "is this schema known".
    exact: HashMap<(SchemaType, String, Vec<Reference>), i32>,
    /// The (subject, version) pairs using each id: what every lookup by id (a produce's
    /// validation, a table's decoding) asks, answered without walking every subject.
    uses: HashMap<i32, BTreeSet<(String, i32)>>,
    configs: HashMap<Option<String>, Compatibility>,
    modes: HashMap<Option<String>, Mode>,
    max_id: i32,
}

impl State {
    /// Applies one record of `_schemas`.
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Schema(v) => self.apply_schema(v),
            Record::SchemaDeleted { subject, version } => {
                let mut removed = None;
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    removed = versions.remove(&version);
                    if versions.is_empty() {
                        self.subjects.remove(&subject);
                    }
                }
                if let Some(old) = removed {
                    self.unuse(old.id, &subject, version);
                }
            }
            Record::Config { subject, level } => match level {
                Some(level) => {
                    self.configs.insert(subject, level);
                }
                None => {
                    self.configs.remove(&subject);
                }
            },
            Record::Mode { subject, mode } => match mode {
                Some(mode) => {
                    self.modes.insert(subject, mode);
                }
                None => {
                    self.modes.remove(&subject);
                }
            },
            Record::Ignored => {}
        }
    }

    fn apply_schema(&mut self, v: SchemaValue) {
        self.max_id = self.max_id.max(v.id);
        if !self.schemas.contains_key(&v.id) {
            let stored = Arc::new(StoredSchema {
                id: v.id,
                schema_type: v.schema_type,
                schema: v.schema.clone(),
                references: v.references.clone(),
                parsed: OnceLock::new(),
                canonical: OnceLock::new(),
            });
            self.exact
                .entry((v.schema_type, v.schema, v.references))
                .or_insert(v.id);
            self.schemas.insert(v.id, stored);
        }
        self.uses
            .entry(v.id)
            .or_default()
            .insert((v.subject.clone(), v.version));
        let old = self.subjects.entry(v.subject.clone()).or_default().insert(
            v.version,
            Version {
                id: v.id,
                deleted: v.deleted,
            },
        );
        if let Some(old) = old.filter(|old| old.id != v.id) {
            self.unuse(old.id, &v.subject, v.version);
        }
    }

    /// The largest id ever seen (ids of hard-deleted schemas are not reused).
    pub fn max_id(&self) -> i32 {
        self.max_id
    }

    /// Subjects with at least one version (soft-deleted ones counted when `deleted`).
    pub fn subjects(&self, deleted: bool) -> impl Iterator<Item = &str> {
        self.subjects
            .iter()
            .filter(move |(_, versions)| deleted || versions.values().any(|v| !v.deleted))
            .map(|(s, _)| s.as_str())
    }

    /// All versions of a subject, soft-deleted ones included.
    pub fn versions(&self, subject: &str) -> Option<&BTreeMap<i32, Version>> {
        self.subjects.get(subject)
    }

    /// The schema with this id.
    pub fn schema(&self, id: i32) -> Option<&Arc<StoredSchema>> {
        self.schemas.get(&id)
    }

    /// Every stored schema, by id.
    pub fn schemas(&self) -> impl Iterator<Item = &Arc<StoredSchema>> {
        self.schemas.values()
    }

    /// The id of exactly this schema text, if stored.
    pub fn exact_id(&self, ty: SchemaType, text: &str, refs: &[Reference]) -> Option<i32> {
        self.exact
            .get(&(ty, text.to_string(), refs.to_vec()))
            .copied()
    }

    fn unuse(&mut self, id: i32, subject: &str, version: i32) {
        if let Some(set) = self.uses.get_mut(&id) {
            set.remove(&(subject.to_string(), version));
            if set.is_empty() {
                self.uses.remove(&id);
            }
        }
    }

    /// Where an id is used: (subject, version, soft-deleted), by subject and version.
    pub fn uses(&self, id: i32) -> Vec<(&str, i32, bool)> {
        let Some(set) = self.uses.get(&id) else {
            return Vec::new();
        };
        set.iter()
            .filter_map(|(subject, version)| {
                let v = self.subjects.get(subject)?.get(version)?;
                Some((subject.as_str(), *version, v.deleted))
            })
            .collect()
    }

    /// Whether any version, live or soft-deleted, uses the id.
    pub fn is_used(&self, id: i32) -> bool {
        self.uses.contains_key(&id)
    }

    /// A subject's own compatibility level.
    pub fn config(&self, subject: Option<&str>) -> Option<Compatibility> {
        self.configs.get(&subject.map(str::to_string)).copied()
    }

    /// A subject's own mode.
    pub fn mode(&self, subject: Option<&str>) -> Option<Mode> {
        self.modes.get(&subject.map(str::to_string)).copied()
    }

    /// The texts of everything `refs` references, directly or not, dependencies first.
    pub fn resolve(&self, refs: &[Reference]) -> Result<Vec<Resolved>, String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.resolve_into(refs, &mut out, &mut seen, 0)?;
        Ok(out)
    }

    fn resolve_into(
        &self,
        refs: &[Reference],
        out: &mut Vec<Resolved>,
        seen: &mut HashSet<String>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_REFERENCE_DEPTH {
            return Err(format!(
                "references nest deeper than {MAX_REFERENCE_DEPTH} levels"
            ));
        }
        for r in refs {
            if !seen.insert(r.name.clone()) {
                continue;
            }
            let stored = self
                .subjects
                .get(&r.subject)
                .and_then(|versions| versions.get(&r.version))
                .and_then(|v| self.schemas.get(&v.id))
                .ok_or_else(|| {
                    format!(
                        "reference '{}' names subject '{}' version {}, which does not exist",
                        r.name, r.subject, r.version
                    )
                })?;
            self.resolve_into(&stored.references, out, seen, depth + 1)?;
            out.push(Resolved {
                name: r.name.clone(),
                schema: stored.schema.clone(),
            });
        }
        Ok(())
    }

    /// The parsed schema of a stored one (parsed once).
    pub fn parsed(&self, stored: &StoredSchema) -> Result<Arc<Parsed>, String> {
        stored
            .parsed
            .get_or_init(|| {
                let deps = self.resolve(&stored.references)?;
                Parsed::parse(stored.schema_type, &stored.schema, &deps).map(Arc::new)
            })
            .clone()
    }

    /// The canonical text of a stored schema (`None` if it does not parse).
    pub fn canonical(&self, stored: &StoredSchema) -> Option<String> {
        stored
            .canonical
            .get_or_init(|| self.parsed(stored).ok().map(|p| p.canonical()))
            .clone()
    }

    /// Ids of the live versions that reference `subject`'s `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .subjects
            .values()
            .flat_map(|versions| versions.values())
            .filter(|v| !v.deleted)
            .filter(|v| {
                self.schemas.get(&v.id).is_some_and(|s| {
                    s.references
                        .iter()
                        .any(|r| r.subject == subject && r.version == version)
                })
            })
            .map(|v| v.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(subject: &str, version: i32, id: i32, text: &str, deleted: bool) -> Record {
        Record::Schema(SchemaValue {
            subject: subject.into(),
            version,
            id,
            schema_type: SchemaType::Avro,
            references: vec![],
            schema: text.into(),
            deleted,
        })
    }

    #[test]
    fn records_build_subjects_ids_and_deletions() {
        let mut s = State::default();
        s.apply(schema("a", 1, 1, r#""string""#, false));
        s.apply(schema("b", 1, 1, r#""string""#, false));
        s.apply(schema("a", 2, 2, r#""long""#, false));
        assert_eq!(s.subjects(false).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.uses(1), [("a", 1, false), ("b", 1, false)]);
        assert_eq!(s.exact_id(SchemaType::Avro, r#""long""#, &[]), Some(2));
        // Soft delete, then hard delete.
        s.apply(schema("b", 1, 1, r#""string""#, true));
        assert_eq!(s.subjects(false).collect::<Vec<_>>(), ["a"]);
        assert_eq!(s.subjects(true).collect::<Vec<_>>(), ["a", "b"]);
        s.apply(Record::SchemaDeleted {
            subject: "b".into(),
            version: 1,
        });
        assert_eq!(s.subjects(true).collect::<Vec<_>>(), ["a"]);
        // Ids stay: a hard-deleted schema's id is never handed out again.
        assert_eq!(s.max_id(), 2);
        assert!(s.schema(1).is_some());
    }

    #[test]
    fn references_resolve_dependencies_first_and_refuse_missing_ones() {
        let mut s = State::default();
        s.apply(schema(
            "addr",
            1,
            1,
            r#"{"type":"record","name":"Addr","fields":[{"name":"city","type":"string"}]}"#,
            false,
        ));
        s.apply(Record::Schema(SchemaValue {
            subject: "user".into(),
            version: 1,
            id: 2,
            schema_type: SchemaType::Avro,
            references: vec![Reference {
                name: "Addr".into(),
                subject: "addr".into(),
                version: 1,
            }],
            schema: r#"{"type":"record","name":"User","fields":[{"name":"home","type":"Addr"}]}"#
                .into(),
            deleted: false,
        }));
        let parsed = s.parsed(s.schema(2).unwrap()).unwrap();
        assert!(parsed.canonical().contains("city"));
        assert_eq!(s.referenced_by("addr", 1), [2]);
        let missing = Reference {
            name: "X".into(),
            subject: "nope".into(),
            version: 1,
        };
        assert!(s.resolve(&[missing]).unwrap_err().contains("nope"));
    }

    #[test]
    fn configs_and_modes_are_set_and_removed() {
        let mut s = State::default();
        s.apply(Record::Config {
            subject: Some("x".into()),
            level: Some(Compatibility::None),
        });
        s.apply(Record::Mode {
            subject: None,
            mode: Some(Mode::Readonly),
        });
        assert_eq!(s.config(Some("x")), Some(Compatibility::None));
        assert_eq!(s.config(None), None);
        assert_eq!(s.mode(None), Some(Mode::Readonly));
        s.apply(Record::Config {
            subject: Some("x".into()),
            level: None,
        });
        assert_eq!(s.config(Some("x")), None);
    }
}
