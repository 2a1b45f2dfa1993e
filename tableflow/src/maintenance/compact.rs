//! Small-file compaction and manifest merging: the "replace" snapshot producer the `iceberg`
//! crate does not have.
//!
//! A table committed every few seconds gains a data file per table partition and a manifest
//! per commit. A round here:
//! 1. plans: per table partition (partition spec and value), the live data files smaller than
//!    `small_file_bytes`, oldest first; a partition with at least `min_files` of them is
//!    rewritten (at most [`MAX_GROUP_BYTES`] of input per partition and round);
//! 2. rewrites each group into files of `target_file_bytes` (fresh names), reading one input
//!    file at a time, and checks that the rows read equal the rows the inputs claim and the
//!    rows written;
//! 3. commits one snapshot with operation `replace`: the rewritten files' entries marked
//!    deleted, the new files added, every other live entry carried as existing, all in merged
//!    manifests (so the manifest list shrinks to a handful of files), with the newest
//!    `floe.next-offsets` copied unchanged: a replace changes no row, so the table's offsets
//!    do not move. The commit requires the branch still to be where the round read it; when
//!    the materializer committed meanwhile, the manifests are rebuilt on the new snapshot
//!    (its files only add to what was read) and the commit retried, reusing the files already
//!    rewritten.
//!
//! With nothing to rewrite but more than [`MAX_MANIFESTS`] manifests, the round only merges
//! manifests. Tables with delete files are left alone (rewritten rows would escape deletes
//! with older sequence numbers), as are format v1 and v3 tables (Floe creates v2).
//!
//! Crash safety: every file a round writes has a fresh name, and nothing references it until
//! the one catalog swap that commits the snapshot. A kill -9 anywhere leaves the table exactly
//! as before or exactly as after; what a dead round wrote is an orphan for
//! [`super::orphans`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, FormatVersion, ManifestContentType, ManifestList,
    ManifestListWriter, ManifestStatus, ManifestWriterBuilder, Operation, PartitionKey, Snapshot,
    SnapshotReference, SnapshotRetention, Summary,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{ErrorKind, TableIdent, TableRequirement, TableUpdate};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::catalog::FloeCatalog;
use crate::error::TableflowError;
use crate::error::iceberg_error as ice;
use crate::sink::NEXT_OFFSETS_PROPERTY;

/// Input bytes rewritten per table partition and round: bounds the time a round takes.
pub const MAX_GROUP_BYTES: u64 = 1 << 30;
/// Manifests a snapshot may have before a round merges them even with no file to rewrite.
pub const MAX_MANIFESTS: usize = 64;
/// Entries per merged manifest.
const ENTRIES_PER_MANIFEST: usize = 20_000;
/// Commit attempts of one round before it gives up (the next round starts over).
const COMMIT_ATTEMPTS: usize = 8;

/// What decides which files are rewritten.
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// Files below this size are candidates.
    pub small_file_bytes: u64,
    /// Candidates a table partition needs before it is rewritten.
    pub min_files: usize,
    /// Size of the files written.
    pub target_file_bytes: u64,
}

/// What a round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Data files replaced.
    pub files_rewritten: usize,
    /// Data files written in their place.
    pub files_written: usize,
    /// Rows moved (the same number before and after).
    pub rows: u64,
    /// Manifests of the current snapshot before and after the round.
    pub manifests_before: usize,
    /// See `manifests_before`.
    pub manifests_after: usize,
    /// Live data files after the round.
    pub data_files_after: usize,
    /// Commits refused because the table moved, then retried.
    pub conflicts: usize,
}

/// A live entry of the current snapshot.
#[derive(Clone)]
struct LiveEntry {
    spec_id: i32,
    file: DataFile,
    snapshot_id: i64,
    sequence_number: i64,
    file_sequence_number: Option<i64>,
}

/// The live data files of a table's current snapshot, with the manifests they came from.
struct LiveFiles {
    snapshot_id: i64,
    entries: Vec<LiveEntry>,
    manifests: usize,
    has_deletes: bool,
}

