//! Cluster metadata (cluster id, topics with their ids, partition counts and config
//! overrides, the producer-id high-water mark) and where it is persisted.
//!
//! The broker reads and writes it only through [`MetadataStore`], so that a cluster mode can
//! keep it in a distributed store. [`FileMetadataStore`] is the single-node implementation:
//! one JSON document in `<data-dir>/meta/cluster.json`, replaced atomically (write a
//! temporary file, fsync, rename, fsync the directory) on every change, so a crash leaves
//! either the old or the new document, never a torn one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A topic as recorded in the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Kafka topic id (KIP-516).
    pub topic_id: Uuid,
    /// Number of partitions (0..partitions).
    pub partitions: i32,
    /// Topic-level config overrides (Kafka names), e.g. `retention.ms`.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// One ACL binding, with Kafka's names for its enums (`TOPIC`, `PREFIXED`, `READ`,
/// `ALLOW`, ...), as `kafka-acls` prints them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclRecord {
    /// `TOPIC`, `GROUP`, `CLUSTER`, `TRANSACTIONAL_ID`, `DELEGATION_TOKEN`, `USER`.
    pub resource_type: String,
    /// The resource name (or prefix), `*` for every resource of the type.
    pub resource_name: String,
    /// `LITERAL` or `PREFIXED`.
    pub pattern_type: String,
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// Client address the binding applies to, `*` for any.
    pub host: String,
    /// `ALL`, `READ`, `WRITE`, `CREATE`, `DELETE`, `ALTER`, `DESCRIBE`, `CLUSTER_ACTION`,
    /// `DESCRIBE_CONFIGS`, `ALTER_CONFIGS`, `IDEMPOTENT_WRITE`, ...
    pub operation: String,
    /// `ALLOW` or `DENY`.
    pub permission_type: String,
}

/// A user's salted SCRAM credential for one mechanism (RFC 5802): never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentialRecord {
    /// The salt, base64.
    pub salt: String,
    /// `H(ClientKey)`, base64.
    pub stored_key: String,
    /// `HMAC(SaltedPassword, "Server Key")`, base64.
    pub server_key: String,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

/// The quotas set for one client quota entity (Kafka's `user` and/or `client-id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientQuotaRecord {
    /// Entity type (`user`, `client-id`, `ip`) to its name; `None` is the type's default
    /// entity (`<default>`).
    pub entity: BTreeMap<String, Option<String>>,
    /// Quota key (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`,
    /// `connection_creation_rate`) to value.
    pub quotas: BTreeMap<String, f64>,
}

/// ACLs, SCRAM credentials and client quotas: what security keeps in the metadata store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityMetadata {
    /// Every ACL binding.
    #[serde(default)]
    pub acls: Vec<AclRecord>,
    /// SCRAM credentials: user name to mechanism (`SCRAM-SHA-256`, `SCRAM-SHA-512`) to
    /// credential.
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, ScramCredentialRecord>>,
    /// Client quotas.
    #[serde(default)]
    pub client_quotas: Vec<ClientQuotaRecord>,
}

/// Everything the metadata store holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Format version of this document.
    pub version: u32,
    /// Kafka cluster id, generated on first start.
    pub cluster_id: String,
    /// Topics by name.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicRecord>,
    /// Producer ids below this value may have been handed out; allocation resumes here.
    #[serde(default)]
    pub producer_id_block_end: i64,
    /// ACLs, SCRAM credentials and client quotas.
    #[serde(default)]
    pub security: SecurityMetadata,
}

impl ClusterMetadata {
    /// Metadata of a brand-new cluster.
    pub fn new() -> ClusterMetadata {
        ClusterMetadata {
            version: 1,
            cluster_id: new_cluster_id(),
            topics: BTreeMap::new(),
            producer_id_block_end: 0,
            security: SecurityMetadata::default(),
        }
    }
}

impl Default for ClusterMetadata {
    fn default() -> Self {
        ClusterMetadata::new()
    }
}

/// A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut out = String::with_capacity(22);
    for _ in 0..22 {
        out.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    out
}

