//! DeleteAcls: removes the ACL bindings matching each filter; each filter's result lists
//! the bindings it matched (among those present before the request). The removal is
//! persisted before the answer. Needs ALTER on the cluster; without an authorizer Kafka
//! answers SECURITY_DISABLED; a filter with unknown enums answers INVALID_REQUEST.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse, ResponseKind};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{AclBinding, AclFilter, Operation};

/// Handles DeleteAcls.
pub async fn handle(ctx: &RequestContext, req: DeleteAclsRequest) -> Handled {
    let refuse_all = |code: ResponseError, message: &str| -> Handled {
        let results = req.filters.iter().map(|_| failed(code, message)).collect();
        ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results)).into()
    };
    if let Some((code, message)) = ctx.acl_api_refusal(Operation::Alter) {
        return refuse_all(code, message);
    }
    let filters: Vec<Result<AclFilter, String>> = req
        .filters
        .iter()
        .map(|f| {
            AclFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    // Persisting writes the metadata store with fsyncs: on the blocking pool.
    super::on_blocking_pool(ctx, move |ctx| delete(ctx, filters)).await
}

fn delete(ctx: &RequestContext, filters: Vec<Result<AclFilter, String>>) -> Handled {
    let valid: Vec<&AclFilter> = filters.iter().filter_map(|f| f.as_ref().ok()).collect();
    // What each filter matches, among the bindings present before the request.
    let outcome = ctx
        .broker
        .security
        .authorizer
        .change(&ctx.broker.topics, |acls| {
            let bindings: Vec<Option<AclBinding>> = acls
                .iter()
                .map(|r| AclBinding::from_record(r).ok())
                .collect();
            let matched: Vec<Vec<AclBinding>> = valid
                .iter()
                .map(|f| {
                    let mut m: Vec<AclBinding> = bindings
                        .iter()
                        .flatten()
                        .filter(|b| f.matches(b))
                        .cloned()
                        .collect();
                    m.sort();
                    m.dedup();
                    m
                })
                .collect();
            let mut i = 0;
            acls.retain(|_| {
                let keep = bindings[i]
                    .as_ref()
                    .is_none_or(|b| !valid.iter().any(|f| f.matches(b)));
                i += 1;
                keep
            });
            matched
        });
    let mut matched = match outcome {
        Ok(m) => m.into_iter(),
        Err(e) => {
            tracing::error!("deleting ACLs failed: {e}");
            let code = crate::errors::topic_error(&e);
            let results = filters
                .iter()
                .map(|f| match f {
                    Err(reason) => failed(ResponseError::InvalidRequest, reason),
                    Ok(_) => failed(code, &e.to_string()),
                })
                .collect();
            return ResponseKind::DeleteAcls(
                DeleteAclsResponse::default().with_filter_results(results),
            )
            .into();
        }
    };
    let results = filters
        .iter()
        .map(|f| match f {
            Err(reason) => failed(ResponseError::InvalidRequest, reason),
            Ok(_) => {
                let deleted = matched.next().unwrap_or_default();
                if !deleted.is_empty() {
                    tracing::info!(
                        target: "floe::audit",
                        principal = %ctx.session.principal,
                        host = %ctx.session.client_address,
                        "deleted ACLs: {deleted:?}"
                    );
                }
                DeleteAclsFilterResult::default()
                    .with_matching_acls(deleted.iter().map(matching).collect())
            }
        })
        .collect();
    ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results)).into()
}

fn matching(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type.code())
        .with_resource_name(str_bytes(&b.resource_name))
        .with_pattern_type(b.pattern_type.code())
        .with_principal(str_bytes(&b.principal))
        .with_host(str_bytes(&b.host))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission.code())
}

fn failed(code: ResponseError, message: &str) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
}
