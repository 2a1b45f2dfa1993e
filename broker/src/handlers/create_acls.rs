//! CreateAcls: adds ACL bindings (an existing one is not added twice), persisted in the
//! metadata store before the answer and in force from then on. Needs ALTER on the cluster;
//! without an authorizer Kafka answers SECURITY_DISABLED. A binding Kafka would refuse
//! (unknown or ANY enums, MATCH pattern, empty name, a cluster not named `kafka-cluster`, a
//! principal without a type) answers INVALID_REQUEST; the others are still created.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, ResponseKind};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{AclBinding, Operation};

/// Handles CreateAcls.
pub async fn handle(ctx: &RequestContext, req: CreateAclsRequest) -> Handled {
    let refuse_all = |code: ResponseError, message: &str| -> Handled {
        let results = req
            .creations
            .iter()
            .map(|_| failed(code, message))
            .collect();
        ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results)).into()
    };
    if let Some((code, message)) = ctx.acl_api_refusal(Operation::Alter) {
        return refuse_all(code, message);
    }
    let parsed: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            AclBinding::from_wire(
                c.resource_type,
                &c.resource_name,
                c.resource_pattern_type,
                &c.principal,
                &c.host,
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    // Persisting writes the metadata store with fsyncs: on the blocking pool.
    super::on_blocking_pool(ctx, move |ctx| create(ctx, parsed)).await
}

fn create(ctx: &RequestContext, parsed: Vec<Result<AclBinding, String>>) -> Handled {
    let valid: Vec<&AclBinding> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
    let saved = if valid.is_empty() {
        Ok(())
    } else {
        ctx.broker
            .security
            .authorizer
            .change(&ctx.broker.topics, |acls| {
                for b in &valid {
                    let record = b.to_record();
                    if !acls.contains(&record) {
                        acls.push(record);
                    }
                }
            })
    };
    if let Err(e) = &saved {
        tracing::error!("creating ACLs failed: {e}");
    } else if !valid.is_empty() {
        tracing::info!(
            target: "floe::audit",
            principal = %ctx.session.principal,
            host = %ctx.session.client_address,
            "created ACLs: {valid:?}"
        );
    }
    let results = parsed
        .iter()
        .map(|p| match (p, &saved) {
            (Err(reason), _) => failed(ResponseError::InvalidRequest, reason),
            (Ok(_), Err(e)) => failed(crate::errors::topic_error(e), &e.to_string()),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results)).into()
}

fn failed(code: ResponseError, message: &str) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
}
