//! The catalog tableflow commits through: the `iceberg` crate's SQL catalog for everything
//! but commits, and Floe's own commit.
//!
//! Why its own commit: table maintenance writes snapshots the crate has no action for (the
//! "replace" snapshot of compaction), and the crate lets nobody outside it build a
//! `TableCommit`; so commits go through [`FloeCatalog::commit`], which takes requirements
//! and updates as the Iceberg REST spec defines them. It also fixes two things of the SQL
//! catalog's own `update_table`: it reports a commit whose database transaction failed to
//! commit as a success (the row swap is now checked), and it never deletes the metadata
//! files that `write.metadata.previous-versions-max` drops from the metadata log (Iceberg's
//! `write.metadata.delete-after-commit.enabled`, done here after every commit).
//!
//! A commit: load the current metadata, check the requirements against it, apply the
//! updates, write the new metadata file (a fresh name, never overwritten), then swap the
//! table's row from the old metadata location to the new one in one conditional `UPDATE`.
//! A swap that matches no row means another writer committed first: the error is the
//! retryable `CatalogCommitConflicts`, and the new metadata file is an orphan (removed by
//! orphan-file cleanup). A crash anywhere leaves the table at the old or the new metadata,
//! nothing in between.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, MetadataLocation, Namespace, NamespaceIdent, Result, TableCommit,
    TableCreation, TableIdent, TableRequirement, TableUpdate,
};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::maintenance::metadata_files;

/// The SQL catalog with Floe's commit.
pub struct FloeCatalog {
    inner: Arc<dyn Catalog>,
    name: String,
    pool: AnyPool,
    /// `$1` placeholders (PostgreSQL) rather than `?`.
    numbered: bool,
}

impl std::fmt::Debug for FloeCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloeCatalog")
            .field("name", &self.name)
            .finish()
    }
}

impl FloeCatalog {
    /// Wraps `inner`, the SQL catalog named `name` whose database is at `uri`.
    pub async fn new(inner: Arc<dyn Catalog>, name: &str, uri: &str) -> Result<FloeCatalog> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(uri)
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Unexpected, "cannot open the catalog database").with_source(e)
            })?;
        Ok(FloeCatalog {
            inner,
            name: name.to_string(),
            pool,
            numbered: uri.starts_with("postgres"),
        })
    }

    /// Commits `updates` to table `ident` if `requirements` hold on its current metadata;
    /// returns the table as committed. See the module docs for the steps.
    pub async fn commit(
        &self,
        ident: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<Table> {
        let current = self.inner.load_table(ident).await?;
        let current_location = current.metadata_location_result()?.to_string();
        for requirement in &requirements {
            requirement.check(Some(current.metadata()))?;
        }
        let mut builder = current
            .metadata()
            .clone()
            .into_builder(Some(current_location.clone()));
        for update in updates {
            builder = update.apply(builder)?;
        }
        let metadata = builder.build()?.metadata;
        let location = MetadataLocation::from_str(&current_location)?
            .with_next_version()
            .with_new_metadata(&metadata);
        metadata.write_to(current.file_io(), &location).await?;
        let new_location = location.to_string();
        crate::faults::crash_point("catalog.before_swap");
        self.swap(ident, &current_location, &new_location).await?;
        crate::faults::crash_point("catalog.after_swap");
        self.after_commit(&current, &current_location, &metadata)
            .await;
        // The table as committed, without reading back what was just written.
        let committed = Table::builder()
            .file_io(current.file_io().clone())
            .metadata_location(new_location)
            .metadata(metadata)
            .identifier(ident.clone())
            .build();
        match committed {
            Ok(t) => Ok(t),
            // Landed: whatever fails from here must not be retried as if it had not.
            Err(_) => self
                .inner
                .load_table(ident)
                .await
                .map_err(|e| e.with_retryable(false)),
        }
    }

    /// The conditional row swap; a conflict when another commit moved the table first.
    async fn swap(&self, ident: &TableIdent, from: &str, to: &str) -> Result<()> {
        let p = |n: usize| {
            if self.numbered {
                format!("${n}")
            } else {
                "?".to_string()
            }
        };
        let sql = format!(
            "UPDATE iceberg_tables SET metadata_location = {}, previous_metadata_location = {} \
             WHERE catalog_name = {} AND table_name = {} AND table_namespace = {} \
             AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = {}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        );
        let namespace = ident.namespace().join(".");
        // Not retryable: the iceberg crate's own retry would append the same files again
        // if the swap did land (a COMMIT whose answer was lost). The caller finds out
        // whether it landed and decides (see the worker's and compaction's commits).
        let db = |e: sqlx::Error| {
            Error::new(ErrorKind::Unexpected, "catalog database update failed").with_source(e)
        };
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query(&sql)
            .bind(to)
            .bind(from)
            .bind(&self.name)
            .bind(ident.name())
            .bind(&namespace)
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            let _ = tx.rollback().await;
            return Err(Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!("table {ident} changed since its metadata was read"),
            )
            .with_retryable(true));
        }
        // Unlike the SQL catalog's own update, a transaction that fails to commit fails the
        // commit: the new metadata is then an orphan and the table unchanged.
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn after_commit(&self, before: &Table, before_location: &str, after: &TableMetadata) {
        match metadata_files::delete_dropped_metadata(
            before.file_io(),
            before.metadata(),
            before_location,
            after,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(table = %before.identifier(), files = n, "deleted metadata files dropped from the metadata log");
            }
            Err(e) => {
                tracing::warn!(table = %before.identifier(), error = %e, "cannot delete old metadata files; orphan-file cleanup will");
            }
        }
    }
}

#[async_trait]
impl Catalog for FloeCatalog {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        self.inner.create_namespace(namespace, properties).await
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        self.inner.get_namespace(namespace).await
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.inner.namespace_exists(namespace).await
    }

    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        self.inner.update_namespace(namespace, properties).await
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        self.inner.drop_namespace(namespace).await
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> Result<Table> {
        self.inner.create_table(namespace, creation).await
    }

    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        self.inner.load_table(table).await
    }

    async fn drop_table(&self, table: &TableIdent) -> Result<()> {
        self.inner.drop_table(table).await
    }

    async fn purge_table(&self, table: &TableIdent) -> Result<()> {
        self.inner.purge_table(table).await
    }

    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        self.inner.table_exists(table).await
    }

    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> Result<()> {
        self.inner.rename_table(src, dest).await
    }

    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> Result<Table> {
        self.inner.register_table(table, metadata_location).await
    }

    async fn update_table(&self, mut commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        let requirements = commit.take_requirements();
        let updates = commit.take_updates();
        self.commit(&ident, requirements, updates).await
    }
}
