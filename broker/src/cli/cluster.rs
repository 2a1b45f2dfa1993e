//! `floe cluster info`: brokers, controller, cluster id and topic count, from Metadata and,
//! where the broker serves it, DescribeCluster (which also says which brokers are fenced).

use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use serde_json::{Value, json};

use crate::cli::args::ClusterCommand;
use crate::cli::client::Client;
use crate::cli::error::check;
use crate::cli::output::{Out, Table, or_dash};

/// Runs one `floe cluster` command.
pub fn run(client: &mut Client, out: &mut Out, command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Info => info(client, out),
    }
}

struct Broker {
    node_id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
    fenced: Option<bool>,
}

fn info(client: &mut Client, out: &mut Out) -> anyhow::Result<()> {
    let meta = client.cluster(None, false)?;
    let mut cluster_id = meta.cluster_id.clone();
    let mut controller = meta.controller_id;
    let mut brokers: Vec<Broker> = meta
        .brokers
        .iter()
        .map(|b| Broker {
            node_id: b.node_id,
            host: b.host.clone(),
            port: b.port,
            rack: b.rack.clone(),
            fenced: None,
        })
        .collect();
    let conn = client.any()?;
    if conn.supports::<DescribeClusterRequest>() {
        let resp = conn.call(&DescribeClusterRequest::default())?;
        check(resp.error_code, resp.error_message.as_deref(), || {
            "describing the cluster".to_string()
        })?;
        cluster_id = Some(resp.cluster_id.to_string());
        controller = resp.controller_id.0;
        brokers = resp
            .brokers
            .iter()
            .map(|b| Broker {
                node_id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(ToString::to_string),
                fenced: Some(b.is_fenced),
            })
            .collect();
    }
    brokers.sort_by_key(|b| b.node_id);
    let internal = meta.topics.iter().filter(|t| t.internal).count();
    let value = json!({
        "cluster_id": cluster_id,
        "controller_id": (controller >= 0).then_some(controller),
        "brokers": brokers.iter().map(|b| json!({
            "node_id": b.node_id,
            "host": b.host,
            "port": b.port,
            "rack": b.rack,
            "fenced": b.fenced,
        })).collect::<Vec<Value>>(),
        "topics": meta.topics.len() - internal,
        "internal_topics": internal,
    });
    out.emit(&value, || {
        let mut summary = Table::new(&["CLUSTER-ID", &or_dash(cluster_id.as_deref())]);
        summary.row(vec![
            "CONTROLLER".into(),
            or_dash((controller >= 0).then_some(controller)),
        ]);
        summary.row(vec![
            "TOPICS".into(),
            (meta.topics.len() - internal).to_string(),
        ]);
        summary.row(vec!["INTERNAL-TOPICS".into(), internal.to_string()]);
        let mut table = Table::new(&["NODE-ID", "HOST", "PORT", "RACK", "FENCED"]);
        for b in &brokers {
            let node = if b.node_id == controller {
                format!("{}*", b.node_id)
            } else {
                b.node_id.to_string()
            };
            table.row(vec![
                node,
                b.host.clone(),
                b.port.to_string(),
                or_dash(b.rack.as_deref()),
                or_dash(b.fenced),
            ]);
        }
        format!("{}\n{}", summary.render(), table.render())
    })
}