async fn live_files(table: &Table) -> Result<Option<LiveFiles>, TableflowError> {
    let metadata = table.metadata();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(None);
    };
    let name = table.identifier().to_string();
    let bytes = table
        .file_io()
        .new_input(snapshot.manifest_list())
        .map_err(ice(format!("open the manifest list of {name}")))?
        .read()
        .await
        .map_err(ice(format!("read the manifest list of {name}")))?;
    let list = ManifestList::parse_with_version(&bytes, metadata.format_version())
        .map_err(ice(format!("parse the manifest list of {name}")))?;
    let mut out = LiveFiles {
        snapshot_id: snapshot.snapshot_id(),
        entries: Vec::new(),
        manifests: list.entries().len(),
        has_deletes: false,
    };
    for manifest in list.entries() {
        if manifest.content == ManifestContentType::Deletes {
            out.has_deletes = true;
            continue;
        }
        let loaded = manifest
            .load_manifest(table.file_io())
            .await
            .map_err(ice(format!("read manifest {}", manifest.manifest_path)))?;
        for entry in loaded.entries() {
            if !entry.is_alive() {
                continue;
            }
            if entry.data_file().content_type() != DataContentType::Data {
                out.has_deletes = true;
                continue;
            }
            let Some(sequence_number) = entry.sequence_number() else {
                return Err(TableflowError::Internal(format!(
                    "manifest {} has a live entry without a sequence number",
                    manifest.manifest_path
                )));
            };
            out.entries.push(LiveEntry {
                spec_id: manifest.partition_spec_id,
                file: entry.data_file().clone(),
                snapshot_id: entry.snapshot_id().unwrap_or(manifest.added_snapshot_id),
                sequence_number,
                file_sequence_number: entry.file_sequence_number,
            });
        }
    }
    Ok(Some(out))
}

/// Groups to rewrite: per (spec, partition value), small files oldest first.
fn plan(live: &LiveFiles, policy: &CompactionPolicy) -> Vec<Vec<LiveEntry>> {
    let mut by_partition: BTreeMap<(i32, String), Vec<LiveEntry>> = BTreeMap::new();
    for e in &live.entries {
        if e.file.file_format() != DataFileFormat::Parquet
            || e.file.file_size_in_bytes() >= policy.small_file_bytes
        {
            continue;
        }
        // Struct has no Ord; its JSON-ish debug form identifies the partition value.
        let key = (e.spec_id, format!("{:?}", e.file.partition()));
        by_partition.entry(key).or_default().push(e.clone());
    }
    let mut groups = Vec::new();
    for (_, mut files) in by_partition {
        if files.len() < policy.min_files.max(2) {
            continue;
        }
        files.sort_by_key(|e| (e.sequence_number, e.file.file_path().to_string()));
        let mut total = 0u64;
        let mut group = Vec::new();
        for f in files {
            if total >= MAX_GROUP_BYTES {
                break;
            }
            total += f.file.file_size_in_bytes();
            group.push(f);
        }
        if group.len() >= 2 {
            groups.push(group);
        }
    }
    groups
}

