//! DescribeClientQuotas: the configured client quotas whose entities match a filter, as
//! Kafka's `ClientQuotasImage.describe` answers it.
//!
//! Each filter component names an entity type (`user`, `client-id`, `ip`) and a match:
//! EXACT (0) an entity named `match`, DEFAULT (1) the type's default entity, SPECIFIED (2)
//! any entity of the type. An entity matches when it has every component's type with the
//! component's match; with `strict` it must also have no other types. An empty filter
//! matches every entity (none when strict). A malformed filter is INVALID_REQUEST (an
//! unknown entity type UNSUPPORTED_VERSION) with Kafka's message, and no entries. Needs
//! DESCRIBE_CONFIGS on the cluster.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    DescribeClientQuotasRequest, DescribeClientQuotasResponse, ResponseKind,
};

use super::{Handled, RequestContext, str_bytes};
use crate::metadata_store::ClientQuotaRecord;
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};
use crate::security::quota::entity::{CLIENT_ID, IP, USER};

/// Kafka's `MATCH_TYPE_EXACT`.
pub const MATCH_TYPE_EXACT: i8 = 0;
/// Kafka's `MATCH_TYPE_DEFAULT`.
pub const MATCH_TYPE_DEFAULT: i8 = 1;
/// Kafka's `MATCH_TYPE_SPECIFIED`.
pub const MATCH_TYPE_SPECIFIED: i8 = 2;

/// Handles DescribeClientQuotas.
pub async fn handle(ctx: &RequestContext, req: DescribeClientQuotasRequest) -> Handled {
    let allowed = ctx.broker.security.authorizer.authorize(
        &ctx.session,
        Operation::DescribeConfigs,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let result = if allowed {
        describe(&ctx.broker.topics.security().client_quotas, &req)
    } else {
        Err((
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_string(),
        ))
    };
    let response = match result {
        Ok(entries) => DescribeClientQuotasResponse::default().with_entries(Some(entries)),
        Err((error, message)) => DescribeClientQuotasResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(&message)))
            .with_entries(None),
    };
    ResponseKind::DescribeClientQuotas(response).into()
}

/// One filter component: the entity type and the name it must have (`None`: the default
/// entity), or any name.
#[derive(Debug)]
enum Component<'a> {
    Named(&'a str, Option<&'a str>),
    Specified(&'a str),
}

impl Component<'_> {
    fn entity_type(&self) -> &str {
        match self {
            Component::Named(t, _) | Component::Specified(t) => t,
        }
    }
}

/// The entries of `records` that `req`'s filter matches, or why the filter is refused.
pub fn describe(
    records: &[ClientQuotaRecord],
    req: &DescribeClientQuotasRequest,
) -> Result<Vec<EntryData>, (ResponseError, String)> {
    let invalid = |message: String| (ResponseError::InvalidRequest, message);
    let mut filter: Vec<Component<'_>> = Vec::with_capacity(req.components.len());
    for c in &req.components {
        let entity_type: &str = &c.entity_type;
        if entity_type.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if filter.iter().any(|f| f.entity_type() == entity_type) {
            return Err(invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            )));
        }
        if ![USER, CLIENT_ID, IP].contains(&entity_type) {
            return Err((
                ResponseError::UnsupportedVersion,
                format!("Unsupported entity type {entity_type}"),
            ));
        }
        let matched = c._match.as_deref();
        let component = match (c.match_type, matched) {
            (MATCH_TYPE_EXACT, Some(name)) => Component::Named(entity_type, Some(name)),
            (MATCH_TYPE_EXACT, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ));
            }
            (MATCH_TYPE_DEFAULT, None) => Component::Named(entity_type, None),
            (MATCH_TYPE_DEFAULT, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                ));
            }
            (MATCH_TYPE_SPECIFIED, None) => Component::Specified(entity_type),
            (MATCH_TYPE_SPECIFIED, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ));
            }
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        };
        filter.push(component);
    }
    let has = |t: &str| filter.iter().any(|f| f.entity_type() == t);
    if has(IP) && (has(USER) || has(CLIENT_ID)) {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component."
                .into(),
        ));
    }
    Ok(records
        .iter()
        .filter(|r| matches(r, &filter, req.strict))
        .map(entry)
        .collect())
}

fn matches(record: &ClientQuotaRecord, filter: &[Component<'_>], strict: bool) -> bool {
    if strict && record.entity.len() != filter.len() {
        return false;
    }
    filter.iter().all(|c| match c {
        Component::Named(t, name) => record.entity.get(*t).is_some_and(|n| n.as_deref() == *name),
        Component::Specified(t) => record.entity.contains_key(*t),
    })
}

fn entry(record: &ClientQuotaRecord) -> EntryData {
    EntryData::default()
        .with_entity(
            record
                .entity
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(str_bytes(t))
                        .with_entity_name(n.as_deref().map(str_bytes))
                })
                .collect(),
        )
        .with_values(
            record
                .quotas
                .iter()
                .map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(*v))
                .collect(),
        )
}
