//! AlterConfigs (legacy): replaces a topic's whole set of config overrides.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ResponseKind};

use super::incremental_alter_configs::{RESOURCE_BROKER, RESOURCE_TOPIC, refuse_broker_change};
use super::{Handled, RequestContext, str_bytes};
use crate::errors::topic_error;
use crate::topics::TopicError;

/// Handles AlterConfigs.
pub async fn handle(ctx: &RequestContext, req: AlterConfigsRequest) -> Handled {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let resp = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let outcome = match r.resource_type {
                RESOURCE_TOPIC => {
                    let mut configs = BTreeMap::new();
                    let mut outcome = Ok(());
                    for c in &r.configs {
                        match &c.value {
                            Some(v) => {
                                configs.insert(c.name.to_string(), v.to_string());
                            }
                            None => {
                                outcome = Err(TopicError::InvalidConfig(format!(
                                    "Null value not supported for topic config {}",
                                    c.name.as_str()
                                )));
                            }
                        }
                    }
                    outcome.and_then(|()| {
                        ctx.broker.topics.alter_configs(
                            r.resource_name.as_str(),
                            configs,
                            req.validate_only,
                        )
                    })
                }
                RESOURCE_BROKER => Err(refuse_broker_change()),
                other => Err(TopicError::InvalidConfig(format!(
                    "Unsupported resource type {other}"
                ))),
            };
            match outcome {
                Ok(()) => resp.with_error_message(None),
                Err(e) => resp
                    .with_error_code(topic_error(&e).code())
                    .with_error_message(Some(str_bytes(&e.to_string()))),
            }
        })
        .collect();
    ResponseKind::AlterConfigs(AlterConfigsResponse::default().with_responses(responses)).into()
}
