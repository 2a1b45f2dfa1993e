//! The CLI's two kinds of failure besides plain I/O: arguments the parser accepted but the
//! command cannot use (exit 2, like clap's own errors) and Kafka error codes in responses
//! (exit 1, named as Kafka names them, e.g. `TOPIC_ALREADY_EXISTS`).

use std::fmt;

use kafka_protocol::ResponseError;

/// A bad command-line argument found after parsing: the command exits with status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for a [`UsageError`] as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// A Kafka error code a broker answered with.
#[derive(Debug)]
pub struct KafkaError {
    /// The error code.
    pub code: i16,
    /// What was being done (`create topic 'a'`).
    pub context: String,
    /// The broker's error message, if it sent one.
    pub message: Option<String>,
}

/// Error codes after which the request is retried, a bounded number of times, once metadata
/// or the group coordinator has been looked up again.
const RETRIABLE_ROUTING: [i16; 6] = [
    5,  // LEADER_NOT_AVAILABLE
    6,  // NOT_LEADER_OR_FOLLOWER
    14, // COORDINATOR_LOAD_IN_PROGRESS
    15, // COORDINATOR_NOT_AVAILABLE
    16, // NOT_COORDINATOR
    41, // NOT_CONTROLLER
];

impl KafkaError {
    /// The Kafka name of the code (`UNKNOWN_TOPIC_OR_PARTITION`).
    pub fn name(&self) -> String {
        code_name(self.code)
    }

    /// Whether looking up the leader or coordinator again and retrying may succeed.
    pub fn is_retriable_routing(&self) -> bool {
        RETRIABLE_ROUTING.contains(&self.code)
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (error code {})",
            self.context,
            self.name(),
            self.code
        )?;
        if let Some(message) = self.message.as_deref().filter(|m| !m.is_empty()) {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KafkaError {}

/// `Ok(())` for error code 0, else a [`KafkaError`] naming the code.
pub fn check(
    code: i16,
    message: Option<&str>,
    context: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(anyhow::Error::new(KafkaError {
        code,
        context: context(),
        message: message.map(str::to_string),
    }))
}

/// A [`KafkaError`] for `code` (which must not be 0) as an `anyhow::Error`.
pub fn kafka(code: i16, context: impl Into<String>, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(KafkaError {
        code,
        context: context.into(),
        message: Some(message.into()),
    })
}

/// Whether `e` is a Kafka error worth a retry after a new lookup.
pub fn is_retriable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<KafkaError>()
        .is_some_and(KafkaError::is_retriable_routing)
}

/// Kafka's name for an error code: the `kafka-protocol` variant name in upper snake case,
/// which is how Kafka's `Errors` enum spells them (`TopicAlreadyExists` ->
/// `TOPIC_ALREADY_EXISTS`).
pub fn code_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => upper_snake(&format!("{e:?}")),
    }
}

fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    let mut prev_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_kafka_names_them() {
        assert_eq!(code_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(code_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(code_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(code_name(68), "NON_EMPTY_GROUP");
        assert_eq!(code_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(code_name(0), "NONE");
        assert_eq!(code_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }

    #[test]
    fn routing_errors_are_retriable_and_others_are_not() {
        let e = |code| kafka(code, "x", "");
        assert!(is_retriable(&e(16)));
        assert!(is_retriable(&e(5)));
        assert!(!is_retriable(&e(36)));
        assert!(!is_retriable(&anyhow::anyhow!("plain")));
        let shown = e(36).to_string();
        assert_eq!(shown, "x: TOPIC_ALREADY_EXISTS (error code 36)");
    }
}
