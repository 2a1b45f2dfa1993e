//! DeleteRecords: move partitions' log start offsets up (the low watermark), so the records
//! below are no longer served, and delete the segments entirely below; the new start is
//! durable before the answer. `offset` -1 means the high watermark.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};

use super::{Handled, RequestContext};
use crate::security::acl::{Operation, ResourceType};

/// Handles DeleteRecords.
pub async fn handle(ctx: &RequestContext, req: DeleteRecordsRequest) -> Handled {
    // Renames segment files and writes the log-start checkpoint with fsyncs.
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: DeleteRecordsRequest) -> Handled {
    let topics = &ctx.broker.topics;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let allowed = ctx.authorize(Operation::Delete, ResourceType::Topic, &name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result =
                        DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    if !allowed {
                        return result
                            .with_low_watermark(-1)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    match topics.delete_records(&name, p.partition_index, p.offset) {
                        Ok(low_watermark) => {
                            tracing::info!(topic = %name, partition = p.partition_index, low_watermark, "records deleted");
                            result.with_low_watermark(low_watermark)
                        }
                        Err((code, message)) => {
                            tracing::warn!(topic = %name, partition = p.partition_index, offset = p.offset, error = ?code, %message, "DeleteRecords refused");
                            result.with_low_watermark(-1).with_error_code(code.code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::DeleteRecords(DeleteRecordsResponse::default().with_topics(results)).into()
}
