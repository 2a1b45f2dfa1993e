//! One Iceberg table being written: an open Parquet writer that rows stream into between
//! commits, and the commit that appends the files together with the next Kafka offset of
//! every partition in the snapshot summary (`floe.next-offsets`), atomically.
//!
//! Exactly-once rests on two facts: the offsets and the files are in the same snapshot, so
//! they become visible together or not at all; and every writer names its files with a
//! fresh UUID prefix, so a retry after a crash never overwrites a file an earlier commit
//! references. Files written but never committed are orphans, invisible to readers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::RecordBatch;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog, NamespaceIdent, TableCreation, TableIdent};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::catalog::FloeCatalog;
use crate::error::TableflowError;
use crate::error::iceberg_error as err;
use crate::maintenance::InFlight;
use crate::schema::TableLayout;

/// Snapshot summary key holding `{"<partition>": <next offset>, ...}`.
pub const NEXT_OFFSETS_PROPERTY: &str = "floe.next-offsets";

type Builder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

// One per table, alive for a commit interval: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum OpenWriter {
    Unpartitioned(
        Box<
            DataFileWriter<
                ParquetWriterBuilder,
                DefaultLocationGenerator,
                DefaultFileNameGenerator,
            >,
        >,
    ),
    Partitioned {
        writer: FanoutWriter<Builder>,
        splitter: RecordBatchPartitionSplitter,
    },
}

/// A table and its uncommitted rows.
pub struct TableSink {
    ident: TableIdent,
    table: Table,
    layout: TableLayout,
    committed: BTreeMap<i32, i64>,
    writer: Option<OpenWriter>,
    target_file_size: usize,
    /// Rows written since the last commit.
    pub pending_rows: usize,
    /// Approximate bytes written since the last commit.
    pub pending_bytes: usize,
    /// Closed files whose commit failed, committed with the next attempt.
    staged: Vec<DataFile>,
    staged_rows: usize,
    /// Name prefixes of this sink's uncommitted files, shared with orphan-file cleanup.
    in_flight: InFlight,
    prefixes: Vec<String>,
}

/// The next offsets recorded by the newest snapshot (walking back past snapshots that
/// others committed without them, e.g. maintenance).
fn committed_offsets(table: &Table) -> Result<BTreeMap<i32, i64>, TableflowError> {
    let Some(text) = newest_next_offsets(table) else {
        return Ok(BTreeMap::new());
    };
    let raw: BTreeMap<String, i64> =
        serde_json::from_str(&text).map_err(|e| TableflowError::Summary {
            table: table.identifier().to_string(),
            reason: e.to_string(),
        })?;
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let p = k.parse::<i32>().map_err(|e| TableflowError::Summary {
            table: table.identifier().to_string(),
            reason: format!("partition '{k}': {e}"),
        })?;
        out.insert(p, v);
    }
    Ok(out)
}

/// The `floe.next-offsets` text of the newest snapshot that recorded it, walking back past
/// snapshots committed without it.
pub(crate) fn newest_next_offsets(table: &Table) -> Option<String> {
    let metadata = table.metadata();
    let mut snapshot = metadata.current_snapshot().cloned();
    while let Some(s) = snapshot {
        if let Some(text) = s.summary().additional_properties.get(NEXT_OFFSETS_PROPERTY) {
            return Some(text.clone());
        }
        snapshot = s
            .parent_snapshot_id()
            .and_then(|id| metadata.snapshot_by_id(id).cloned());
    }
    None
}