/// Rewrites one group into target-size files; returns the new files and the rows moved.
async fn rewrite_group(
    table: &Table,
    group: &[LiveEntry],
    target_file_bytes: u64,
) -> Result<(Vec<DataFile>, u64), TableflowError> {
    let metadata = table.metadata();
    let name = table.identifier().to_string();
    let schema = metadata.current_schema().clone();
    let arrow_schema = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema).map_err(ice("convert the table schema"))?,
    );
    let spec_id = group[0].spec_id;
    let spec = metadata
        .partition_spec_by_id(spec_id)
        .ok_or_else(|| TableflowError::Internal(format!("{name}: no partition spec {spec_id}")))?
        .as_ref()
        .clone();
    let partition_key = if spec.is_unpartitioned() {
        None
    } else {
        Some(PartitionKey::new(
            spec.clone(),
            schema.clone(),
            group[0].file.partition().clone(),
        ))
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let location = DefaultLocationGenerator::new(metadata).map_err(ice("data file location"))?;
    let names = DefaultFileNameGenerator::new(
        format!("floe-compact-{}", uuid::Uuid::new_v4()),
        None,
        DataFileFormat::Parquet,
    );
    let rolling = RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(props, schema.clone()),
        usize::try_from(target_file_bytes).unwrap_or(usize::MAX),
        table.file_io().clone(),
        location,
        names,
    );
    let mut writer = DataFileWriterBuilder::new(rolling)
        .build(partition_key)
        .await
        .map_err(ice(format!("open a compaction writer for {name}")))?;
    let claimed: u64 = group.iter().map(|e| e.file.record_count()).sum();
    let mut read_rows = 0u64;
    for entry in group {
        let path = entry.file.file_path();
        let bytes: Bytes = table
            .file_io()
            .new_input(path)
            .map_err(ice(format!("open {path}")))?
            .read()
            .await
            .map_err(ice(format!("read {path}")))?;
        // Decoding is CPU work on at most `small_file_bytes` of input: off the runtime's
        // workers.
        let target = arrow_schema.clone();
        let file = path.to_string();
        let batches = tokio::task::spawn_blocking(move || decode_parquet(&file, bytes, &target))
            .await
            .map_err(|e| TableflowError::Internal(format!("parquet decode task: {e}")))??;
        for batch in batches {
            read_rows += batch.num_rows() as u64;
            writer
                .write(batch)
                .await
                .map_err(ice(format!("write compacted rows of {name}")))?;
        }
    }
    let written = writer
        .close()
        .await
        .map_err(ice(format!("close compacted files of {name}")))?;
    let written_rows: u64 = written.iter().map(|f| f.record_count()).sum();
    if read_rows != claimed || written_rows != claimed {
        delete_files(table, written.iter().map(|f| f.file_path().to_string())).await;
        return Err(TableflowError::Internal(format!(
            "{name}: compaction row counts differ (manifests say {claimed}, read {read_rows}, wrote {written_rows}); nothing committed"
        )));
    }
    Ok((written, claimed))
}

