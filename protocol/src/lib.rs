//! Sans-IO Kafka protocol pieces.
