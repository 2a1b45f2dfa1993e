//! Bounded metadata files: Iceberg's `write.metadata.previous-versions-max` and
//! `write.metadata.delete-after-commit.enabled`.
//!
//! Every commit writes a new metadata file and records the one it replaced in the metadata
//! log. The `iceberg` crate's `TableMetadataBuilder::build` already trims that log to the
//! newest `write.metadata.previous-versions-max` entries (default 100, at least 1; see its
//! `expire_metadata_log`), but neither it nor the SQL catalog deletes the files it drops.
//! [`delete_dropped_metadata`], called after a commit that verifiably landed, deletes them
//! when the table enables `write.metadata.delete-after-commit.enabled`, so a table keeps its
//! current metadata file and at most `previous-versions-max` older ones.
//!
//! Crash safety: a file is deleted only once the committed metadata no longer lists it, so a
//! crash before or during the deletes leaves files nothing references, which orphan-file
//! cleanup ([`super::orphans`]) removes later. A failed delete is logged and skipped for the
//! same reason.

use std::collections::HashSet;

use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;

use super::orphans::{is_under, normalize_path};
use crate::error::TableflowError;

/// Iceberg's table property: delete the metadata files the metadata log drops.
pub const DELETE_AFTER_COMMIT_PROPERTY: &str = "write.metadata.delete-after-commit.enabled";
/// Iceberg's table property: how many previous metadata files the metadata log keeps.
pub const PREVIOUS_VERSIONS_MAX_PROPERTY: &str = "write.metadata.previous-versions-max";