/// The rows of one Parquet data file, with the table's current Arrow schema.
fn decode_parquet(
    path: &str,
    bytes: Bytes,
    target: &arrow_schema::SchemaRef,
) -> Result<Vec<RecordBatch>, TableflowError> {
    let bad = |reason: String| TableflowError::Internal(format!("cannot compact {path}: {reason}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| bad(e.to_string()))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        // Same columns, same types: only the field metadata may differ. A file of another
        // schema (a later schema change) fails here and its group is left alone.
        let batch = RecordBatch::try_new(target.clone(), batch.columns().to_vec())
            .map_err(|e| bad(format!("its schema is not the table's current one: {e}")))?;
        out.push(batch);
    }
    Ok(out)
}

async fn delete_files(table: &Table, paths: impl Iterator<Item = String>) {
    for p in paths {
        if let Err(e) = table.file_io().delete(&p).await {
            tracing::debug!(file = %p, error = %e, "cannot delete an uncommitted compaction file; orphan cleanup will");
        }
    }
}

/// How a commit failed.
enum CommitFailure {
    /// The commit certainly did not land (what it wrote is deleted again).
    NotLanded(TableflowError),
    /// Whether it landed is unknown: delete nothing it could reference.
    Unknown(TableflowError),
}

/// Writes the manifests and manifest list of a replace snapshot on `base` and commits it.
async fn commit_replace(
    catalog: &FloeCatalog,
    base: &Table,
    live: &LiveFiles,
    replaced: &HashSet<String>,
    added: &[(i32, DataFile)],
) -> Result<Table, CommitFailure> {
    let metadata = base.metadata();
    let name = base.identifier().to_string();
    let file_io = base.file_io();
    let snapshot_id = loop {
        let id = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64;
        if id > 0 && metadata.snapshot_by_id(id).is_none() {
            break id;
        }
    };
    let sequence_number = metadata.next_sequence_number();
    let schema = metadata.current_schema().clone();
    let meta_dir = format!("{}/metadata", metadata.location().trim_end_matches('/'));
    let mut written_paths: Vec<String> = Vec::new();
    let mut manifests = Vec::new();

    // Entries per partition spec: carried (existing), replaced (deleted), added.
    let mut by_spec: BTreeMap<i32, Vec<(ManifestStatus, LiveEntry)>> = BTreeMap::new();
    let mut found = 0usize;
    for e in &live.entries {
        let status = if replaced.contains(e.file.file_path()) {
            found += 1;
            ManifestStatus::Deleted
        } else {
            ManifestStatus::Existing
        };
        by_spec
            .entry(e.spec_id)
            .or_default()
            .push((status, e.clone()));
    }
    if found != replaced.len() {
        return Err(CommitFailure::NotLanded(TableflowError::Internal(format!(
            "{name}: {} of the files to replace are no longer live",
            replaced.len() - found
        ))));
    }
    for (spec_id, file) in added {
        by_spec.entry(*spec_id).or_default().push((
            ManifestStatus::Added,
            LiveEntry {
                spec_id: *spec_id,
                file: file.clone(),
                snapshot_id,
                sequence_number,
                file_sequence_number: Some(sequence_number),
            },
        ));
    }
    let result: Result<Table, TableflowError> = async {
        for (spec_id, entries) in &by_spec {
            let spec = metadata
                .partition_spec_by_id(*spec_id)
                .ok_or_else(|| {
                    TableflowError::Internal(format!("{name}: no partition spec {spec_id}"))
                })?
                .as_ref()
                .clone();
            for chunk in entries.chunks(ENTRIES_PER_MANIFEST) {
                let path = format!("{meta_dir}/floe-{}-m.avro", uuid::Uuid::new_v4());
                written_paths.push(path.clone());
                let output = file_io
                    .new_output(&path)
                    .map_err(ice(format!("create {path}")))?;
                let mut writer = ManifestWriterBuilder::new(
                    output,
                    Some(snapshot_id),
                    schema.clone(),
                    spec.clone(),
                )
                .build_v2_data();
                for (status, e) in chunk {
                    let r = match status {
                        ManifestStatus::Added => writer.add_file(e.file.clone(), sequence_number),
                        ManifestStatus::Deleted => writer.add_delete_file(
                            e.file.clone(),
                            e.sequence_number,
                            e.file_sequence_number,
                        ),
                        ManifestStatus::Existing => writer.add_existing_file(
                            e.file.clone(),
                            e.snapshot_id,
                            e.sequence_number,
                            e.file_sequence_number,
                        ),
                    };
                    r.map_err(ice(format!("add an entry to {path}")))?;
                }
                manifests.push(
                    writer
                        .write_manifest_file()
                        .await
                        .map_err(ice(format!("write manifest {path}")))?,
                );
            }
        }
        let list_path = format!(
            "{meta_dir}/snap-{snapshot_id}-1-{}.avro",
            uuid::Uuid::new_v4()
        );
        written_paths.push(list_path.clone());
        let out = file_io
            .new_output(&list_path)
            .map_err(ice(format!("create {list_path}")))?
            .writer()
            .await
            .map_err(ice(format!("create {list_path}")))?;
        let mut list =
            ManifestListWriter::v2(out, snapshot_id, Some(live.snapshot_id), sequence_number);
        list.add_manifests(manifests.into_iter())
            .map_err(ice(format!("write {list_path}")))?;
        list.close()
            .await
            .map_err(ice(format!("write {list_path}")))?;

        let mut summary = HashMap::new();
        let deleted: Vec<&LiveEntry> = live
            .entries
            .iter()
            .filter(|e| replaced.contains(e.file.file_path()))
            .collect();
        let total_files = live.entries.len() - deleted.len() + added.len();
        let total_rows: u64 = live.entries.iter().map(|e| e.file.record_count()).sum();
        let total_size: u64 = live
            .entries
            .iter()
            .filter(|e| !replaced.contains(e.file.file_path()))
            .map(|e| e.file.file_size_in_bytes())
            .chain(added.iter().map(|(_, f)| f.file_size_in_bytes()))
            .sum();
        let mut put = |k: &str, v: String| {
            summary.insert(k.to_string(), v);
        };
        put("added-data-files", added.len().to_string());
        put("deleted-data-files", deleted.len().to_string());
        put(
            "added-records",
            added
                .iter()
                .map(|(_, f)| f.record_count())
                .sum::<u64>()
                .to_string(),
        );
        put(
            "deleted-records",
            deleted
                .iter()
                .map(|e| e.file.record_count())
                .sum::<u64>()
                .to_string(),
        );
        put(
            "added-files-size",
            added
                .iter()
                .map(|(_, f)| f.file_size_in_bytes())
                .sum::<u64>()
                .to_string(),
        );
        put(
            "removed-files-size",
            deleted
                .iter()
                .map(|e| e.file.file_size_in_bytes())
                .sum::<u64>()
                .to_string(),
        );
        put("total-data-files", total_files.to_string());
        put("total-records", total_rows.to_string());
        put("total-files-size", total_size.to_string());
        put("total-delete-files", "0".to_string());
        put("total-position-deletes", "0".to_string());
        put("total-equality-deletes", "0".to_string());
        if let Some(offsets) = crate::sink::newest_next_offsets(base) {
            put(NEXT_OFFSETS_PROPERTY, offsets);
        }
        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(Some(live.snapshot_id))
            .with_sequence_number(sequence_number)
            .with_timestamp_ms(super::now_ms())
            .with_manifest_list(list_path.clone())
            .with_summary(Summary {
                operation: Operation::Replace,
                additional_properties: summary,
            })
            .with_schema_id(schema.schema_id())
            .build();
        let requirements = vec![
            TableRequirement::UuidMatch {
                uuid: metadata.uuid(),
            },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: "main".to_string(),
                snapshot_id: Some(live.snapshot_id),
            },
        ];
        let updates = vec![
            TableUpdate::AddSnapshot { snapshot },
            TableUpdate::SetSnapshotRef {
                ref_name: "main".to_string(),
                reference: SnapshotReference::new(
                    snapshot_id,
                    SnapshotRetention::branch(None, None, None),
                ),
            },
        ];
        crate::faults::crash_point("compact.before_commit");
        catalog
            .commit(base.identifier(), requirements, updates)
            .await
            .map_err(ice(format!("commit a compaction of {name}")))
    }
    .await;
    let error = match result {
        Ok(table) => return Ok(table),
        Err(e) => e,
    };
    if is_conflict(&error) {
        delete_files(base, written_paths.into_iter()).await;
        return Err(CommitFailure::NotLanded(error));
    }
    // Any other failure may have come after the catalog swap (a lost connection): look.
    use iceberg::Catalog;
    match catalog.load_table(base.identifier()).await {
        Ok(now) if now.metadata().snapshot_by_id(snapshot_id).is_some() => Ok(now),
        Ok(_) => {
            delete_files(base, written_paths.into_iter()).await;
            Err(CommitFailure::NotLanded(error))
        }
        Err(_) => Err(CommitFailure::Unknown(error)),
    }
}