impl TableSink {
    /// Loads the table, creating it (and its namespace) when `create` is set; `None` if it
    /// does not exist and `create` is not set.
    pub async fn open(
        catalog: &dyn Catalog,
        ident: TableIdent,
        layout: &TableLayout,
        create: bool,
        target_file_size: usize,
    ) -> Result<Option<TableSink>, TableflowError> {
        let exists = catalog
            .table_exists(&ident)
            .await
            .map_err(err(format!("look up table {ident}")))?;
        let table = if exists {
            catalog
                .load_table(&ident)
                .await
                .map_err(err(format!("load table {ident}")))?
        } else if create {
            let ns = ident.namespace().clone();
            if !catalog
                .namespace_exists(&ns)
                .await
                .map_err(err(format!("look up namespace {ns:?}")))?
            {
                // Another writer may create it at the same time; a failure is fine if it exists.
                if let Err(e) = catalog.create_namespace(&ns, HashMap::new()).await
                    && !catalog.namespace_exists(&ns).await.unwrap_or(false)
                {
                    return Err(err(format!("create namespace {ns:?}"))(e));
                }
            }
            let creation = TableCreation::builder()
                .name(ident.name().to_string())
                .schema(layout.schema.as_ref().clone())
                .partition_spec(layout.partition.clone())
                .properties([(
                    "write.parquet.compression-codec".to_string(),
                    "zstd".to_string(),
                )])
                .build();
            let table = catalog
                .create_table(&ns, creation)
                .await
                .map_err(err(format!("create table {ident}")))?;
            tracing::info!(table = %ident, "created Iceberg table");
            table
        } else {
            return Ok(None);
        };
        let current = table.metadata().current_schema().clone();
        let layout = if layout.typed_arrow.is_some() {
            // Schema mode: the table's own (possibly evolved) schema is the layout.
            TableLayout::of_typed_schema(current, layout.partition.clone())
        } else {
            layout.with_table_schema(current)
        }
        .map_err(|_| TableflowError::SchemaMismatch {
            table: ident.to_string(),
        })?;
        let committed = committed_offsets(&table)?;
        Ok(Some(TableSink {
            ident,
            table,
            layout,
            committed,
            writer: None,
            target_file_size,
            pending_rows: 0,
            pending_bytes: 0,
            staged: Vec::new(),
            staged_rows: 0,
            in_flight: InFlight::default(),
            prefixes: Vec::new(),
        }))
    }

    /// Shares the names of this sink's uncommitted files with orphan-file cleanup, which
    /// must never take them for orphans.
    pub fn with_in_flight(mut self, in_flight: InFlight) -> TableSink {
        self.in_flight = in_flight;
        self
    }

    /// The table's name.
    pub fn ident(&self) -> &TableIdent {
        &self.ident
    }

    /// The table's layout (with the table's own field ids): build rows with this.
    pub fn layout(&self) -> &TableLayout {
        &self.layout
    }

    /// Next offset of `partition` recorded in the table, if any.
    pub fn committed(&self, partition: i32) -> Option<i64> {
        self.committed.get(&partition).copied()
    }

    fn new_writer(&mut self) -> Result<OpenWriter, TableflowError> {
        let metadata = self.table.metadata();
        let schema = metadata.current_schema().clone();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let location =
            DefaultLocationGenerator::new(metadata).map_err(err("data file location"))?;
        // A fresh prefix per writer: the default generator only counts from 0, so without
        // it a retry would reuse (and overwrite) names of files already committed.
        let prefix = format!("floe-{}", uuid::Uuid::new_v4());
        self.in_flight.add(&prefix);
        self.prefixes.push(prefix.clone());
        let names = DefaultFileNameGenerator::new(prefix, None, DataFileFormat::Parquet);
        let rolling = RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(props, schema.clone()),
            self.target_file_size,
            self.table.file_io().clone(),
            location,
            names,
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let spec = metadata.default_partition_spec().clone();
        if spec.is_unpartitioned() {
            // DataFileWriterBuilder::build is async only by its trait; it does no I/O.
            let writer = futures_util::FutureExt::now_or_never(builder.build(None))
                .ok_or_else(|| TableflowError::Internal("writer build did not complete".into()))?
                .map_err(err("open data file writer"))?;
            Ok(OpenWriter::Unpartitioned(Box::new(writer)))
        } else {
            let splitter = RecordBatchPartitionSplitter::try_new_with_computed_values(schema, spec)
                .map_err(err("partition splitter"))?;
            Ok(OpenWriter::Partitioned {
                writer: FanoutWriter::new(builder),
                splitter,
            })
        }
    }

