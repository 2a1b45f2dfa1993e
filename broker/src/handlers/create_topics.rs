//! CreateTopics: partitions (or the broker default), replication factor 1 (the only one a
//! single node can honour), config overrides validated by name and value, `validate_only`.
//! v5+ answers with the resulting partition count and configs.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, ResponseKind};

use super::{Handled, RequestContext, str_bytes};
use crate::errors::topic_error;
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};
use crate::topic_config;
use crate::topics::{NewTopic, TopicError};

/// Handles CreateTopics.
pub async fn handle(ctx: &RequestContext, req: CreateTopicsRequest) -> Handled {
    // Changes topics: partition directories and files, metadata-store writes with fsyncs.
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: CreateTopicsRequest) -> Handled {
    let topics = &ctx.broker.topics;
    let node = ctx.broker.endpoint.node_id;
    let mut results = Vec::with_capacity(req.topics.len());
    // CREATE on the cluster covers every topic (asked quietly, as Kafka does); else CREATE
    // on each. The configs are answered only with DESCRIBE_CONFIGS on the topic.
    let cluster_create = ctx.authorizing()
        && ctx.authorize_quietly(Operation::Create, ResourceType::Cluster, CLUSTER_NAME);
    for t in req.topics {
        let name = t.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        if !cluster_create && !ctx.authorize(Operation::Create, ResourceType::Topic, &name) {
            results.push(
                result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("Authorization failed.")))
                    .with_configs(None),
            );
            continue;
        }
        let describable =
            ctx.authorize_quietly(Operation::DescribeConfigs, ResourceType::Topic, &name);
        let outcome = (|| {
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                let Some(value) = &c.value else {
                    return Err(TopicError::InvalidConfig(format!(
                        "Null value not supported for topic configs: {}",
                        c.name.as_str()
                    )));
                };
                configs.insert(c.name.to_string(), value.to_string());
            }
            let mut new = NewTopic {
                name: name.clone(),
                partitions: (t.num_partitions != -1).then_some(t.num_partitions),
                replication_factor: (t.replication_factor != -1).then_some(t.replication_factor),
                configs,
            };
            if !t.assignments.is_empty() {
                if t.num_partitions != -1 || t.replication_factor != -1 {
                    return Err(TopicError::InvalidReplicaAssignment(
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                    ));
                }
                for (i, a) in t.assignments.iter().enumerate() {
                    if a.partition_index != i as i32
                        || a.broker_ids.len() != 1
                        || a.broker_ids[0].0 != node
                    {
                        return Err(TopicError::InvalidReplicaAssignment(format!(
                            "Replica assignment of partition {} must be [{node}] on this single-node cluster",
                            a.partition_index
                        )));
                    }
                }
                new.partitions = Some(t.assignments.len() as i32);
            }
            if req.validate_only {
                let partitions = topics.validate_new_topic(&new)?;
                Ok((partitions, new.configs, uuid::Uuid::nil()))
            } else {
                let created = topics.create(new)?;
                Ok((
                    created.record.partitions,
                    created.record.configs,
                    created.record.topic_id,
                ))
            }
        })();
        let result = match outcome {
            Ok((partitions, overrides, topic_id)) => {
                let configs = topic_config::TOPIC_CONFIGS
                    .iter()
                    .map(|d| {
                        let value = topic_config::effective(d.name, &overrides, topics.config());
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(d.name))
                            .with_value(Some(str_bytes(&value)))
                            .with_config_source(if overrides.contains_key(d.name) { 1 } else { 5 })
                    })
                    .collect();
                let result = result
                    .with_error_message(None)
                    .with_topic_id(topic_id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                if !describable && ctx.version() >= 5 {
                    result
                        .with_topic_config_error_code(
                            ResponseError::TopicAuthorizationFailed.code(),
                        )
                        .with_configs(Some(Vec::new()))
                } else {
                    result.with_configs(Some(configs))
                }
            }
            Err(e) => {
                if !matches!(e, TopicError::AlreadyExists(_)) {
                    tracing::info!(topic = %name, "create topic refused: {e}");
                }
                result
                    .with_error_code(topic_error(&e).code())
                    .with_error_message(Some(str_bytes(&e.to_string())))
                    .with_configs(None)
            }
        };
        results.push(result);
    }
    ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(results)).into()
}
