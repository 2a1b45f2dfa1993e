//! The registry's operations, as the REST API and the broker call them.
//!
//! Reads answer from [`State`]. Writes are serialized by one lock: each works out the
//! `_schemas` records its change needs against the current state, makes them durable through
//! the [`SchemaLog`] (the broker appends them to the topic and fsyncs it), and only then
//! applies them to the state, the same way a replay at start applies them. A write that
//! fails to reach the log changes nothing and answers 50001.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};

use crate::compat::{Compatibility, Mode};
use crate::error::RegistryError;
use crate::records::{Record, SchemaValue};
use crate::schema::{Parsed, Reference, SchemaType};
use crate::state::{State, StoredSchema};

/// A `_schemas` record as bytes: key, and value or `None` for a tombstone.
pub type EncodedRecord = (Vec<u8>, Option<Vec<u8>>);

/// Where the registry's records go: `_schemas` in the broker.
#[async_trait::async_trait]
pub trait SchemaLog: Send + Sync {
    /// Appends the records (key, value or `None` for a tombstone) and returns once they are
    /// durable.
    async fn append(&self, records: Vec<EncodedRecord>) -> Result<(), String>;
}

/// The registry's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The compatibility level of subjects without their own, while no global level is set
    /// (`schema_registry_compatibility`, BACKWARD as Confluent's).
    pub default_compatibility: Compatibility,
    /// Largest schema text accepted, in bytes.
    pub max_schema_bytes: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            default_compatibility: Compatibility::Backward,
            max_schema_bytes: 1 << 20,
        }
    }
}

/// A schema to register or look up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewSchema {
    /// Text.
    pub schema: String,
    /// Type.
    pub schema_type: SchemaType,
    /// References.
    pub references: Vec<Reference>,
    /// Id to register it under (IMPORT mode only).
    pub id: Option<i32>,
    /// Version to register it as (IMPORT mode only).
    pub version: Option<i32>,
}

/// A version of a subject with its schema.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    /// Subject.
    pub subject: String,
    /// Version.
    pub version: i32,
    /// Soft-deleted.
    pub deleted: bool,
    /// The schema.
    pub schema: Arc<StoredSchema>,
}

/// A version as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// `latest` (or -1).
    Latest,
    /// A number.
    Number(i32),
}

impl VersionSpec {
    /// Parses a path's version: `latest`, -1, or 1..2^31-1 (42202 otherwise).
    pub fn parse(text: &str) -> Result<VersionSpec, RegistryError> {
        if text.eq_ignore_ascii_case("latest") {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<i32>() {
            Ok(-1) => Ok(VersionSpec::Latest),
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::invalid_version(text)),
        }
    }
}

/// The registry.
pub struct Registry {
    settings: Settings,
    state: RwLock<State>,
    writer: tokio::sync::Mutex<()>,
    log: OnceLock<Arc<dyn SchemaLog>>,
    skipped: AtomicU64,
}

impl Registry {
    /// An empty registry; it answers 50003 until [`Registry::start`].
    pub fn new(settings: Settings) -> Registry {
        Registry {
            settings,
            state: RwLock::new(State::default()),
            writer: tokio::sync::Mutex::new(()),
            log: OnceLock::new(),
            skipped: AtomicU64::new(0),
        }
    }

