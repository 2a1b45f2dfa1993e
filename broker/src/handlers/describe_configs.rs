//! DescribeConfigs for topics (every known topic config, with its source) and for this
//! broker (its settings under Kafka's broker config names, `broker_configs.rs`).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, ResponseKind};

use super::incremental_alter_configs::config_authorization;
use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::Operation;
use crate::topic_config;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Handles DescribeConfigs.
pub async fn handle(ctx: &RequestContext, req: DescribeConfigsRequest) -> Handled {
    let broker = &ctx.broker;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if let Some(code) = config_authorization(
                ctx,
                r.resource_type,
                &r.resource_name,
                Operation::DescribeConfigs,
            ) {
                let message = match code {
                    ResponseError::TopicAuthorizationFailed => "Topic authorization failed.",
                    _ => "Cluster authorization failed.",
                };
                return result
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)));
            }
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = broker.topics.get(r.resource_name.as_str()) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(&format!(
                                "Topic {} does not exist",
                                r.resource_name.as_str()
                            ))));
                    };
                    let configs = topic_config::TOPIC_CONFIGS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|d| {
                            let overridden = topic.record.configs.get(d.name);
                            let value = topic_config::effective(
                                d.name,
                                &topic.record.configs,
                                &broker.config,
                            );
                            let source = if overridden.is_some() {
                                SOURCE_DYNAMIC_TOPIC
                            } else {
                                SOURCE_DEFAULT
                            };
                            let mut entry = DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(d.name))
                                .with_value(Some(str_bytes(&value)))
                                .with_config_source(source)
                                .with_config_type(d.kind as i8);
                            if req.include_synonyms {
                                let mut synonyms = Vec::new();
                                if let Some(v) = overridden {
                                    synonyms.push(
                                        DescribeConfigsSynonym::default()
                                            .with_name(str_bytes(d.name))
                                            .with_value(Some(str_bytes(v)))
                                            .with_source(SOURCE_DYNAMIC_TOPIC),
                                    );
                                }
                                synonyms.push(
                                    DescribeConfigsSynonym::default()
                                        .with_name(str_bytes(d.name))
                                        .with_value(Some(str_bytes(&topic_config::default_value(
                                            d.name,
                                            &broker.config,
                                        ))))
                                        .with_source(SOURCE_DEFAULT),
                                );
                                entry = entry.with_synonyms(synonyms);
                            }
                            if req.include_documentation {
                                entry = entry.with_documentation(Some(str_bytes(d.doc)));
                            }
                            entry
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != broker.endpoint.node_id.to_string() {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(str_bytes(&format!(
                                "Unexpected broker id, expected {} or empty string, but received {name}",
                                broker.endpoint.node_id
                            ))));
                    }
                    let configs = crate::broker_configs::broker_configs(
                        &broker.config,
                        &broker.endpoint,
                    )
                    .into_iter()
                    .filter(|c| wanted(c.name))
                    .map(|c| {
                        let source = if c.is_default {
                            SOURCE_DEFAULT
                        } else {
                            SOURCE_STATIC_BROKER
                        };
                        let mut entry = DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(c.name))
                            .with_value(Some(str_bytes(&c.value)))
                            .with_read_only(true)
                            .with_config_source(source)
                            .with_config_type(c.kind as i8);
                        if req.include_synonyms {
                            entry = entry.with_synonyms(vec![
                                DescribeConfigsSynonym::default()
                                    .with_name(str_bytes(c.name))
                                    .with_value(Some(str_bytes(&c.value)))
                                    .with_source(source),
                            ]);
                        }
                        if req.include_documentation {
                            entry = entry.with_documentation(Some(str_bytes(c.doc)));
                        }
                        entry
                    })
                    .collect();
                    result.with_configs(configs)
                }
                other => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "Unsupported resource type {other}"
                    )))),
            }
        })
        .collect();
    ResponseKind::DescribeConfigs(DescribeConfigsResponse::default().with_results(results)).into()
}
