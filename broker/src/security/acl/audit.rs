//! The audit line of a denial: one `info` line on the `floe::audit` target with the
//! principal, operation, resource, client host, API and the rule that decided, as Kafka's
//! `kafka.authorizer.logger` writes it. A client can trigger denials at will, so lines are
//! rate limited (`crate::log_limit`); the count of suppressed lines comes with the next.

use kafka_protocol::messages::ApiKey;

use crate::log_limit::LogLimit;
use crate::security::Session;

use super::{Decision, Operation, ResourceType};

/// Denial lines per second, across connections.
static DENIED: LogLimit = LogLimit::new("authorization denied", 20);

/// Logs that `session` was denied `operation` on the resource.
pub(super) fn denied(
    session: &Session,
    api: Option<ApiKey>,
    operation: Operation,
    resource: ResourceType,
    name: &str,
    decision: Decision,
) {
    denied_within(&DENIED, session, api, operation, resource, name, decision);
}

/// [`denied`] within a given limit (tests use their own).
fn denied_within(
    limit: &LogLimit,
    session: &Session,
    api: Option<ApiKey>,
    operation: Operation,
    resource: ResourceType,
    name: &str,
    decision: Decision,
) {
    let Some(suppressed) = limit.check() else {
        return;
    };
    if suppressed > 0 {
        tracing::info!(
            target: "floe::audit",
            kind = limit.kind(),
            "suppressed {suppressed} similar messages"
        );
    }
    let api = api.map_or_else(|| "-".to_string(), |k| format!("{k:?}"));
    tracing::info!(
        target: "floe::audit",
        principal = %session.principal,
        operation = operation.name(),
        resource_type = resource.name(),
        resource = %name,
        host = %session.client_address,
        api = %api,
        rule = decision.rule(),
        "Principal = {} is Denied operation = {} from host = {} on resource = {}:LITERAL:{} for request = {} based on rule {}",
        session.principal,
        operation.name(),
        session.client_address,
        resource_log_name(resource),
        name,
        api,
        decision.rule(),
    );
}

fn resource_log_name(resource: ResourceType) -> &'static str {
    resource.entry().3
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_denial_is_one_audit_line_and_floods_are_cut() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let limit = LogLimit::new("test denials", 2);
        let session = Session::anonymous(std::net::Ipv4Addr::new(10, 1, 2, 3).into());
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..5 {
                denied_within(
                    &limit,
                    &session,
                    Some(ApiKey::Fetch),
                    Operation::Read,
                    ResourceType::Topic,
                    "orders",
                    Decision::DeniedNoAcl,
                );
            }
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            for part in [
                "floe::audit",
                "Principal = User:ANONYMOUS is Denied operation = READ",
                "from host = 10.1.2.3",
                "on resource = Topic:LITERAL:orders",
                "for request = Fetch",
                "based on rule NoAclDefaultDeny",
            ] {
                assert!(line.contains(part), "{part} missing from {line}");
            }
        }
    }
}
