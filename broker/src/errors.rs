//! The one place where internal errors become Kafka error codes.

use floe_storage::producer_state::ProducerError;
use floe_storage::{AppendError, ReadError, StorageError};
use kafka_protocol::ResponseError;

use crate::topics::{TopicError, Unavailable};

/// Kafka error code for a topic operation failure.
pub fn topic_error(e: &TopicError) -> ResponseError {
    match e {
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::Unknown => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::Metadata(_) | TopicError::Storage(_) => ResponseError::KafkaStorageError,
    }
}

/// Kafka error code for a partition that cannot be served: unknown, or offline (its log
/// could not be opened), which Kafka reports as KAFKA_STORAGE_ERROR.
pub fn unavailable(e: &Unavailable) -> ResponseError {
    match e {
        Unavailable::Unknown => ResponseError::UnknownTopicOrPartition,
        Unavailable::Offline(_) => ResponseError::KafkaStorageError,
    }
}

/// Kafka error code for a failed append.
pub fn append_error(e: &AppendError) -> ResponseError {
    match e {
        AppendError::Producer(ProducerError::OutOfOrderSequence { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        AppendError::Producer(ProducerError::InvalidProducerEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        AppendError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::InvalidRecords(_) => ResponseError::CorruptMessage,
        AppendError::Storage(s) => storage_error(s),
    }
}

/// Kafka error code for a failed read.
pub fn read_error(e: &ReadError) -> ResponseError {
    match e {
        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        ReadError::Storage(s) => storage_error(s),
    }
}

/// Kafka error code for an I/O-level storage failure: the partition is unusable on this
/// broker, which Kafka reports as KAFKA_STORAGE_ERROR (clients refresh metadata and retry).
pub fn storage_error(_e: &StorageError) -> ResponseError {
    ResponseError::KafkaStorageError
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_ones_clients_expect() {
        let cases: &[(TopicError, i16)] = &[
            (TopicError::InvalidName(String::new()), 17),
            (TopicError::AlreadyExists(String::new()), 36),
            (TopicError::Unknown, 3),
            (TopicError::InvalidPartitions(String::new()), 37),
            (TopicError::InvalidReplicationFactor(String::new()), 38),
            (TopicError::InvalidReplicaAssignment(String::new()), 39),
            (TopicError::InvalidConfig(String::new()), 40),
        ];
        for (err, code) in cases {
            assert_eq!(topic_error(err).code(), *code, "{err:?}");
        }
        assert_eq!(ResponseError::CorruptMessage.code(), 2);
        assert_eq!(ResponseError::MessageTooLarge.code(), 10);
        assert_eq!(ResponseError::InvalidRequiredAcks.code(), 21);
        assert_eq!(ResponseError::OutOfOrderSequenceNumber.code(), 45);
        assert_eq!(ResponseError::InvalidProducerEpoch.code(), 47);
        assert_eq!(ResponseError::KafkaStorageError.code(), 56);
        assert_eq!(unavailable(&Unavailable::Unknown).code(), 3);
        assert_eq!(unavailable(&Unavailable::Offline(String::new())).code(), 56);
    }
}
