//! `floe topic`: create, list, describe, delete, alter-config, add-partitions.

use anyhow::anyhow;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{Value, json};

use crate::cli::args::TopicCommand;
use crate::cli::client::{Client, TopicMeta, topic_name};
use crate::cli::error::check;
use crate::cli::offsets::{EARLIEST, LATEST, bounds};
use crate::cli::output::{Out, Table, list};

/// DescribeConfigs and IncrementalAlterConfigs resource type of topics.
const TOPIC_RESOURCE: i8 = 2;

/// Runs one `floe topic` command.
pub fn run(client: &mut Client, out: &mut Out, command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create {
            names,
            partitions,
            replication_factor,
            configs,
        } => create(
            client,
            out,
            &names,
            partitions,
            replication_factor,
            &configs,
        ),
        TopicCommand::List { internal } => list_topics(client, out, internal),
        TopicCommand::Describe { names } => describe(client, out, &names),
        TopicCommand::Delete { names } => delete(client, out, &names),
        TopicCommand::AlterConfig { name, set, delete } => {
            alter_config(client, out, &name, &set, &delete)
        }
        TopicCommand::AddPartitions { name, num, total } => {
            add_partitions(client, out, &name, num, total)
        }
    }
}

fn timeout_ms(client: &Client) -> i32 {
    i32::try_from(client.request_timeout().as_millis()).unwrap_or(i32::MAX)
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn create(
    client: &mut Client,
    out: &mut Out,
    names: &[String],
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(timeout_ms(client))
        .with_topics(
            names
                .iter()
                .map(|n| {
                    CreatableTopic::default()
                        .with_name(topic_name(n))
                        .with_num_partitions(partitions)
                        .with_replication_factor(replication_factor)
                        .with_configs(
                            configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(str_bytes(k))
                                        .with_value(Some(str_bytes(v)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp = client.retry(|c| c.controller()?.call(&req))?;
    let mut created = Vec::new();
    let mut failure = None;
    for t in resp.topics {
        let name = t.name.0.to_string();
        if let Err(e) = check(t.error_code, t.error_message.as_deref(), || {
            format!("creating topic '{name}'")
        }) {
            failure.get_or_insert(e);
            continue;
        }
        created.push(json!({
            "name": name,
            "topic_id": (!t.topic_id.is_nil()).then(|| t.topic_id.to_string()),
            "partitions": (t.num_partitions > 0).then_some(t.num_partitions)
                .or((partitions > 0).then_some(partitions)),
            "replication_factor": (t.replication_factor > 0).then_some(t.replication_factor)
                .or((replication_factor > 0).then_some(replication_factor)),
        }));
    }
    if !created.is_empty() {
        let value = Value::Array(created);
        out.emit(&value, || {
            let mut table = Table::new(&["TOPIC", "STATUS"]);
            for t in value.as_array().into_iter().flatten() {
                table.row(vec![
                    t["name"].as_str().unwrap_or("").to_string(),
                    "created".into(),
                ]);
            }
            table.render()
        })?;
    }
    failure.map_or(Ok(()), Err)
}

fn list_topics(client: &mut Client, out: &mut Out, internal: bool) -> anyhow::Result<()> {
    let meta = client.cluster(None, false)?;
    let topics: Vec<&TopicMeta> = meta
        .topics
        .iter()
        .filter(|t| internal || !t.internal)
        .collect();
    let value = Value::Array(
        topics
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "topic_id": (!t.id.is_nil()).then(|| t.id.to_string()),
                    "partitions": t.partitions.len(),
                    "replication_factor": replication(t),
                    "internal": t.internal,
                })
            })
            .collect(),
    );
    out.emit(&value, || {
        let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICAS"]);
        for t in &topics {
            table.row(vec![
                t.name.clone(),
                t.partitions.len().to_string(),
                replication(t).to_string(),
            ]);
        }
        table.render()
    })
}

/// The replica count of the topic's first partition (what Kafka's tools show).
fn replication(t: &TopicMeta) -> usize {
    t.partitions.first().map_or(0, |p| p.replicas.len())
}

/// DescribeConfigs' config sources.
fn config_source(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

fn topic_configs(client: &mut Client, name: &str) -> anyhow::Result<Vec<Value>> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(None),
    ]);
    let resp = client.any()?.call(&req)?;
    let result = resp
        .results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("DescribeConfigs answered no result for '{name}'"))?;
    check(result.error_code, result.error_message.as_deref(), || {
        format!("describing the configs of topic '{name}'")
    })?;
    let mut configs: Vec<Value> = result
        .configs
        .iter()
        .map(|c| {
            json!({
                "name": c.name.to_string(),
                "value": if c.is_sensitive { None } else { c.value.as_ref().map(ToString::to_string) },
                "source": config_source(c.config_source),
                "read_only": c.read_only,
                "sensitive": c.is_sensitive,
            })
        })
        .collect();
    configs.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(configs)
}

