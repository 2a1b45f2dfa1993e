//! DescribeAcls: the ACL bindings that match a filter, grouped by resource pattern. Needs
//! DESCRIBE on the cluster; without an authorizer Kafka answers SECURITY_DISABLED.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse, ResponseKind};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{AclBinding, AclFilter, Operation};

/// Handles DescribeAcls.
pub async fn handle(ctx: &RequestContext, req: DescribeAclsRequest) -> Handled {
    ResponseKind::DescribeAcls(describe(ctx, &req)).into()
}

fn describe(ctx: &RequestContext, req: &DescribeAclsRequest) -> DescribeAclsResponse {
    let error = |code: ResponseError, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if let Some((code, message)) = ctx.acl_api_refusal(Operation::Describe) {
        return error(code, message);
    }
    let authorizer = &ctx.broker.security.authorizer;
    let filter = match AclFilter::from_wire(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return error(ResponseError::InvalidRequest, &e),
    };
    let matching = authorizer
        .bindings()
        .into_iter()
        .filter(|b| filter.matches(b));
    DescribeAclsResponse::default().with_resources(resources(matching))
}

/// Bindings grouped by resource pattern, as Kafka's `aclsResources` answers.
fn resources(bindings: impl Iterator<Item = AclBinding>) -> Vec<DescribeAclsResource> {
    let mut grouped: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for b in bindings {
        grouped
            .entry((b.resource_type, b.resource_name.clone(), b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(&b.principal))
                    .with_host(str_bytes(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    grouped
        .into_iter()
        .map(|((t, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(t.code())
                .with_resource_name(str_bytes(&name))
                .with_pattern_type(pattern.code())
                .with_acls(acls)
        })
        .collect()
}
