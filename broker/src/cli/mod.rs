//! The admin commands of the `floe` binary: `topic`, `group`, `produce`, `consume` and
//! `cluster`, speaking the Kafka protocol to any Kafka-compatible broker (Floe or not), in
//! the spirit of Redpanda's `rpk` and Kafka's own tools. See docs/cli.md.
//!
//! [`client`] is a small blocking client over `kafka-protocol`'s codecs (a connection per
//! broker, ApiVersions negotiation, metadata, coordinators, bounded retries); each command
//! group is a module over it; `security` turns the TLS and SASL options into the settings
//! every connection uses. Exit status: 0 on success, 1 when a request fails (the message
//! names the Kafka error), 2 for bad arguments.

pub mod args;
pub mod client;
mod cluster;
mod consume;
mod consume_format;
pub mod error;
mod group;
mod group_reset;
mod offsets;
pub mod output;
mod partitioner;
mod produce;
pub mod records;
mod security;
mod topic;

use std::process::ExitCode;
use std::time::Duration;

pub use args::ClientCommand;
use args::ClientOpts;
use client::{Client, ConnOpts};
use error::UsageError;
use output::{Out, StdoutClosed};

/// Runs a client command; prints its error, if any, and returns the exit status.
pub fn run(command: ClientCommand) -> ExitCode {
    let result = match command {
        ClientCommand::Topic(a) => with_client(&a.opts, |c, out| topic::run(c, out, a.command)),
        ClientCommand::Group(a) => with_client(&a.opts, |c, out| group::run(c, out, a.command)),
        ClientCommand::Produce(a) => {
            let opts = a.opts.clone();
            with_client(&opts, |c, out| produce::run(c, out, a))
        }
        ClientCommand::Consume(a) => {
            let opts = a.opts.clone();
            with_client(&opts, |c, out| consume::run(c, out, a))
        }
        ClientCommand::Cluster(a) => with_client(&a.opts, |c, out| cluster::run(c, out, a.command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<StdoutClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            // A Kafka error names itself (`creating topic 'a': TOPIC_ALREADY_EXISTS (error
            // code 36): ...`).
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn with_client(
    opts: &ClientOpts,
    f: impl FnOnce(&mut Client, &mut Out) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut client = Client::new(
        &opts.brokers,
        ConnOpts {
            client_id: opts.client_id.clone(),
            connect_timeout: Duration::from_millis(opts.connect_timeout_ms),
            request_timeout: Duration::from_millis(opts.timeout_ms),
            security: security::resolve(&opts.security)?,
        },
    )?;
    let mut out = Out::new(opts.format);
    let result = f(&mut client, &mut out);
    let flushed = out.flush();
    result.and(flushed)
}
