//! Metadata: brokers (just this one), the cluster id, and topics with their partitions.
//! Missing topics are auto-created when the client allows it (v4+) and the broker's
//! `auto_create_topics_enable` is on.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, ResponseKind, TopicName,
};
use uuid::Uuid;

use super::{Handled, RequestContext, str_bytes};
use crate::errors::topic_error;
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};
use crate::topics::{TopicInfo, Topics, is_internal, validate_topic_name};

/// "Authorized operations not requested" in Kafka's encoding.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Handles Metadata. With authorization, a topic the client may not DESCRIBE is left out
/// of "all topics" and answers TOPIC_AUTHORIZATION_FAILED when named (before its existence
/// is looked at); auto-creation needs CREATE on the cluster or on the topic.
pub async fn handle(ctx: &RequestContext, req: MetadataRequest) -> Handled {
    let broker = &ctx.broker;
    let version = ctx.version();
    // v0: an empty list means all topics; v1+: null means all topics.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let allow_auto_create = version < 4 || req.allow_auto_topic_creation;
    let node = BrokerId(broker.endpoint.node_id);
    // v8+: the client's operations on each described topic, when asked for.
    let topic_operations = version >= 8 && req.include_topic_authorized_operations;

    let mut topics = Vec::new();
    match requested {
        None => {
            for t in broker.topics.list() {
                if ctx.authorize_quietly(Operation::Describe, ResourceType::Topic, &t.name) {
                    topics.push(topic_entry(&broker.topics, &t, node));
                }
            }
        }
        Some(list) => {
            for wanted in list {
                let (name, by_id) = match (&wanted.name, wanted.topic_id) {
                    (Some(name), _) => (name.0.to_string(), false),
                    (None, id) if id != Uuid::nil() => match broker.topics.name_by_id(&id) {
                        Some(n) => (n, true),
                        None => {
                            topics.push(
                                MetadataResponseTopic::default()
                                    .with_error_code(ResponseError::UnknownTopicId.code())
                                    .with_topic_id(id)
                                    .with_topic_authorized_operations(
                                        AUTHORIZED_OPERATIONS_OMITTED,
                                    ),
                            );
                            continue;
                        }
                    },
                    (None, _) => continue,
                };
                if !ctx.authorize(Operation::Describe, ResourceType::Topic, &name) {
                    // Named by id: the id is not a secret, the name is.
                    let denied = MetadataResponseTopic::default()
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
                    topics.push(if by_id {
                        denied.with_topic_id(wanted.topic_id)
                    } else {
                        denied.with_name(Some(TopicName(str_bytes(&name))))
                    });
                    continue;
                }
                topics.push(lookup(ctx, &name, allow_auto_create, node).await);
            }
        }
    }
    if topic_operations {
        for t in &mut topics {
            if t.error_code == ResponseError::TopicAuthorizationFailed.code() {
                continue;
            }
            if let Some(name) = &t.name {
                t.topic_authorized_operations =
                    ctx.authorized_operations(ResourceType::Topic, name.0.as_str());
            }
        }
    }
    // v8-10: the client's operations on the cluster, when asked for (0 without DESCRIBE).
    let cluster_operations =
        if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
            if ctx.authorize_cluster(Operation::Describe) {
                ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
            } else {
                0
            }
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };

    let brokers = vec![
        MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(&ctx.endpoint().host))
            .with_port(ctx.endpoint().port),
    ];
    ResponseKind::Metadata(
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(str_bytes(&broker.topics.cluster_id())))
            .with_controller_id(node)
            .with_topics(topics)
            .with_cluster_authorized_operations(cluster_operations),
    )
    .into()
}

async fn lookup(
    ctx: &RequestContext,
    name: &str,
    allow_auto_create: bool,
    node: BrokerId,
) -> MetadataResponseTopic {
    let topics = &ctx.broker.topics;
    let error_entry = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_error_code(code.code())
            .with_name(Some(TopicName(str_bytes(name))))
            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
    };
    if let Err(e) = validate_topic_name(name) {
        return error_entry(topic_error(&e));
    }
    let found = match topics.get(name) {
        None if allow_auto_create
            && topics.config().auto_create_topics_enable
            && !may_create(ctx, name) =>
        {
            return error_entry(ResponseError::TopicAuthorizationFailed)
                .with_is_internal(is_internal(name));
        }
        None if allow_auto_create => {
            // Creating a topic writes files and the metadata store: on the blocking pool.
            let broker = Arc::clone(&ctx.broker);
            let owned = name.to_string();
            let created =
                tokio::task::spawn_blocking(move || broker.topics.get_or_auto_create(&owned)).await;
            match created {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::warn!(topic = %name, "auto-creating topic failed: {e}");
                    return error_entry(topic_error(&e));
                }
                Err(e) => {
                    tracing::error!(topic = %name, "auto-creating topic failed: {e}");
                    return error_entry(ResponseError::UnknownServerError);
                }
            }
        }
        found => found,
    };
    match found {
        Some(t) => topic_entry(topics, &t, node),
        None => error_entry(ResponseError::UnknownTopicOrPartition),
    }
}

/// Whether the client may have `name` auto-created: CREATE on the cluster (asked quietly,
/// as Kafka does) or on the topic.
fn may_create(ctx: &RequestContext, name: &str) -> bool {
    ctx.authorize_quietly(Operation::Create, ResourceType::Cluster, CLUSTER_NAME)
        || ctx.authorize(Operation::Create, ResourceType::Topic, name)
}

/// Who leads a partition of this single node, as Metadata and DescribeTopicPartitions
/// report it.
pub struct Leadership {
    /// LEADER_NOT_AVAILABLE for an offline partition, else 0.
    pub error_code: i16,
    /// This node, or -1 when offline.
    pub leader: BrokerId,
    /// In-sync replicas: this node, or none when offline.
    pub isr: Vec<BrokerId>,
    /// Offline replicas: this node when offline, else none.
    pub offline: Vec<BrokerId>,
}

/// The leadership of partition `p` of `topic` on node `node`.
pub fn leadership(topics: &Topics, topic: &str, p: i32, node: BrokerId) -> Leadership {
    if topics.offline_reason(topic, p).is_some() {
        Leadership {
            error_code: ResponseError::LeaderNotAvailable.code(),
            leader: BrokerId(-1),
            isr: vec![],
            offline: vec![node],
        }
    } else {
        Leadership {
            error_code: 0,
            leader: node,
            isr: vec![node],
            offline: vec![],
        }
    }
}

/// A topic's entry. An offline partition (its log could not be opened) is listed as Kafka
/// lists one whose only replica is offline: no leader, LEADER_NOT_AVAILABLE, the replica in
/// `offline_replicas`; clients route around it and the other partitions keep working.
fn topic_entry(topics: &Topics, t: &TopicInfo, node: BrokerId) -> MetadataResponseTopic {
    let partitions = (0..t.record.partitions)
        .map(|p| {
            let l = leadership(topics, &t.name, p, node);
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_error_code(l.error_code)
                .with_leader_id(l.leader)
                .with_isr_nodes(l.isr)
                .with_offline_replicas(l.offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_topic_id(t.record.topic_id)
        .with_is_internal(is_internal(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