/// Why metadata could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Reading or writing the backing file failed.
    #[error("metadata I/O on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: floe_storage::StorageError,
    },
    /// The metadata could not be serialized (a bug).
    #[error("cannot serialize metadata")]
    Serialize(#[source] serde_json::Error),
    /// The stored document does not parse: refuse to start rather than guess.
    #[error("metadata file {path} is corrupt")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Persistence for [`ClusterMetadata`].
pub trait MetadataStore: Send + Sync {
    /// Loads the stored metadata, or creates and stores new metadata on first start.
    fn load_or_init(&self) -> Result<ClusterMetadata, MetadataError>;
    /// Durably replaces the stored metadata.
    fn save(&self, metadata: &ClusterMetadata) -> Result<(), MetadataError>;
}

/// Metadata in a JSON file inside the data directory.
///
/// A full disk must not stop the operator from freeing space through Kafka (DeleteTopics
/// persists the removal before it deletes the files), so the store keeps a space reserve
/// (`meta/space.reserve`, 1 MiB) that it gives up to save the metadata when the file system
/// is full, and takes again once a save finds room.
pub struct FileMetadataStore {
    path: PathBuf,
    reserve: PathBuf,
}

/// Size of the space reserve: far more than the metadata file of any broker.
const RESERVE_BYTES: usize = 1024 * 1024;

fn is_out_of_space(e: &floe_storage::StorageError) -> bool {
    matches!(e, floe_storage::StorageError::Io { source, .. }
        if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
}

impl FileMetadataStore {
    /// A store at `<data_dir>/meta/cluster.json`.
    pub fn new(data_dir: &std::path::Path) -> FileMetadataStore {
        let meta = data_dir.join("meta");
        FileMetadataStore {
            path: meta.join("cluster.json"),
            reserve: meta.join("space.reserve"),
        }
    }

    /// Writes the space reserve if it is missing (best effort: a full disk leaves it
    /// missing until a later save).
    fn keep_reserve(&self) {
        if floe_storage::io::exists(&self.reserve) {
            return;
        }
        match floe_storage::io::write_atomic(&self.reserve, &vec![0u8; RESERVE_BYTES]) {
            Ok(()) => {
                tracing::debug!(path = %self.reserve.display(), "metadata space reserve in place")
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot write the metadata space reserve yet");
                // A partial reserve would count as present; never leave one.
                let _ = floe_storage::io::remove_file(&self.reserve);
            }
        }
    }
}

impl MetadataStore for FileMetadataStore {
    fn load_or_init(&self) -> Result<ClusterMetadata, MetadataError> {
        let io = |source| MetadataError::Io {
            path: self.path.clone(),
            source,
        };
        match floe_storage::io::read_file(&self.path).map_err(io)? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| MetadataError::Corrupt {
                    path: self.path.clone(),
                    source,
                })
            }
            None => {
                let metadata = ClusterMetadata::new();
                self.save(&metadata)?;
                Ok(metadata)
            }
        }
    }

    fn save(&self, metadata: &ClusterMetadata) -> Result<(), MetadataError> {
        let bytes = serde_json::to_vec_pretty(metadata).map_err(MetadataError::Serialize)?;
        let io = |source| MetadataError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            floe_storage::io::create_dir_all(dir).map_err(io)?;
        }
        match floe_storage::io::write_atomic(&self.path, &bytes) {
            Ok(()) => {}
            Err(e) if is_out_of_space(&e) && floe_storage::io::exists(&self.reserve) => {
                tracing::warn!(path = %self.path.display(), "file system full: giving up the metadata space reserve to save the cluster metadata");
                floe_storage::io::remove_file(&self.reserve).map_err(io)?;
                floe_storage::io::write_atomic(&self.path, &bytes).map_err(io)?;
                return Ok(());
            }
            Err(e) => return Err(io(e)),
        }
        self.keep_reserve();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reload_and_rejects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMetadataStore::new(dir.path());
        let mut md = store.load_or_init().unwrap();
        assert_eq!(md.cluster_id.len(), 22);
        md.topics.insert(
            "orders".into(),
            TopicRecord {
                topic_id: Uuid::new_v4(),
                partitions: 3,
                configs: [("retention.ms".to_string(), "1000".to_string())].into(),
            },
        );
        store.save(&md).unwrap();
        assert_eq!(store.load_or_init().unwrap(), md);
        std::fs::write(dir.path().join("meta/cluster.json"), b"{not json").unwrap();
        assert!(matches!(
            store.load_or_init(),
            Err(MetadataError::Corrupt { .. })
        ));
    }
}
