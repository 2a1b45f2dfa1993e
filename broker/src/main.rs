//! The `floe` command.

mod cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use floe_broker::config::Config;

#[derive(Parser)]
#[command(
    name = "floe",
    version,
    about = "Floe: a Kafka-compatible streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Admin and client commands for any Kafka-compatible broker (docs/cli.md).
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (see docs/configuration.md).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Data directory (log segments, metadata).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listener address, host:port.
    #[arg(long)]
    listen: Option<String>,
    /// host:port advertised to clients (default: the listener address).
    #[arg(long)]
    advertised_listener: Option<String>,
    /// This broker's node id.
    #[arg(long)]
    node_id: Option<i32>,
    /// Partitions of auto-created topics.
    #[arg(long)]
    num_partitions: Option<i32>,
    /// Create topics on first use (true/false).
    #[arg(long)]
    auto_create_topics: Option<bool>,
    /// Any other setting, as key=value (repeatable), e.g. --set log_segment_bytes=1048576.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Client(command) => {
            init_logs("warn", false);
            return cli::run(command);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("floe: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default`), as text or one JSON object per
/// line (`log_format = "json"`, for log collectors).
fn init_logs(default: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut overrides: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            overrides.push((k.to_string(), v));
        }
    };
    put("data_dir", args.data_dir.map(|p| p.display().to_string()));
    put("listen", args.listen);
    put("advertised_listener", args.advertised_listener);
    put("node_id", args.node_id.map(|v| v.to_string()));
    put("num_partitions", args.num_partitions.map(|v| v.to_string()));
    put(
        "auto_create_topics_enable",
        args.auto_create_topics.map(|v| v.to_string()),
    );
    for kv in args.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set expects KEY=VALUE, got '{kv}'"))?;
        overrides.push((k.trim().to_string(), v.trim().to_string()));
    }
    // Paths and addresses must stay strings even when they look like TOML literals.
    let config = Config::load(args.config.as_deref(), std::env::vars(), &overrides)?;
    init_logs("info", config.log_format == "json");
    floe_broker::connection_limits::check_open_file_limit(
        usize::try_from(config.max_connections).unwrap_or(0),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("floe")
        .build()?;
    runtime.block_on(floe_broker::server::run(config))
}