fn describe(client: &mut Client, out: &mut Out, names: &[String]) -> anyhow::Result<()> {
    let mut described = Vec::new();
    for name in names {
        let topic = client.topic(name, false)?;
        let served: Vec<i32> = topic
            .partitions
            .iter()
            .filter(|p| p.error == 0 && p.leader >= 0)
            .map(|p| p.index)
            .collect();
        let starts = bounds(client, &topic, &served, EARLIEST)?;
        let ends = bounds(client, &topic, &served, LATEST)?;
        let configs = topic_configs(client, name)?;
        let partitions: Vec<Value> = topic
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "partition": p.index,
                    "leader": (p.leader >= 0).then_some(p.leader),
                    "leader_epoch": p.leader_epoch,
                    "replicas": p.replicas,
                    "isr": p.isr,
                    "offline_replicas": p.offline,
                    "log_start_offset": starts.get(&p.index),
                    "high_watermark": ends.get(&p.index),
                    "error": (p.error != 0).then(|| crate::cli::error::code_name(p.error)),
                })
            })
            .collect();
        described.push(json!({
            "name": topic.name,
            "topic_id": (!topic.id.is_nil()).then(|| topic.id.to_string()),
            "internal": topic.internal,
            "partitions": partitions,
            "configs": configs,
        }));
    }
    let value = Value::Array(described);
    out.emit(&value, || describe_text(&value))
}

fn describe_text(value: &Value) -> String {
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => list(&items.iter().map(ToString::to_string).collect::<Vec<_>>()),
        other => other.to_string(),
    };
    let mut text = String::new();
    for (i, t) in value.as_array().into_iter().flatten().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let partitions = t["partitions"].as_array().cloned().unwrap_or_default();
        let mut summary = Table::new(&["NAME", &s(&t["name"])]);
        summary.row(vec!["TOPIC-ID".into(), s(&t["topic_id"])]);
        summary.row(vec!["INTERNAL".into(), s(&t["internal"])]);
        summary.row(vec!["PARTITIONS".into(), partitions.len().to_string()]);
        text.push_str(&summary.render());
        let mut table = Table::new(&[
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "LOG-START-OFFSET",
            "HIGH-WATERMARK",
            "ERROR",
        ]);
        for p in &partitions {
            table.row(
                [
                    "partition",
                    "leader",
                    "leader_epoch",
                    "replicas",
                    "isr",
                    "log_start_offset",
                    "high_watermark",
                    "error",
                ]
                .iter()
                .map(|k| s(&p[*k]))
                .collect(),
            );
        }
        text.push('\n');
        text.push_str(&table.render());
        let mut configs = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
        for c in t["configs"].as_array().into_iter().flatten() {
            configs.row(vec![s(&c["name"]), s(&c["value"]), s(&c["source"])]);
        }
        text.push('\n');
        text.push_str(&configs.render());
    }
    text
}

fn delete(client: &mut Client, out: &mut Out, names: &[String]) -> anyhow::Result<()> {
    let timeout = timeout_ms(client);
    let resp = client.retry(|c| {
        let conn = c.controller()?;
        let version = conn.version::<DeleteTopicsRequest>()?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(timeout);
        if version >= 6 {
            req = req.with_topics(
                names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                    .collect(),
            );
        } else {
            req = req.with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        }
        conn.call_at(&req, version)
    })?;
    let mut deleted = Vec::new();
    let mut failure = None;
    for r in resp.responses {
        let name = r.name.map(|n| n.0.to_string()).unwrap_or_default();
        match check(r.error_code, r.error_message.as_deref(), || {
            format!("deleting topic '{name}'")
        }) {
            Ok(()) => deleted.push(name),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if !deleted.is_empty() {
        let value = Value::Array(
            deleted
                .iter()
                .map(|n| json!({"name": n, "deleted": true}))
                .collect(),
        );
        out.emit(&value, || {
            let mut table = Table::new(&["TOPIC", "STATUS"]);
            for n in &deleted {
                table.row(vec![n.clone(), "deleted".into()]);
            }
            table.render()
        })?;
    }
    failure.map_or(Ok(()), Err)
}

fn alter_config(
    client: &mut Client,
    out: &mut Out,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(str_bytes(k))
                .with_config_operation(SET)
                .with_value(Some(str_bytes(v)))
        })
        .collect();
    configs.extend(delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(str_bytes(k))
            .with_config_operation(DELETE)
            .with_value(None)
    }));
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(str_bytes(name))
            .with_configs(configs),
    ]);
    let resp = client.any()?.call(&req)?;
    for r in &resp.responses {
        check(r.error_code, r.error_message.as_deref(), || {
            format!("altering the configs of topic '{name}'")
        })?;
    }
    let set_map: serde_json::Map<String, Value> = set
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let value = json!({"name": name, "set": set_map, "deleted": delete});
    out.emit(&value, || {
        let mut table = Table::new(&["CONFIG", "CHANGE"]);
        for (k, v) in set {
            table.row(vec![k.clone(), format!("set to {v}")]);
        }
        for k in delete {
            table.row(vec![k.clone(), "deleted".into()]);
        }
        format!("Altered topic '{name}':\n{}", table.render())
    })
}

fn add_partitions(
    client: &mut Client,
    out: &mut Out,
    name: &str,
    num: Option<i32>,
    total: Option<i32>,
) -> anyhow::Result<()> {
    let current = i32::try_from(client.topic(name, false)?.partitions.len()).unwrap_or(i32::MAX);
    let count = match (num, total) {
        (Some(n), _) => current.saturating_add(n),
        (None, Some(t)) => t,
        (None, None) => return Err(crate::cli::error::usage("give --num or --total")),
    };
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(timeout_ms(client))
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(count)
                .with_assignments(None),
        ]);
    let resp = client.retry(|c| c.controller()?.call(&req))?;
    for r in &resp.results {
        check(r.error_code, r.error_message.as_deref(), || {
            format!("adding partitions to topic '{name}' (from {current} to {count})")
        })?;
    }
    let value = json!({"name": name, "partitions": count, "added": count - current});
    out.emit(&value, || {
        format!(
            "Topic '{name}' has {count} partitions ({} added).\n",
            count - current
        )
    })
}