/// Whether `metadata` enables `write.metadata.delete-after-commit.enabled` (default false).
pub fn delete_after_commit(metadata: &TableMetadata) -> bool {
    metadata
        .properties()
        .get(DELETE_AFTER_COMMIT_PROPERTY)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The metadata files that a commit from `before` (read from `before_location`) to `after`
/// dropped: listed in `before`'s metadata log, or `before_location` itself, and no longer in
/// `after`'s metadata log. Only files under the table's location count.
pub fn dropped_metadata_files(
    before: &TableMetadata,
    before_location: &str,
    after: &TableMetadata,
) -> Vec<String> {
    let kept: HashSet<String> = after
        .metadata_log()
        .iter()
        .map(|l| normalize_path(&l.metadata_file))
        .collect();
    let table = normalize_path(after.location());
    let mut seen = HashSet::new();
    before
        .metadata_log()
        .iter()
        .map(|l| l.metadata_file.as_str())
        .chain(std::iter::once(before_location))
        .filter(|f| {
            let n = normalize_path(f);
            !f.is_empty() && is_under(&n, &table) && !kept.contains(&n) && seen.insert(n)
        })
        .map(str::to_string)
        .collect()
}

/// After a commit from `before` (the metadata read from `before_location`) to `after` has
/// landed: when `after` enables `write.metadata.delete-after-commit.enabled`, deletes the
/// metadata files that `before` listed (or `before_location`) and `after`'s metadata log no
/// longer does. Returns how many files were deleted; a failed delete is logged, not an
/// error (orphan-file cleanup removes the file later).
///
/// `after` must be metadata the catalog has committed: deleting files a commit that did
/// not land would have dropped deletes files the table still lists.
pub async fn delete_dropped_metadata(
    file_io: &FileIO,
    before: &TableMetadata,
    before_location: &str,
    after: &TableMetadata,
) -> Result<usize, TableflowError> {
    if !delete_after_commit(after) {
        return Ok(0);
    }
    let mut deleted = 0;
    for file in dropped_metadata_files(before, before_location, after) {
        match file_io.delete(&file).await {
            Ok(()) => deleted += 1,
            Err(e) => {
                tracing::warn!(file = %file, error = %e, "cannot delete a metadata file dropped from the metadata log; orphan-file cleanup will");
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use iceberg::transaction::{ApplyTransactionAction, Transaction};

    use super::*;
    use crate::maintenance::orphans::test_support::{Fixture, metadata_json_files};

    /// previous-versions-max=3 with delete-after-commit: after many commits, the metadata
    /// directory holds the current file and exactly the three the log lists.
    #[tokio::test]
    async fn keeps_current_and_previous_versions_max_metadata_files() {
        let fx = Fixture::new("meta").await;
        let table = fx.catalog.load_table(&fx.ident).await.unwrap();
        let tx = Transaction::new(&table);
        let tx = tx
            .update_table_properties()
            .set(PREVIOUS_VERSIONS_MAX_PROPERTY.to_string(), "3".to_string())
            .set(DELETE_AFTER_COMMIT_PROPERTY.to_string(), "true".to_string())
            .apply(tx)
            .unwrap();
        tx.commit(fx.catalog.as_ref()).await.unwrap();

        let mut sink = fx.sink().await;
        for i in 0..12 {
            let before = fx.catalog.load_table(&fx.ident).await.unwrap();
            fx.write(&mut sink, i * 10, 10).await;
            sink.commit(fx.catalog.as_ref(), &BTreeMap::from([(0, i * 10 + 10)]))
                .await
                .unwrap();
            let after = fx.catalog.load_table(&fx.ident).await.unwrap();
            // The crate trims the log itself (TableMetadataBuilder::expire_metadata_log).
            assert!(after.metadata().metadata_log().len() <= 3);
            delete_dropped_metadata(
                before.file_io(),
                before.metadata(),
                before.metadata_location().unwrap(),
                after.metadata(),
            )
            .await
            .unwrap();
        }
        let after = fx.catalog.load_table(&fx.ident).await.unwrap();
        assert_eq!(after.metadata().metadata_log().len(), 3);
        let mut expected: Vec<String> = after
            .metadata()
            .metadata_log()
            .iter()
            .map(|l| normalize_path(&l.metadata_file))
            .chain(std::iter::once(normalize_path(
                after.metadata_location().unwrap(),
            )))
            .collect();
        expected.sort();
        let on_disk = metadata_json_files(&fx.table_dir()).await;
        assert_eq!(on_disk, expected);
        // The rows are all there.
        assert_eq!(fx.count_rows().await, 120);
    }

    /// Without the property nothing is deleted, and files outside the table's location are
    /// never candidates.
    #[test]
    fn property_off_or_outside_location() {
        let json = |log: &str| {
            format!(
                r#"{{"format-version":2,"table-uuid":"9c12d441-03fe-4693-9a96-a0705ddf69c1",
                "location":"file:///w/ns/t","last-sequence-number":0,"last-updated-ms":1,
                "last-column-id":1,"current-schema-id":0,
                "schemas":[{{"type":"struct","schema-id":0,"fields":[{{"id":1,"name":"x","required":true,"type":"long"}}]}}],
                "default-spec-id":0,"partition-specs":[{{"spec-id":0,"fields":[]}}],
                "last-partition-id":999,"default-sort-order-id":0,
                "sort-orders":[{{"order-id":0,"fields":[]}}],"properties":{{}},
                "metadata-log":[{log}]}}"#
            )
        };
        let before: TableMetadata = serde_json::from_str(&json(
            r#"{"metadata-file":"file:///w/ns/t/metadata/1.json","timestamp-ms":1},
               {"metadata-file":"file:///elsewhere/2.json","timestamp-ms":2}"#,
        ))
        .unwrap();
        let after: TableMetadata = serde_json::from_str(&json(
            r#"{"metadata-file":"file:/w/ns/t/metadata/3.json","timestamp-ms":3}"#,
        ))
        .unwrap();
        assert!(!delete_after_commit(&after));
        assert_eq!(
            dropped_metadata_files(&before, "file:///w/ns/t/metadata/3.json", &after),
            vec!["file:///w/ns/t/metadata/1.json".to_string()]
        );
    }
}
