//! AlterClientQuotas: sets and removes client quotas (`producer_byte_rate`,
//! `consumer_byte_rate`, `request_percentage`, `controller_mutation_rate` of user and
//! client-id entities, `connection_creation_rate` of IP entities), as Kafka's
//! `ClientQuotaControlManager` does.
//!
//! Each entry is an entity and operations on its quotas: set a key to a value, or remove
//! it (`remove = true`; removing a key that is not set does nothing, and an entity left
//! without quotas is forgotten). An entry is applied whole or not at all; what refuses it
//! is INVALID_REQUEST with Kafka's message (see `security::quota::entity`): an invalid
//! entity, a key set twice, an unknown key, a value not greater than zero, a fraction for
//! an integer key. An entity named by two entries is refused in both (Kafka applies the
//! first but reports the error). The valid entries are persisted together with one
//! metadata-store write and then handed to the quota manager; with `validate_only` nothing
//! is written. Needs ALTER_CONFIGS on the cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, ResponseKind};

use super::{Handled, RequestContext, str_bytes};
use crate::errors::topic_error;
use crate::metadata_store::ClientQuotaRecord;
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};
use crate::security::quota::entity::{self, Entity};

/// What became of one entry: `Err((code, message))` if refused.
pub type Outcome = Result<(), (ResponseError, String)>;

/// Serializes alterations from persisting to handing the result to the quota manager, so
/// that a slower request cannot install older quotas after newer ones.
static APPLY: Mutex<()> = Mutex::new(());

/// Handles AlterClientQuotas.
pub async fn handle(ctx: &RequestContext, req: AlterClientQuotasRequest) -> Handled {
    let allowed = ctx.broker.security.authorizer.authorize(
        &ctx.session,
        Operation::AlterConfigs,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    if !allowed {
        let denied = Err((
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_string(),
        ));
        let outcomes = vec![denied; req.entries.len()];
        return ResponseKind::AlterClientQuotas(response(&req, outcomes)).into();
    }
    if req.validate_only {
        let mut records = ctx.broker.topics.security().client_quotas;
        let outcomes = alter(&mut records, &req);
        return ResponseKind::AlterClientQuotas(response(&req, outcomes)).into();
    }
    // Writes the metadata store, with fsyncs.
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: AlterClientQuotasRequest) -> Handled {
    let _serial = APPLY.lock().unwrap_or_else(PoisonError::into_inner);
    let applied = ctx.broker.topics.update_security(|security| {
        let outcomes = alter(&mut security.client_quotas, &req);
        (outcomes, security.client_quotas.clone())
    });
    let outcomes = match applied {
        Ok((outcomes, records)) => {
            ctx.broker.security.quotas.set_records(&records);
            outcomes
        }
        Err(e) => {
            let message = crate::topics::error_chain(&e);
            tracing::warn!("AlterClientQuotas could not be persisted: {message}");
            vec![Err((topic_error(&e), message)); req.entries.len()]
        }
    };
    ResponseKind::AlterClientQuotas(response(&req, outcomes)).into()
}

/// Applies `req` to `records`; one outcome per entry, in request order.
pub fn alter(records: &mut Vec<ClientQuotaRecord>, req: &AlterClientQuotasRequest) -> Vec<Outcome> {
    let invalid = |message: String| Err((ResponseError::InvalidRequest, message));
    let entities: Vec<Result<Entity, String>> = req
        .entries
        .iter()
        .map(|e| {
            entity::parse_entity(
                e.entity
                    .iter()
                    .map(|d| (&*d.entity_type, d.entity_name.as_deref())),
            )
        })
        .collect();
    let mut named: HashMap<&Entity, usize> = HashMap::new();
    for entity in entities.iter().flatten() {
        *named.entry(entity).or_default() += 1;
    }
    let mut outcomes = Vec::with_capacity(req.entries.len());
    for (entry, parsed) in req.entries.iter().zip(&entities) {
        let entity = match parsed {
            Ok(entity) => entity,
            Err(message) => {
                outcomes.push(invalid(message.clone()));
                continue;
            }
        };
        if named.get(entity).copied().unwrap_or(0) > 1 {
            outcomes.push(invalid(format!(
                "Ignoring duplicate entity {}",
                entity::display(entity)
            )));
            continue;
        }
        match changes(entity, entry) {
            Ok(changes) => {
                apply(records, entity, changes);
                outcomes.push(Ok(()));
            }
            Err(message) => outcomes.push(invalid(message)),
        }
    }
    outcomes
}

/// The checked operations of an entry: key to new value, `None` to remove.
fn changes<'a>(
    entity: &Entity,
    entry: &'a kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<BTreeMap<&'a str, Option<f64>>, String> {
    let mut changes = BTreeMap::new();
    for op in &entry.ops {
        let key: &str = &op.key;
        if changes.contains_key(key) {
            return Err(format!(
                "Duplicate quota key {key} not updating quota for this entity {}",
                entity::display(entity)
            ));
        }
        if op.remove {
            changes.insert(key, None);
        } else {
            entity::check_quota(entity, key, op.value)?;
            changes.insert(key, Some(op.value));
        }
    }
    Ok(changes)
}

fn apply(
    records: &mut Vec<ClientQuotaRecord>,
    entity: &Entity,
    changes: BTreeMap<&str, Option<f64>>,
) {
    let index = records.iter().position(|r| &r.entity == entity);
    let mut quotas = index.map(|i| records[i].quotas.clone()).unwrap_or_default();
    for (key, value) in changes {
        match value {
            Some(v) => {
                quotas.insert(key.to_string(), v);
            }
            None => {
                quotas.remove(key);
            }
        }
    }
    match (index, quotas.is_empty()) {
        (Some(i), true) => {
            records.remove(i);
        }
        (Some(i), false) => records[i].quotas = quotas,
        (None, true) => {}
        (None, false) => records.push(ClientQuotaRecord {
            entity: entity.clone(),
            quotas,
        }),
    }
}

fn response(req: &AlterClientQuotasRequest, outcomes: Vec<Outcome>) -> AlterClientQuotasResponse {
    let entries = req
        .entries
        .iter()
        .zip(outcomes)
        .map(|(entry, outcome)| {
            let (code, message) = match outcome {
                Ok(()) => (0, None),
                Err((error, message)) => (error.code(), Some(str_bytes(&message))),
            };
            EntryData::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_entity(
                    entry
                        .entity
                        .iter()
                        .map(|d| {
                            EntityData::default()
                                .with_entity_type(d.entity_type.clone())
                                .with_entity_name(d.entity_name.clone())
                        })
                        .collect(),
                )
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
