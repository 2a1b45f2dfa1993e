//! Command-line arguments of the client commands (`floe topic|group|produce|consume|cluster`).
//! Every client command takes the connection options of [`ClientOpts`] anywhere after its
//! name, security settings included. Values clap cannot check alone are checked by the
//! parsers here (and the security options by `cli/security.rs`), so a bad argument always
//! exits with status 2.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use crate::cli::client::sasl::Mechanism;
use crate::cli::output::Format;

/// The client commands, flattened into the `floe` command next to `serve`.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Create, list, describe, delete and configure topics.
    Topic(TopicArgs),
    /// List, describe, delete consumer groups and reset their offsets.
    Group(GroupArgs),
    /// Produce records read from standard input, one per line.
    Produce(ProduceArgs),
    /// Consume records and print them.
    Consume(ConsumeArgs),
    /// Cluster information.
    Cluster(ClusterArgs),
}

/// Options of every client command.
#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(
        short = 'b',
        long,
        env = "FLOE_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub brokers: String,
    /// Output format: aligned text tables, or JSON (see docs/cli.md for its shape).
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
    /// client.id sent in every request.
    #[arg(long, default_value = "floe-cli", global = true)]
    pub client_id: String,
    /// How long a request may wait for its response, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub timeout_ms: u64,
    /// How long connecting to a broker may take, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub connect_timeout_ms: u64,
    #[command(flatten)]
    pub security: SecurityOpts,
}

/// Kafka's client security settings (`security.protocol`, `sasl.*`, `ssl.*`), for every
/// connection of a command.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Security options")]
pub struct SecurityOpts {
    /// Security protocol of the listener (default: PLAINTEXT, or SSL / SASL_PLAINTEXT /
    /// SASL_SSL when TLS options or --sasl-mechanism are given).
    #[arg(
        long,
        value_enum,
        env = "FLOE_SECURITY_PROTOCOL",
        ignore_case = true,
        global = true
    )]
    pub security_protocol: Option<SecurityProtocol>,
    /// SASL mechanism (implies SASL).
    #[arg(
        long,
        value_enum,
        env = "FLOE_SASL_MECHANISM",
        ignore_case = true,
        global = true
    )]
    pub sasl_mechanism: Option<Mechanism>,
    /// SASL user name.
    #[arg(long, env = "FLOE_SASL_USER", global = true)]
    pub user: Option<String>,
    /// SASL password (better from the environment, out of shell history and `ps`).
    #[arg(
        long,
        env = "FLOE_SASL_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub password: Option<String>,
    /// PEM file of the CA certificates that sign the brokers' certificates (default: the
    /// system's CA bundle). Implies TLS.
    #[arg(long, value_name = "FILE", env = "FLOE_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// PEM file of a client certificate chain, for brokers that require one (mTLS); may
    /// also hold the key. Implies TLS.
    #[arg(long, value_name = "FILE", env = "FLOE_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        value_name = "FILE",
        env = "FLOE_TLS_KEY",
        requires = "tls_cert",
        global = true
    )]
    pub tls_key: Option<PathBuf>,
    /// Accept any broker certificate, for any name: encryption without authentication of
    /// the broker, for tests only. Implies TLS.
    #[arg(long, conflicts_with = "tls_ca", global = true)]
    pub tls_insecure_skip_verify: bool,
}

/// `--security-protocol`, Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    #[value(name = "PLAINTEXT")]
    Plaintext,
    /// TLS.
    #[value(name = "SSL")]
    Ssl,
    /// SASL without TLS.
    #[value(name = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL over TLS.
    #[value(name = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections use TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// The Kafka name.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// `floe topic`.
#[derive(Args)]
pub struct TopicArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    #[command(subcommand)]
    pub command: TopicCommand,
}

