//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on individual topic configs
//! (APPEND/SUBTRACT only for list-typed configs such as `cleanup.policy`).

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ResponseKind,
};

use kafka_protocol::ResponseError;
use kafka_protocol::protocol::StrBytes;

use super::{Handled, RequestContext, str_bytes};
use crate::errors::topic_error;
use crate::security::acl::{Operation, ResourceType};
use crate::topic_config::{self, ConfigType};
use crate::topics::TopicError;

/// Kafka's resource type for topics.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type for brokers.
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's resource type for broker loggers (their configs are the cluster's, for ACLs).
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

/// The authorization error for `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on the
/// configs of a resource, if the client may not: a topic's need the operation on the
/// topic, a broker's on the cluster (Kafka's `ConfigHelper` and `KafkaApis`).
pub fn config_authorization(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    operation: Operation,
) -> Option<ResponseError> {
    match resource_type {
        RESOURCE_TOPIC if !ctx.authorize(operation, ResourceType::Topic, name) => {
            Some(ResponseError::TopicAuthorizationFailed)
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER if !ctx.authorize_cluster(operation) => {
            Some(ResponseError::ClusterAuthorizationFailed)
        }
        _ => None,
    }
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Broker settings come from the config file, env and flags; they are not changed online.
pub fn refuse_broker_change() -> TopicError {
    TopicError::InvalidConfig(
        "Dynamic broker configs are not supported: change the broker's config file and restart"
            .into(),
    )
}

/// The outcome of changing one config resource, as the response's error code and message:
/// a topic resource is changed by `change_topic`, broker resources are refused (see
/// [`refuse_broker_change`]), any other type is invalid. Shared with AlterConfigs.
pub fn resource_outcome(
    resource_type: i8,
    change_topic: impl FnOnce() -> Result<(), TopicError>,
) -> (i16, Option<StrBytes>) {
    let outcome = match resource_type {
        RESOURCE_TOPIC => change_topic(),
        RESOURCE_BROKER => Err(refuse_broker_change()),
        other => Err(TopicError::InvalidConfig(format!(
            "Unsupported resource type {other}"
        ))),
    };
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (topic_error(&e).code(), Some(str_bytes(&e.to_string()))),
    }
}

/// Handles IncrementalAlterConfigs.
pub async fn handle(ctx: &RequestContext, req: IncrementalAlterConfigsRequest) -> Handled {
    // Changes topics: partition directories and files, metadata-store writes with fsyncs.
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: IncrementalAlterConfigsRequest) -> Handled {
    let topics = &ctx.broker.topics;
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let resp = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if let Some(code) = config_authorization(
                ctx,
                r.resource_type,
                &r.resource_name,
                Operation::AlterConfigs,
            ) {
                return resp.with_error_code(code.code()).with_error_message(None);
            }
            let (code, message) = resource_outcome(r.resource_type, || {
                    let name = r.resource_name.as_str();
                    let topic = topics.get(name).ok_or(TopicError::Unknown)?;
                    let mut configs = topic.record.configs.clone();
                    for c in &r.configs {
                        let key = c.name.to_string();
                        let def = topic_config::find(&key).ok_or_else(|| {
                            TopicError::InvalidConfig(format!("Unknown topic config name: {key}"))
                        })?;
                        let value = c.value.as_ref().map(|v| v.to_string());
                        match (c.config_operation, value) {
                            (OP_SET, Some(v)) => {
                                configs.insert(key, v);
                            }
                            (OP_DELETE, _) => {
                                configs.remove(&key);
                            }
                            (op @ (OP_APPEND | OP_SUBTRACT), Some(v)) => {
                                if def.kind != ConfigType::List {
                                    return Err(TopicError::InvalidConfig(format!(
                                        "Config {key} is not a list; APPEND and SUBTRACT need a list config"
                                    )));
                                }
                                let current = topic_config::effective(&key, &configs, topics.config());
                                let mut items: Vec<String> = current
                                    .split(',')
                                    .map(|s| s.trim().to_string())
                                    .filter(|s| !s.is_empty())
                                    .collect();
                                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                                    if op == OP_APPEND {
                                        if !items.iter().any(|i| i == item) {
                                            items.push(item.to_string());
                                        }
                                    } else {
                                        items.retain(|i| i != item);
                                    }
                                }
                                configs.insert(key, items.join(","));
                            }
                            (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                                return Err(TopicError::InvalidConfig(format!(
                                    "Null value not supported for {key}"
                                )));
                            }
                            (op, _) => {
                                return Err(TopicError::InvalidConfig(format!(
                                    "Unknown config operation {op} for {key}"
                                )));
                            }
                        }
                    }
                    topics.alter_configs(name, configs, req.validate_only)
            });
            resp.with_error_code(code).with_error_message(message)
        })
        .collect();
    ResponseKind::IncrementalAlterConfigs(
        IncrementalAlterConfigsResponse::default().with_responses(responses),
    )
    .into()
}