    /// Streams rows into the open data file(s); they become visible at the next commit.
    pub async fn write(&mut self, batch: RecordBatch, bytes: usize) -> Result<(), TableflowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            self.writer = Some(self.new_writer()?);
        }
        let rows = batch.num_rows();
        match self.writer.as_mut() {
            Some(OpenWriter::Unpartitioned(w)) => {
                w.write(batch).await.map_err(err("write rows"))?;
            }
            Some(OpenWriter::Partitioned { writer, splitter }) => {
                for (key, part) in splitter.split(&batch).map_err(err("split rows"))? {
                    writer.write(key, part).await.map_err(err("write rows"))?;
                }
            }
            None => {}
        }
        self.pending_rows += rows;
        self.pending_bytes += bytes;
        Ok(())
    }

    /// Closes the open files and appends them in one snapshot that also records
    /// `next_offsets`. Nothing pending: nothing happens.
    ///
    /// A failed commit changes nothing the table or a reader sees, and keeps the closed
    /// files staged: the next call commits them (with whatever was written since), so the
    /// caller retries by calling again and never skips the failed commit's records. The
    /// table's offsets advance only when a commit has verifiably landed.
    pub async fn commit(
        &mut self,
        catalog: &dyn Catalog,
        next_offsets: &BTreeMap<i32, i64>,
    ) -> Result<(), TableflowError> {
        self.close_writer().await?;
        if self.staged.is_empty() {
            return Ok(());
        }
        let mut offsets = self.committed.clone();
        offsets.extend(next_offsets.iter().map(|(p, o)| (*p, *o)));
        let text: BTreeMap<String, i64> =
            offsets.iter().map(|(p, o)| (p.to_string(), *o)).collect();
        let summary = HashMap::from([(
            NEXT_OFFSETS_PROPERTY.to_string(),
            serde_json::to_string(&text).unwrap_or_default(),
        )]);
        let n_files = self.staged.len();
        crate::faults::crash_point("sink.before_commit");
        let tx = Transaction::new(&self.table);
        let tx = tx
            .fast_append()
            // Names are unique per writer, so the duplicate check (which reads every
            // manifest of the table on each commit) buys nothing.
            .with_check_duplicate(false)
            .add_data_files(self.staged.clone())
            .set_snapshot_properties(summary)
            .apply(tx)
            .map_err(err(format!("append to {}", self.ident)))?;
        let table = {
            let _turn = self.in_flight.commit_lock().await;
            tx.commit(catalog)
                .await
                .map_err(err(format!("commit to {}", self.ident)))?
        };
        self.table = table;
        self.committed = offsets;
        self.staged.clear();
        // Every file written so far is in the table now.
        self.in_flight.remove(&std::mem::take(&mut self.prefixes));
        let rows = std::mem::take(&mut self.staged_rows);
        tracing::debug!(table = %self.ident, rows, files = n_files, "committed");
        Ok(())
    }

    /// Closes the open files and stages them for the next commit.
    async fn close_writer(&mut self) -> Result<(), TableflowError> {
        if let Some(writer) = self.writer.take() {
            let files: Vec<DataFile> = match writer {
                OpenWriter::Unpartitioned(mut w) => {
                    w.close().await.map_err(err("close data file"))?
                }
                OpenWriter::Partitioned { writer, .. } => {
                    writer.close().await.map_err(err("close data files"))?
                }
            };
            self.staged_rows += std::mem::take(&mut self.pending_rows);
            self.pending_bytes = 0;
            self.staged.extend(files);
        }
        Ok(())
    }

    /// Evolves a schema-mode table to `layout` (the current schema's columns with their
    /// ids, plus new ones): one commit that adds the schema and makes it current, with no
    /// snapshot, so the offsets in the table do not move. Rows written so far were written
    /// with the old schema: their files are closed and staged for the next commit (Iceberg
    /// reads them by field id; the new columns read null), and rows from now on are
    /// written with the new one. A crash after this commit leaves the table evolved and its
    /// offsets where they were: the records are read again and fit the new schema.
    pub async fn evolve(
        &mut self,
        catalog: &FloeCatalog,
        layout: TableLayout,
    ) -> Result<(), TableflowError> {
        self.close_writer().await?;
        let current = self.table.metadata().current_schema_id();
        let schema = layout.schema.as_ref().clone();
        let table = {
            let _turn = self.in_flight.commit_lock().await;
            catalog
                .commit(
                    &self.ident,
                    vec![iceberg::TableRequirement::CurrentSchemaIdMatch {
                        current_schema_id: current,
                    }],
                    vec![
                        iceberg::TableUpdate::AddSchema { schema },
                        iceberg::TableUpdate::SetCurrentSchema { schema_id: -1 },
                    ],
                )
                .await
                .map_err(err(format!("evolve the schema of {}", self.ident)))?
        };
        self.layout = TableLayout::of_typed_schema(
            table.metadata().current_schema().clone(),
            self.layout.partition.clone(),
        )
        .map_err(TableflowError::Internal)?;
        self.table = table;
        tracing::info!(table = %self.ident, schema_id = self.table.metadata().current_schema_id(), columns = self.layout.value_fields().len(), "evolved the table schema");
        Ok(())
    }

    /// The table as last loaded or committed.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Rows closed into files that a failed commit left staged for the next one.
    pub fn staged_rows(&self) -> usize {
        self.staged_rows
    }
}