    /// Applies one record of `_schemas` while it is replayed at start. An undecodable
    /// record is logged and skipped (counted in [`Registry::skipped`]): one bad record must
    /// not take every other schema offline.
    pub fn replay(&self, key: &[u8], value: Option<&[u8]>) {
        match Record::decode(key, value) {
            Ok(record) => self.write_state().apply(record),
            Err(e) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    key = %String::from_utf8_lossy(key),
                    "skipping an undecodable record of _schemas: {e}"
                );
            }
        }
    }

    /// Records skipped by [`Registry::replay`].
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Replay is done: serve, writing to `log` from now on.
    pub fn start(&self, log: Arc<dyn SchemaLog>) {
        let _ = self.log.set(log);
    }

    /// Whether [`Registry::start`] was called.
    pub fn is_started(&self) -> bool {
        self.log.get().is_some()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, State>, RegistryError> {
        if !self.is_started() {
            return Err(RegistryError::unavailable(
                "The schema registry is starting: the broker is still loading _schemas",
            ));
        }
        Ok(self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `records` durable, then applies them.
    async fn commit(&self, records: Vec<Record>) -> Result<(), RegistryError> {
        let log = self
            .log
            .get()
            .ok_or_else(|| RegistryError::unavailable("The schema registry is starting"))?;
        let encoded = records.iter().filter_map(Record::encode).collect();
        log.append(encoded).await.map_err(RegistryError::store)?;
        let mut state = self.write_state();
        for record in records {
            state.apply(record);
        }
        Ok(())
    }

    // ---- reads ----

    /// Subjects, filtered by prefix; soft-deleted ones too when `deleted`.
    pub fn subjects(&self, prefix: &str, deleted: bool) -> Result<Vec<String>, RegistryError> {
        Ok(self
            .read()?
            .subjects(deleted)
            .filter(|s| s.starts_with(prefix))
            .map(str::to_string)
            .collect())
    }

    /// A subject's versions (soft-deleted ones too when `deleted`).
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, RegistryError> {
        let state = self.read()?;
        let versions: Vec<i32> = state
            .versions(subject)
            .map(|vs| {
                vs.iter()
                    .filter(|(_, v)| deleted || !v.deleted)
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(versions)
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.read()?;
        Self::version_in(&state, subject, spec, deleted)
    }

    fn version_in(
        state: &State,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let versions = state
            .versions(subject)
            .filter(|vs| deleted || vs.values().any(|v| !v.deleted))
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let (number, v) = match spec {
            VersionSpec::Latest => versions
                .iter()
                .rev()
                .find(|(_, v)| deleted || !v.deleted)
                .map(|(n, v)| (*n, *v)),
            VersionSpec::Number(n) => versions
                .get(&n)
                .filter(|v| deleted || !v.deleted)
                .map(|v| (n, *v)),
        }
        .ok_or_else(|| match spec {
            VersionSpec::Latest => RegistryError::version_not_found("latest"),
            VersionSpec::Number(n) => RegistryError::version_not_found(n),
        })?;
        let schema = state
            .schema(v.id)
            .cloned()
            .ok_or_else(|| RegistryError::schema_not_found(v.id))?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version: number,
            deleted: v.deleted,
            schema,
        })
    }

    /// The schema with this id (while some version, live or soft-deleted, uses it).
    pub fn schema_by_id(&self, id: i32) -> Result<Arc<StoredSchema>, RegistryError> {
        let state = self.read()?;
        match state.schema(id) {
            Some(s) if state.is_used(id) => Ok(Arc::clone(s)),
            _ => Err(RegistryError::schema_not_found(id)),
        }
    }

    /// The parsed schema with this id, for decoding records.
    pub fn parsed(&self, id: i32) -> Result<Arc<Parsed>, RegistryError> {
        let state = self.read()?;
        let stored = match state.schema(id) {
            Some(s) if state.is_used(id) => s,
            _ => return Err(RegistryError::schema_not_found(id)),
        };
        state.parsed(stored).map_err(RegistryError::invalid_schema)
    }

    /// The (subject, version) pairs that use an id (soft-deleted ones when `deleted`).
    pub fn id_versions(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>, RegistryError> {
        let state = self.read()?;
        let uses: Vec<(String, i32)> = state
            .uses(id)
            .into_iter()
            .filter(|(_, _, d)| deleted || !d)
            .map(|(s, v, _)| (s.to_string(), v))
            .collect();
        if uses.is_empty() {
            return Err(RegistryError::schema_not_found(id));
        }
        Ok(uses)
    }

    /// Every stored version (the `/schemas` listing).
    pub fn all_versions(
        &self,
        prefix: &str,
        deleted: bool,
        latest_only: bool,
    ) -> Result<Vec<SubjectVersion>, RegistryError> {
        let state = self.read()?;
        let mut out = Vec::new();
        for subject in state.subjects(deleted).filter(|s| s.starts_with(prefix)) {
            let Some(versions) = state.versions(subject) else {
                continue;
            };
            let live: Vec<_> = versions
                .iter()
                .filter(|(_, v)| deleted || !v.deleted)
                .collect();
            let chosen = if latest_only {
                live.last().map(|x| vec![*x]).unwrap_or_default()
            } else {
                live
            };
            for (n, v) in chosen {
                if let Some(schema) = state.schema(v.id) {
                    out.push(SubjectVersion {
                        subject: subject.to_string(),
                        version: *n,
                        deleted: v.deleted,
                        schema: Arc::clone(schema),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Ids of live schemas referencing a version.
    pub fn referenced_by(
        &self,
        subject: &str,
        spec: VersionSpec,
    ) -> Result<Vec<i32>, RegistryError> {
        let state = self.read()?;
        let v = Self::version_in(&state, subject, spec, true)?;
        Ok(state.referenced_by(subject, v.version))
    }

    /// Parses a schema of a request with its references (42201 when it is invalid).
    fn parse_new(&self, state: &State, new: &NewSchema) -> Result<Parsed, RegistryError> {
        if new.schema.len() > self.settings.max_schema_bytes {
            return Err(RegistryError::invalid_schema(format!(
                "of {} bytes: the limit is {} bytes",
                new.schema.len(),
                self.settings.max_schema_bytes
            )));
        }
        let deps = state
            .resolve(&new.references)
            .map_err(RegistryError::invalid_schema)?;
        Parsed::parse(new.schema_type, &new.schema, &deps).map_err(RegistryError::invalid_schema)
    }

    /// The stored schema equal to `new` (same type and references, same canonical text).
    fn find_same(state: &State, new: &NewSchema, parsed: &Parsed) -> Option<i32> {
        if let Some(id) = state.exact_id(new.schema_type, &new.schema, &new.references) {
            return Some(id);
        }
        let canonical = parsed.canonical();
        state
            .schemas()
            .filter(|s| s.schema_type == new.schema_type && s.references == new.references)
            .find(|s| state.canonical(s).as_deref() == Some(canonical.as_str()))
            .map(|s| s.id)
    }

    /// The live version of `subject` holding the same schema as `new`.
    pub fn lookup(
        &self,
        subject: &str,
        new: &NewSchema,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.read()?;
        let versions = state
            .versions(subject)
            .filter(|vs| deleted || vs.values().any(|v| !v.deleted))
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let parsed = self.parse_new(&state, new)?;
        let id = Self::find_same(&state, new, &parsed)
            .ok_or_else(|| RegistryError::schema_not_found("not found"))?;
        let (version, v) = versions
            .iter()
            .rev()
            .find(|(_, v)| v.id == id && (deleted || !v.deleted))
            .ok_or_else(|| RegistryError::schema_not_found("not found"))?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version: *version,
            deleted: v.deleted,
            schema: Arc::clone(
                state
                    .schema(id)
                    .ok_or_else(|| RegistryError::schema_not_found(id))?,
            ),
        })
    }

    /// The compatibility level in force for a subject.
    fn level_in(&self, state: &State, subject: &str) -> Compatibility {
        state
            .config(Some(subject))
            .or(state.config(None))
            .unwrap_or(self.settings.default_compatibility)
    }

    /// The mode in force for a subject.
    fn mode_in(state: &State, subject: Option<&str>) -> Mode {
        let global = state.mode(None).unwrap_or_default();
        if global == Mode::ReadonlyOverride {
            return global;
        }
        subject.and_then(|s| state.mode(Some(s))).unwrap_or(global)
    }

    fn check_writable(state: &State, subject: &str) -> Result<Mode, RegistryError> {
        match Self::mode_in(state, Some(subject)) {
            Mode::Readonly | Mode::ReadonlyOverride => Err(RegistryError::not_permitted(format!(
                "Subject {subject} is in read-only mode"
            ))),
            mode => Ok(mode),
        }
    }

    /// Why `new` is incompatible with the subject's versions at its level (empty: it is
    /// compatible). `against`: one version instead of what the level says.
    pub fn compatibility_errors(
        &self,
        subject: &str,
        against: Option<VersionSpec>,
        new: &NewSchema,
    ) -> Result<Vec<String>, RegistryError> {
        let state = self.read()?;
        let parsed = self.parse_new(&state, new)?;
        let level = self.level_in(&state, subject);
        let previous = match against {
            Some(spec) => {
                let v = Self::version_in(&state, subject, spec, false)?;
                vec![(v.version, v.schema)]
            }
            None => Self::live_schemas(&state, subject),
        };
        Self::errors_against(&state, level, &parsed, &previous)
    }

    fn live_schemas(state: &State, subject: &str) -> Vec<(i32, Arc<StoredSchema>)> {
        state
            .versions(subject)
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.deleted)
            .filter_map(|(n, v)| state.schema(v.id).map(|s| (*n, Arc::clone(s))))
            .collect()
    }

    fn errors_against(
        state: &State,
        level: Compatibility,
        parsed: &Parsed,
        previous: &[(i32, Arc<StoredSchema>)],
    ) -> Result<Vec<String>, RegistryError> {
        if level == Compatibility::None || previous.is_empty() {
            return Ok(Vec::new());
        }
        let needed: &[(i32, Arc<StoredSchema>)] = if level.transitive() {
            previous
        } else {
            &previous[previous.len() - 1..]
        };
        let mut parsed_previous = Vec::with_capacity(needed.len());
        for (version, stored) in needed {
            let p = state.parsed(stored).map_err(|e| {
                RegistryError::invalid_schema(format!(
                    "(version {version} of the subject no longer parses: {e})"
                ))
            })?;
            if p.schema_type() != parsed.schema_type() {
                return Ok(vec![format!(
                    "Incompatible schema type: version {version} is {} and the new schema is {}",
                    p.schema_type().as_str(),
                    parsed.schema_type().as_str()
                )]);
            }
            parsed_previous.push((*version, p));
        }
        let refs: Vec<(i32, &Parsed)> = parsed_previous.iter().map(|(v, p)| (*v, &**p)).collect();
        Ok(level.errors(parsed, &refs))
    }

    // ---- writes ----

    /// Registers `new` under `subject`: its existing version if the subject already holds
    /// the same schema, else a new version after the compatibility check (409 when it
    /// fails), with the id the same schema has anywhere in the registry or a new one.
    pub async fn register(
        &self,
        subject: &str,
        new: NewSchema,
    ) -> Result<SubjectVersion, RegistryError> {
        if subject.is_empty() || subject.chars().any(char::is_control) {
            return Err(RegistryError::bad_request(format!(
                "invalid subject name {subject:?}"
            )));
        }
        let _writer = self.writer.lock().await;
        let record = {
            let state = self.read()?;
            let mode = Self::check_writable(&state, subject)?;
            if mode != Mode::Import && (new.id.is_some() || new.version.is_some()) {
                return Err(RegistryError::not_permitted(format!(
                    "Subject {subject} is not in import mode: ids and versions are assigned by the registry"
                )));
            }
            let parsed = self.parse_new(&state, &new)?;
            let same = Self::find_same(&state, &new, &parsed);
            // Already registered under this subject: that version, nothing written.
            if let Some(id) = same
                && new.id.is_none_or(|wanted| wanted == id)
                && let Some(versions) = state.versions(subject)
                && let Some((version, v)) = versions
                    .iter()
                    .rev()
                    .find(|(_, v)| v.id == id && !v.deleted)
                && new.version.is_none_or(|wanted| wanted == *version)
            {
                return Ok(SubjectVersion {
                    subject: subject.to_string(),
                    version: *version,
                    deleted: v.deleted,
                    schema: Arc::clone(
                        state
                            .schema(id)
                            .ok_or_else(|| RegistryError::schema_not_found(id))?,
                    ),
                });
            }
            if mode != Mode::Import {
                let level = self.level_in(&state, subject);
                let previous = Self::live_schemas(&state, subject);
                let errors = Self::errors_against(&state, level, &parsed, &previous)?;
                if !errors.is_empty() {
                    return Err(RegistryError::incompatible(subject, &errors));
                }
            }
            let id = match new.id {
                Some(wanted) => {
                    if let Some(existing) = state.schema(wanted)
                        && same != Some(wanted)
                    {
                        return Err(RegistryError::not_permitted(format!(
                            "Overwrite new schema with id {} is not permitted: it is already a different schema",
                            existing.id
                        )));
                    }
                    if wanted < 1 {
                        return Err(RegistryError::bad_request("schema ids start at 1"));
                    }
                    wanted
                }
                None => match same {
                    Some(id) => id,
                    None => state.max_id().checked_add(1).ok_or_else(|| {
                        RegistryError::store("every schema id up to 2^31-1 is taken")
                    })?,
                },
            };
            let last = state
                .versions(subject)
                .and_then(|vs| vs.keys().next_back().copied())
                .unwrap_or(0);
            let version = match new.version {
                Some(wanted) if wanted >= 1 => {
                    if state
                        .versions(subject)
                        .is_some_and(|vs| vs.contains_key(&wanted))
                    {
                        return Err(RegistryError::not_permitted(format!(
                            "Subject {subject} already has version {wanted}"
                        )));
                    }
                    wanted
                }
                Some(wanted) => return Err(RegistryError::invalid_version(&wanted.to_string())),
                None => last.checked_add(1).ok_or_else(|| {
                    RegistryError::store(format!("subject {subject} has no versions left"))
                })?,
            };
            SchemaValue {
                subject: subject.to_string(),
                version,
                id,
                schema_type: new.schema_type,
                references: new.references.clone(),
                schema: new.schema.clone(),
                deleted: false,
            }
        };
        let (version, id) = (record.version, record.id);
        self.commit(vec![Record::Schema(record)]).await?;
        tracing::info!(subject, version, id, "schema registered");
        self.version(subject, VersionSpec::Number(version), false)
    }

    /// Deletes a subject: soft (its versions marked deleted) or, once soft-deleted,
    /// permanently. Returns the versions deleted.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let _writer = self.writer.lock().await;
        let records = {
            let state = self.read()?;
            Self::check_writable(&state, subject)?;
            let versions = state
                .versions(subject)
                .ok_or_else(|| RegistryError::subject_not_found(subject))?;
            let live: Vec<i32> = versions
                .iter()
                .filter(|(_, v)| !v.deleted)
                .map(|(n, _)| *n)
                .collect();
            for n in &live {
                let by = state.referenced_by(subject, *n);
                if !by.is_empty() {
                    return Err(RegistryError::reference_exists(subject, *n, &by));
                }
            }
            if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::subject_not_soft_deleted(subject));
                }
                let mut records: Vec<Record> = versions
                    .keys()
                    .map(|n| Record::SchemaDeleted {
                        subject: subject.to_string(),
                        version: *n,
                    })
                    .collect();
                if state.config(Some(subject)).is_some() {
                    records.push(Record::Config {
                        subject: Some(subject.to_string()),
                        level: None,
                    });
                }
                if state.mode(Some(subject)).is_some() {
                    records.push(Record::Mode {
                        subject: Some(subject.to_string()),
                        mode: None,
                    });
                }
                records
            } else {
                if live.is_empty() {
                    return Err(RegistryError::subject_soft_deleted(subject));
                }
                live.iter()
                    .filter_map(|n| Self::soft_deleted(&state, subject, *n))
                    .collect()
            }
        };
        let deleted: Vec<i32> = records
            .iter()
            .filter_map(|r| match r {
                Record::Schema(v) => Some(v.version),
                Record::SchemaDeleted { version, .. } => Some(*version),
                _ => None,
            })
            .collect();
        self.commit(records).await?;
        tracing::info!(subject, permanent, versions = ?deleted, "subject deleted");
        Ok(deleted)
    }

    fn soft_deleted(state: &State, subject: &str, version: i32) -> Option<Record> {
        let v = state.versions(subject)?.get(&version)?;
        let schema = state.schema(v.id)?;
        Some(Record::Schema(SchemaValue {
            subject: subject.to_string(),
            version,
            id: v.id,
            schema_type: schema.schema_type,
            references: schema.references.clone(),
            schema: schema.schema.clone(),
            deleted: true,
        }))
    }

    /// Deletes one version: soft, or permanently once soft-deleted. Returns its number.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let _writer = self.writer.lock().await;
        let (version, record) = {
            let state = self.read()?;
            Self::check_writable(&state, subject)?;
            let versions = state
                .versions(subject)
                .ok_or_else(|| RegistryError::subject_not_found(subject))?;
            let (number, v) = match spec {
                VersionSpec::Latest => versions
                    .iter()
                    .rev()
                    .find(|(_, v)| permanent || !v.deleted)
                    .map(|(n, v)| (*n, *v)),
                VersionSpec::Number(n) => versions.get(&n).map(|v| (n, *v)),
            }
            .ok_or_else(|| match spec {
                VersionSpec::Latest => RegistryError::version_not_found("latest"),
                VersionSpec::Number(n) => RegistryError::version_not_found(n),
            })?;
            let by = state.referenced_by(subject, number);
            if !by.is_empty() {
                return Err(RegistryError::reference_exists(subject, number, &by));
            }
            let record = if permanent {
                if !v.deleted {
                    return Err(RegistryError::version_not_soft_deleted(subject, number));
                }
                Record::SchemaDeleted {
                    subject: subject.to_string(),
                    version: number,
                }
            } else {
                if v.deleted {
                    return Err(RegistryError::version_soft_deleted(subject, number));
                }
                Self::soft_deleted(&state, subject, number)
                    .ok_or_else(|| RegistryError::version_not_found(number))?
            };
            (number, record)
        };
        self.commit(vec![record]).await?;
        tracing::info!(subject, version, permanent, "schema version deleted");
        Ok(version)
    }

    /// The compatibility level of a subject (`None`: the global one). A subject without
    /// its own answers the global level when `default_to_global`, else 40408.
    pub fn compatibility(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Compatibility, RegistryError> {
        let state = self.read()?;
        let global = state
            .config(None)
            .unwrap_or(self.settings.default_compatibility);
        match subject {
            None => Ok(global),
            Some(s) => match state.config(Some(s)) {
                Some(level) => Ok(level),
                None if default_to_global => Ok(global),
                None => Err(RegistryError::subject_level_config_not_found(s)),
            },
        }
    }

    /// Sets a compatibility level (`None`: the global one).
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<(), RegistryError> {
        let _writer = self.writer.lock().await;
        {
            let state = self.read()?;
            if let Some(s) = subject {
                Self::check_writable(&state, s)?;
            } else if Self::mode_in(&state, None) == Mode::ReadonlyOverride {
                return Err(RegistryError::not_permitted(
                    "The registry is in read-only mode",
                ));
            }
        }
        self.commit(vec![Record::Config {
            subject: subject.map(str::to_string),
            level: Some(level),
        }])
        .await
    }

    /// Removes a compatibility level; returns the level removed (for the global one:
    /// the level in force before, which reverts to the default).
    pub async fn delete_compatibility(
        &self,
        subject: Option<&str>,
    ) -> Result<Compatibility, RegistryError> {
        let _writer = self.writer.lock().await;
        let previous = {
            let state = self.read()?;
            match subject {
                Some(s) => {
                    if state.versions(s).is_none() && state.config(Some(s)).is_none() {
                        return Err(RegistryError::subject_not_found(s));
                    }
                    state
                        .config(Some(s))
                        .ok_or_else(|| RegistryError::subject_level_config_not_found(s))?
                }
                None => state
                    .config(None)
                    .unwrap_or(self.settings.default_compatibility),
            }
        };
        self.commit(vec![Record::Config {
            subject: subject.map(str::to_string),
            level: None,
        }])
        .await?;
        Ok(previous)
    }

    /// The mode of a subject (`None`: the global one); 40409 for a subject without its own
    /// unless `default_to_global`.
    pub fn mode(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Mode, RegistryError> {
        let state = self.read()?;
        match subject {
            None => Ok(state.mode(None).unwrap_or_default()),
            Some(s) => match state.mode(Some(s)) {
                Some(m) => Ok(m),
                None if default_to_global => Ok(state.mode(None).unwrap_or_default()),
                None => Err(RegistryError::subject_level_mode_not_found(s)),
            },
        }
    }

    /// Sets a mode. IMPORT needs an empty registry (or subject) unless `force`.
    pub async fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<(), RegistryError> {
        let _writer = self.writer.lock().await;
        {
            let state = self.read()?;
            if mode == Mode::Import && !force {
                let used = match subject {
                    Some(s) => state.versions(s).is_some(),
                    None => state.subjects(true).next().is_some(),
                };
                if used {
                    return Err(RegistryError::not_permitted(
                        "Cannot import since found existing subjects",
                    ));
                }
            }
        }
        self.commit(vec![Record::Mode {
            subject: subject.map(str::to_string),
            mode: Some(mode),
        }])
        .await
    }

    /// Removes a subject's mode; returns the mode removed.
    pub async fn delete_mode(&self, subject: &str) -> Result<Mode, RegistryError> {
        let _writer = self.writer.lock().await;
        let previous = self
            .read()?
            .mode(Some(subject))
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        self.commit(vec![Record::Mode {
            subject: Some(subject.to_string()),
            mode: None,
        }])
        .await?;
        Ok(previous)
    }
}

pub mod memory {
    //! A [`SchemaLog`] in memory, for tests: records kept in order, replayable, with a
    //! switch that makes appends fail.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Records in append order.
    #[derive(Default)]
    pub struct MemoryLog {
        records: Mutex<Vec<EncodedRecord>>,
        /// Appends fail while set.
        pub fail: AtomicBool,
    }

    impl MemoryLog {
        /// Everything appended.
        pub fn records(&self) -> Vec<EncodedRecord> {
            self.records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        }

        /// A registry with this log's records replayed and this log to write to.
        pub fn reopen(self: &Arc<Self>, settings: Settings) -> Registry {
            let registry = Registry::new(settings);
            for (k, v) in self.records() {
                registry.replay(&k, v.as_deref());
            }
            registry.start(Arc::clone(self) as Arc<dyn SchemaLog>);
            registry
        }
    }

    #[async_trait::async_trait]
    impl SchemaLog for MemoryLog {
        async fn append(&self, records: Vec<EncodedRecord>) -> Result<(), String> {
            if self.fail.load(Ordering::SeqCst) {
                return Err("the log is failing".into());
            }
            self.records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(records);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
