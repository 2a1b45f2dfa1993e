//! AlterConfigs (legacy): replaces a topic's whole set of config overrides.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ResponseKind};

use super::incremental_alter_configs::{config_authorization, resource_outcome};
use super::{Handled, RequestContext};
use crate::security::acl::Operation;
use crate::topics::TopicError;

/// Handles AlterConfigs.
pub async fn handle(ctx: &RequestContext, req: AlterConfigsRequest) -> Handled {
    // Changes topics: partition directories and files, metadata-store writes with fsyncs.
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: AlterConfigsRequest) -> Handled {
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
                let mut configs = BTreeMap::new();
                for c in &r.configs {
                    let Some(v) = &c.value else {
                        return Err(TopicError::InvalidConfig(format!(
                            "Null value not supported for topic config {}",
                            c.name.as_str()
                        )));
                    };
                    configs.insert(c.name.to_string(), v.to_string());
                }
                ctx.broker.topics.alter_configs(
                    r.resource_name.as_str(),
                    configs,
                    req.validate_only,
                )
            });
            resp.with_error_code(code).with_error_message(message)
        })
        .collect();
    ResponseKind::AlterConfigs(AlterConfigsResponse::default().with_responses(responses)).into()
}