impl Drop for TableSink {
    /// What this sink wrote and did not commit is abandoned: a new sink starts over from the
    /// table's offsets, so those files are orphans from now on.
    fn drop(&mut self) {
        self.in_flight.remove(&self.prefixes);
    }
}

/// Opens the catalog named in `settings`.
pub async fn open_catalog(
    settings: &crate::config::TableflowSettings,
) -> Result<Arc<dyn Catalog>, TableflowError> {
    let catalog: Arc<dyn Catalog> = open_floe_catalog(settings).await?;
    Ok(catalog)
}

/// Opens the catalog named in `settings`, with Floe's own commit (see [`FloeCatalog`]).
pub async fn open_floe_catalog(
    settings: &crate::config::TableflowSettings,
) -> Result<Arc<FloeCatalog>, TableflowError> {
    use iceberg::CatalogBuilder;
    use iceberg_catalog_sql::{
        SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlCatalogBuilder,
    };
    if let Some(path) = settings.catalog_uri.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(dir).map_err(|source| TableflowError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
    }
    if let Some(path) = settings.warehouse.strip_prefix("file://") {
        std::fs::create_dir_all(path).map_err(|source| TableflowError::Io {
            path: path.into(),
            source,
        })?;
    }
    let mut props = settings.storage_props.clone();
    props.insert(
        SQL_CATALOG_PROP_URI.to_string(),
        settings.catalog_uri.clone(),
    );
    props.insert(
        SQL_CATALOG_PROP_WAREHOUSE.to_string(),
        settings.warehouse.clone(),
    );
    if settings.catalog_uri.starts_with("sqlite:") {
        // One SQLite writer connection: several would only contend for the database lock.
        props.insert("pool.max-connections".to_string(), "1".to_string());
    }
    let catalog = SqlCatalogBuilder::default()
        .with_storage_factory(Arc::new(
            iceberg_storage_opendal::OpenDalResolvingStorageFactory::new(),
        ))
        .load(settings.catalog_name.clone(), props)
        .await
        .map_err(err(format!("open catalog {}", settings.catalog_uri)))?;
    let catalog = FloeCatalog::new(
        Arc::new(catalog),
        &settings.catalog_name,
        &settings.catalog_uri,
    )
    .await
    .map_err(err(format!("open catalog {}", settings.catalog_uri)))?;
    Ok(Arc::new(catalog))
}

/// The identifier of a table.
pub fn table_ident(namespace: &str, name: &str) -> Result<TableIdent, TableflowError> {
    let ns = NamespaceIdent::new(namespace.to_string());
    Ok(TableIdent::new(ns, name.to_string()))
}