/// `floe topic <command>`.
#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create topics (CreateTopics).
    Create {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Partitions (-1: the broker's default).
        #[arg(short = 'p', long, default_value_t = -1, allow_negative_numbers = true, value_parser = partitions_or_default)]
        partitions: i32,
        /// Replication factor (-1: the broker's default).
        #[arg(short = 'r', long, default_value_t = -1, allow_negative_numbers = true, value_parser = replication_or_default)]
        replication_factor: i16,
        /// Topic config, key=value (repeatable).
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics (Metadata).
    List {
        /// Include internal topics (__consumer_offsets, ...).
        #[arg(short = 'i', long)]
        internal: bool,
    },
    /// Partitions (leader, replicas, ISR, offsets) and configs of topics.
    Describe {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete topics (DeleteTopics).
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set or delete topic configs (IncrementalAlterConfigs).
    #[command(group(ArgGroup::new("changes").required(true).multiple(true).args(["set", "delete"])))]
    AlterConfig {
        /// Topic name.
        name: String,
        /// Config to set, key=value (repeatable).
        #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Config to delete, back to its default (repeatable).
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Add partitions to a topic (CreatePartitions).
    #[command(group(ArgGroup::new("count").required(true).args(["num", "total"])))]
    AddPartitions {
        /// Topic name.
        name: String,
        /// Partitions to add.
        #[arg(short = 'n', long, value_parser = clap::value_parser!(i32).range(1..))]
        num: Option<i32>,
        /// The topic's partition count afterwards.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        total: Option<i32>,
    },
}

/// `floe group`.
#[derive(Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    #[command(subcommand)]
    pub command: GroupCommand,
}

/// `floe group <command>`.
#[derive(Subcommand)]
pub enum GroupCommand {
    /// List groups (ListGroups on every broker).
    List,
    /// Members, assignments, committed offsets, log end offsets and lag.
    Describe {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Delete groups (DeleteGroups; the groups must be empty).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Reset an empty group's committed offsets of a topic.
    #[command(group(ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_timestamp", "to_offset"])))]
    ResetOffsets {
        /// Group id.
        group: String,
        /// Topic whose offsets to reset.
        #[arg(short = 't', long)]
        topic: String,
        /// Partitions (default: all), e.g. 0,2.
        #[arg(short = 'p', long, value_delimiter = ',', value_parser = clap::value_parser!(i32).range(0..))]
        partitions: Vec<i32>,
        /// To the log start offset.
        #[arg(long)]
        to_earliest: bool,
        /// To the log end offset.
        #[arg(long)]
        to_latest: bool,
        /// To the first record at or after this time (ms since the epoch).
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(i64).range(0..))]
        to_timestamp: Option<i64>,
        /// To this offset (clamped to the log's start and end, as Kafka's tool does).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
        to_offset: Option<i64>,
        /// Show the plan without committing it.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `--compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    /// Uncompressed.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// `floe produce`.
#[derive(Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    /// Topic to produce to (created if the broker auto-creates topics).
    pub topic: String,
    /// Split each line at the first SEP into key and value (lines without SEP have no key).
    #[arg(short = 'k', long, value_name = "SEP", conflicts_with = "key")]
    pub key_separator: Option<String>,
    /// The same key for every record.
    #[arg(long)]
    pub key: Option<String>,
    /// Header added to every record, key=value (repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// Partition to produce to (default: by key hash as Kafka's default partitioner, or
    /// round robin for records without a key).
    #[arg(short = 'p', long, value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Acknowledgements: all (-1), 1 or 0 (no response, so no offsets).
    #[arg(long, default_value = "all", value_parser = acks, allow_hyphen_values = true)]
    pub acks: i16,
    /// Compression of the batches.
    #[arg(short = 'z', long, value_enum, default_value_t = Codec::None)]
    pub compression: Codec,
    /// Records per batch, at most (batches also stop at 1 MiB).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_records: u32,
    /// How each input line is read: `text` (the line is the value, see -k/--key) or `json`
    /// (an object with `key`, `value`, `headers`, `partition`, `timestamp`; null key or
    /// value allowed, so tombstones can be produced).
    #[arg(long, value_enum, default_value_t = InputFormat::Text)]
    pub input: InputFormat,
}

/// `floe produce --input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// One value per line.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where `consume` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The log start offset.
    Start,
    /// The log end offset (only new records).
    End,
    /// This offset.
    At(i64),
}

/// `floe consume`.
#[derive(Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    /// Topic to consume.
    pub topic: String,
    /// Where to start: start, end, or an offset.
    #[arg(short = 'o', long, default_value = "start", value_parser = start_offset, conflicts_with = "timestamp")]
    pub offset: StartOffset,
    /// Start at the first record at or after this time (ms since the epoch).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(i64).range(0..))]
    pub timestamp: Option<i64>,
    /// Stop after this many records.
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Partitions (default: all), e.g. 0,2.
    #[arg(short = 'p', long, value_delimiter = ',', value_parser = clap::value_parser!(i32).range(0..))]
    pub partitions: Vec<i32>,
    /// Exit once every partition is read to its end (like kcat's -e).
    #[arg(short = 'e', long)]
    pub exit_at_end: bool,
    /// Output template (text format): %t topic, %p partition, %o offset, %k key, %v value,
    /// %h headers, %T timestamp, %% a percent sign; \n \t \\ escapes.
    #[arg(short = 'f', long, default_value = "%v\\n")]
    pub template: String,
    /// Only committed transactional records (isolation level read_committed).
    #[arg(long)]
    pub read_committed: bool,
    /// Bytes a fetch may return per partition.
    #[arg(long, default_value_t = 1024 * 1024, value_parser = clap::value_parser!(i32).range(1024..=64 * 1024 * 1024))]
    pub fetch_max_bytes: i32,
}

/// `floe cluster`.
#[derive(Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub opts: ClientOpts,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// `floe cluster <command>`.
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Brokers, controller, cluster id and topic count (Metadata, DescribeCluster).
    Info,
}

/// `key=value`, the key not empty.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

fn partitions_or_default(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if n == -1 || n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a partition count of at least 1 (or -1), got '{s}'"
        )),
    }
}

fn replication_or_default(s: &str) -> Result<i16, String> {
    match s.parse::<i16>() {
        Ok(n) if n == -1 || n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a replication factor of at least 1 (or -1), got '{s}'"
        )),
    }
}

fn acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("expected all, -1, 1 or 0, got '{s}'")),
    }
}

fn start_offset(s: &str) -> Result<StartOffset, String> {
    match s {
        "start" | "beginning" | "earliest" => Ok(StartOffset::Start),
        "end" | "latest" => Ok(StartOffset::End),
        n => match n.parse::<i64>() {
            Ok(o) if o >= 0 => Ok(StartOffset::At(o)),
            _ => Err(format!("expected start, end or an offset >= 0, got '{s}'")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_parsers_accept_what_they_document() {
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(key_value("a="), Ok(("a".into(), String::new())));
        assert!(key_value("=b").is_err());
        assert!(key_value("ab").is_err());
        assert_eq!(acks("all"), Ok(-1));
        assert!(acks("2").is_err());
        assert_eq!(start_offset("end"), Ok(StartOffset::End));
        assert_eq!(start_offset("42"), Ok(StartOffset::At(42)));
        assert!(start_offset("-3").is_err());
        assert!(partitions_or_default("0").is_err());
        assert_eq!(replication_or_default("-1"), Ok(-1));
    }
}