fn is_conflict(e: &TableflowError) -> bool {
    matches!(e, TableflowError::Iceberg { source, .. } if source.kind() == ErrorKind::CatalogCommitConflicts)
}

/// One compaction round of table `ident`; see the module docs.
pub async fn compact(
    catalog: &FloeCatalog,
    ident: &TableIdent,
    policy: &CompactionPolicy,
    writers: &super::InFlight,
) -> Result<CompactionOutcome, TableflowError> {
    use iceberg::Catalog;
    let name = ident.to_string();
    let table = catalog
        .load_table(ident)
        .await
        .map_err(ice(format!("load {name}")))?;
    if table.metadata().format_version() != FormatVersion::V2 {
        return Ok(CompactionOutcome::default());
    }
    let Some(live) = live_files(&table).await? else {
        return Ok(CompactionOutcome::default());
    };
    let mut outcome = CompactionOutcome {
        manifests_before: live.manifests,
        manifests_after: live.manifests,
        data_files_after: live.entries.len(),
        ..CompactionOutcome::default()
    };
    if live.has_deletes {
        return Ok(outcome);
    }
    let groups = plan(&live, policy);
    if groups.is_empty() && live.manifests <= MAX_MANIFESTS {
        return Ok(outcome);
    }
    let mut replaced = HashSet::new();
    let mut added: Vec<(i32, DataFile)> = Vec::new();
    for group in &groups {
        match rewrite_group(&table, group, policy.target_file_bytes).await {
            Ok((files, rows)) => {
                replaced.extend(group.iter().map(|e| e.file.file_path().to_string()));
                outcome.files_rewritten += group.len();
                outcome.files_written += files.len();
                outcome.rows += rows;
                added.extend(files.into_iter().map(|f| (group[0].spec_id, f)));
            }
            Err(e) => {
                tracing::warn!(table = %name, files = group.len(), error = %e, "cannot compact a table partition; its files stay as they are");
            }
        }
    }
    if added.is_empty() && live.manifests <= MAX_MANIFESTS {
        return Ok(outcome);
    }
    crate::faults::crash_point("compact.after_rewrite");
    // From here to the commit the topic's materializer waits: rebuilding the manifests on
    // the newest snapshot and committing takes a fraction of a second, and without the turn
    // a materializer committing every few milliseconds can win every race.
    let _turn = writers.commit_lock().await;
    let mut base = catalog
        .load_table(ident)
        .await
        .map_err(ice(format!("reload {name}")))?;
    let mut live = match live_files(&base).await? {
        Some(l) if !l.has_deletes => l,
        _ => {
            delete_files(&base, added.iter().map(|(_, f)| f.file_path().to_string())).await;
            return Ok(outcome);
        }
    };
    for attempt in 0..COMMIT_ATTEMPTS {
        match commit_replace(catalog, &base, &live, &replaced, &added).await {
            Ok(committed) => {
                if let Some(after) = live_files(&committed).await? {
                    outcome.manifests_after = after.manifests;
                    outcome.data_files_after = after.entries.len();
                }
                return Ok(outcome);
            }
            Err(CommitFailure::NotLanded(e))
                if is_conflict(&e) && attempt + 1 < COMMIT_ATTEMPTS =>
            {
                outcome.conflicts += 1;
                tracing::debug!(table = %name, attempt, "compaction commit conflicted; rebuilding on the new snapshot");
                base = catalog
                    .load_table(ident)
                    .await
                    .map_err(ice(format!("reload {name}")))?;
                live = match live_files(&base).await? {
                    Some(l) if !l.has_deletes => l,
                    _ => break,
                };
            }
            Err(CommitFailure::NotLanded(e)) => {
                delete_files(&base, added.iter().map(|(_, f)| f.file_path().to_string())).await;
                return Err(e);
            }
            Err(CommitFailure::Unknown(e)) => return Err(e),
        }
    }
    delete_files(&base, added.iter().map(|(_, f)| f.file_path().to_string())).await;
    Err(TableflowError::Internal(format!(
        "{name}: compaction gave up after {COMMIT_ATTEMPTS} conflicting commits"
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::maintenance::orphans::test_support::Fixture;

    const POLICY: CompactionPolicy = CompactionPolicy {
        small_file_bytes: 16 << 20,
        min_files: 4,
        target_file_bytes: 128 << 20,
    };

    /// `commits` commits of `rows` rows each, offsets continuing from 0.
    async fn commits(fx: &Fixture, commits: i64, rows: i64) {
        let mut sink = fx.sink().await;
        let table = fx.catalog.load_table(&fx.ident).await.unwrap();
        let mut next = BTreeMap::from([(0, 0i64)]);
        if let Some(s) = table.metadata().current_snapshot()
            && let Some(v) = s.summary().additional_properties.get(NEXT_OFFSETS_PROPERTY)
        {
            next = serde_json::from_str::<BTreeMap<String, i64>>(v)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k.parse().unwrap(), v))
                .collect();
        }
        for _ in 0..commits {
            let from = next[&0];
            fx.write(&mut sink, from, rows).await;
            next.insert(0, from + rows);
            sink.commit(fx.catalog.as_ref(), &next).await.unwrap();
        }
    }

    fn offsets_property(table: &Table) -> String {
        table
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .additional_properties
            .get(NEXT_OFFSETS_PROPERTY)
            .cloned()
            .unwrap()
    }

    /// Twelve small files become one, in one replace snapshot that keeps the table's
    /// offsets; every row reads back once.
    #[tokio::test]
    async fn small_files_become_one_replace_snapshot() {
        let fx = Fixture::new("compact").await;
        commits(&fx, 12, 10).await;
        let before = fx.catalog.load_table(&fx.ident).await.unwrap();
        let out = compact(&fx.floe, &fx.ident, &POLICY, &Default::default())
            .await
            .unwrap();
        assert_eq!(out.files_rewritten, 12);
        assert_eq!(out.files_written, 1);
        assert_eq!(out.rows, 120);
        assert_eq!(out.manifests_before, 12);
        assert_eq!(out.manifests_after, 1);
        assert_eq!(out.data_files_after, 1);
        let after = fx.catalog.load_table(&fx.ident).await.unwrap();
        let snap = after.metadata().current_snapshot().unwrap();
        assert_eq!(snap.summary().operation, Operation::Replace);
        assert_eq!(
            snap.parent_snapshot_id(),
            before.metadata().current_snapshot_id()
        );
        assert_eq!(offsets_property(&after), offsets_property(&before));
        assert_eq!(fx.offsets().await, (0..120).collect::<Vec<_>>());
        // Below min_files nothing happens; the materializer appends on top of the replace.
        let again = compact(&fx.floe, &fx.ident, &POLICY, &Default::default())
            .await
            .unwrap();
        assert_eq!(again.files_rewritten, 0);
        commits(&fx, 2, 5).await;
        assert_eq!(fx.offsets().await, (0..130).collect::<Vec<_>>());
    }

    /// The materializer commits between a compaction's read and its commit: the commit is
    /// refused, and rebuilt on the new snapshot it lands with the new rows kept.
    #[tokio::test]
    async fn a_conflicting_append_is_kept_when_the_commit_is_rebuilt() {
        let fx = Fixture::new("conflict").await;
        commits(&fx, 6, 10).await;
        let base = fx.catalog.load_table(&fx.ident).await.unwrap();
        let live = live_files(&base).await.unwrap().unwrap();
        let groups = plan(&live, &POLICY);
        assert_eq!(groups.len(), 1);
        let (files, rows) = rewrite_group(&base, &groups[0], POLICY.target_file_bytes)
            .await
            .unwrap();
        assert_eq!(rows, 60);
        let replaced: HashSet<String> = groups[0]
            .iter()
            .map(|e| e.file.file_path().to_string())
            .collect();
        let added: Vec<(i32, DataFile)> = files.into_iter().map(|f| (0, f)).collect();
        // The materializer moves the branch.
        commits(&fx, 1, 7).await;
        match commit_replace(&fx.floe, &base, &live, &replaced, &added).await {
            Err(CommitFailure::NotLanded(e)) => assert!(is_conflict(&e), "{e:?}"),
            Err(CommitFailure::Unknown(e)) => panic!("unknown outcome: {e:?}"),
            Ok(_) => panic!("a commit on a moved branch landed"),
        }
        assert_eq!(fx.offsets().await, (0..67).collect::<Vec<_>>());
        let fresh = fx.catalog.load_table(&fx.ident).await.unwrap();
        let live = live_files(&fresh).await.unwrap().unwrap();
        let committed = commit_replace(&fx.floe, &fresh, &live, &replaced, &added)
            .await
            .unwrap_or_else(|_| panic!("the rebuilt commit failed"));
        assert_eq!(
            committed
                .metadata()
                .current_snapshot()
                .unwrap()
                .summary()
                .operation,
            Operation::Replace
        );
        assert_eq!(fx.offsets().await, (0..67).collect::<Vec<_>>());
        let after = live_files(&committed).await.unwrap().unwrap();
        assert_eq!(
            after.entries.len(),
            2,
            "the compacted file and the new append"
        );
    }

    /// Many manifests and no small file to rewrite: the round only merges manifests.
    #[tokio::test]
    async fn many_manifests_are_merged_without_rewriting() {
        let fx = Fixture::new("merge").await;
        commits(&fx, MAX_MANIFESTS as i64 + 6, 1).await;
        let policy = CompactionPolicy {
            small_file_bytes: 1,
            ..POLICY
        };
        let out = compact(&fx.floe, &fx.ident, &policy, &Default::default())
            .await
            .unwrap();
        assert_eq!(out.files_rewritten, 0);
        assert_eq!(out.manifests_before, MAX_MANIFESTS + 6);
        assert_eq!(out.manifests_after, 1);
        assert_eq!(out.data_files_after, MAX_MANIFESTS + 6);
        let n = MAX_MANIFESTS as i64 + 6;
        assert_eq!(fx.offsets().await, (0..n).collect::<Vec<_>>());
    }
}
