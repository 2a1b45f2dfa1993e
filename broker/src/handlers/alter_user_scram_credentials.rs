//! AlterUserScramCredentials: deletes and upserts users' SCRAM credentials. The client
//! sends the salted password (never the password); the broker keeps the salt, iterations,
//! StoredKey and ServerKey in the metadata store and then hands them to the SASL server.
//!
//! Validation is Kafka's (`ScramControlManager.alterCredentials`): an empty user name or
//! an iteration count outside 4096..=16384 is UNACCEPTABLE_CREDENTIAL, an unknown mechanism
//! UNSUPPORTED_SASL_MECHANISM, deleting a credential that does not exist
//! RESOURCE_NOT_FOUND, a user named twice in one request (deletions and upsertions
//! together) DUPLICATE_RESOURCE; the valid entries are applied, together, with one
//! metadata-store write. Needs ALTER on the cluster.

use std::collections::BTreeMap;
use std::sync::Mutex;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ResponseKind,
};

use super::{Handled, RequestContext, str_bytes};
use crate::errors::topic_error;
use crate::metadata_store::ScramCredentialRecord;
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};
use crate::security::sasl::{ScramCredentials, ScramMechanism, scram};

/// What became of one user's entry: `Err((code, message))` if refused.
pub type Outcome = Result<(), (ResponseError, String)>;

/// Serializes alterations from persisting to handing the result to the SASL server, so
/// that a slower request cannot install an older set of credentials after a newer one.
static APPLY: Mutex<()> = Mutex::new(());

/// Handles AlterUserScramCredentials.
pub async fn handle(ctx: &RequestContext, req: AlterUserScramCredentialsRequest) -> Handled {
    let allowed = ctx.broker.security.authorizer.authorize(
        &ctx.session,
        Operation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    if !allowed {
        let error = ResponseError::ClusterAuthorizationFailed;
        let results = every_user(&req, error, "Cluster authorization failed.");
        return ResponseKind::AlterUserScramCredentials(response(results)).into();
    }
    // Writes the metadata store, with fsyncs.
    super::on_blocking_pool(ctx, move |ctx| handle_blocking(ctx, req)).await
}

fn handle_blocking(ctx: &RequestContext, req: AlterUserScramCredentialsRequest) -> Handled {
    let _serial = APPLY.lock().unwrap_or_else(|p| p.into_inner());
    let applied = ctx.broker.topics.update_security(|security| {
        let results = alter(&mut security.scram_credentials, &req);
        (results, security.scram_credentials.clone())
    });
    let results = match applied {
        Ok((results, credentials)) => {
            ctx.broker.security.sasl.set_scram_credentials(&credentials);
            results
        }
        Err(e) => {
            let message = crate::topics::error_chain(&e);
            tracing::warn!("AlterUserScramCredentials could not be persisted: {message}");
            every_user(&req, topic_error(&e), &message)
        }
    };
    ResponseKind::AlterUserScramCredentials(response(results)).into()
}

/// Applies `req` to `credentials`; one outcome per user, in the order users first appear
/// (deletions, then upsertions).
pub fn alter(
    credentials: &mut ScramCredentials,
    req: &AlterUserScramCredentialsRequest,
) -> Vec<(String, Outcome)> {
    let mut order: Vec<String> = Vec::new();
    let mut errors: BTreeMap<String, (ResponseError, String)> = BTreeMap::new();
    let mut deletions: BTreeMap<String, ScramMechanism> = BTreeMap::new();
    let mut upsertions: BTreeMap<String, (ScramMechanism, ScramCredentialRecord)> = BTreeMap::new();
    let duplicate = || {
        (
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request".to_string(),
        )
    };

    for d in &req.deletions {
        let name = d.name.to_string();
        if !order.contains(&name) {
            order.push(name.clone());
        }
        if errors.contains_key(&name) {
            continue;
        }
        if deletions.remove(&name).is_some() {
            errors.insert(name, duplicate());
            continue;
        }
        let checked = check_name_and_mechanism(&name, d.mechanism).and_then(|m| {
            let exists = credentials
                .get(&name)
                .is_some_and(|c| c.contains_key(m.name()));
            if exists {
                Ok(m)
            } else {
                Err((
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist".to_string(),
                ))
            }
        });
        match checked {
            Ok(m) => {
                deletions.insert(name, m);
            }
            Err(e) => {
                errors.insert(name, e);
            }
        }
    }

    for u in &req.upsertions {
        let name = u.name.to_string();
        if !order.contains(&name) {
            order.push(name.clone());
        }
        if errors.contains_key(&name) {
            continue;
        }
        if deletions.remove(&name).is_some() || upsertions.remove(&name).is_some() {
            errors.insert(name, duplicate());
            continue;
        }
        let checked = check_name_and_mechanism(&name, u.mechanism).and_then(|m| {
            let unacceptable = |message: String| (ResponseError::UnacceptableCredential, message);
            scram::check_iterations(m, u.iterations).map_err(unacceptable)?;
            if u.salt.is_empty() {
                return Err(unacceptable("The salt must not be empty".into()));
            }
            if u.salted_password.is_empty() {
                return Err(unacceptable("The salted password must not be empty".into()));
            }
            Ok((m, m.credential(&u.salted_password, &u.salt, u.iterations)))
        });
        match checked {
            Ok(c) => {
                upsertions.insert(name, c);
            }
            Err(e) => {
                errors.insert(name, e);
            }
        }
    }

    for (name, m) in deletions {
        if let Some(by_mechanism) = credentials.get_mut(&name) {
            by_mechanism.remove(m.name());
            if by_mechanism.is_empty() {
                credentials.remove(&name);
            }
        }
    }
    for (name, (m, record)) in upsertions {
        credentials
            .entry(name)
            .or_default()
            .insert(m.name().to_string(), record);
    }
    order
        .into_iter()
        .map(|name| {
            let outcome = match errors.remove(&name) {
                Some(e) => Err(e),
                None => Ok(()),
            };
            (name, outcome)
        })
        .collect()
}

fn check_name_and_mechanism(
    name: &str,
    mechanism: i8,
) -> Result<ScramMechanism, (ResponseError, String)> {
    if name.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".into(),
        ));
    }
    ScramMechanism::from_type(mechanism).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism".into(),
        )
    })
}

/// The same error for every user the request names (sorted, once each), as Kafka's
/// `getErrorResponse`.
fn every_user(
    req: &AlterUserScramCredentialsRequest,
    error: ResponseError,
    message: &str,
) -> Vec<(String, Outcome)> {
    let mut users: Vec<String> = req
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(req.upsertions.iter().map(|u| u.name.to_string()))
        .collect();
    users.sort();
    users.dedup();
    users
        .into_iter()
        .map(|u| (u, Err((error, message.to_string()))))
        .collect()
}

fn response(results: Vec<(String, Outcome)>) -> AlterUserScramCredentialsResponse {
    AlterUserScramCredentialsResponse::default().with_results(
        results
            .into_iter()
            .map(|(user, outcome)| {
                let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
                match outcome {
                    Ok(()) => result,
                    Err((code, message)) => result
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(&message))),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::num::NonZeroU32;
    use std::sync::Arc;

    use bytes::Bytes;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, RequestHeader};

    use super::*;
    use crate::security::sasl::salted_password;

    fn upsert(
        name: &str,
        mechanism: i8,
        iterations: i32,
        password: &str,
    ) -> ScramCredentialUpsertion {
        let salt = format!("salt-of-{name}").into_bytes();
        let salted = ScramMechanism::from_type(mechanism)
            .map(|m| salted_password(m, password, &salt, NonZeroU32::new(4096).unwrap()))
            .unwrap_or_else(|| vec![1; 32]);
        ScramCredentialUpsertion::default()
            .with_name(str_bytes(name))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted))
    }

    fn delete(name: &str, mechanism: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default()
            .with_name(str_bytes(name))
            .with_mechanism(mechanism)
    }

    fn request(
        deletions: Vec<ScramCredentialDeletion>,
        upsertions: Vec<ScramCredentialUpsertion>,
    ) -> AlterUserScramCredentialsRequest {
        AlterUserScramCredentialsRequest::default()
            .with_deletions(deletions)
            .with_upsertions(upsertions)
    }

    fn codes(results: &[(String, Outcome)]) -> Vec<(&str, i16)> {
        results
            .iter()
            .map(|(u, o)| (u.as_str(), o.as_ref().err().map_or(0, |(e, _)| e.code())))
            .collect()
    }

    #[test]
    fn scram_alter_upserts_and_deletes() {
        let mut creds = ScramCredentials::new();
        let r = alter(
            &mut creds,
            &request(
                vec![],
                vec![upsert("alice", 1, 4096, "pw"), upsert("bob", 2, 8192, "pw")],
            ),
        );
        assert_eq!(codes(&r), [("alice", 0), ("bob", 0)]);
        let salt = b"salt-of-alice";
        let salted = salted_password(
            ScramMechanism::Sha256,
            "pw",
            salt,
            NonZeroU32::new(4096).unwrap(),
        );
        assert_eq!(
            creds["alice"]["SCRAM-SHA-256"],
            ScramMechanism::Sha256.credential(&salted, salt, 4096)
        );
        assert_eq!(creds["bob"]["SCRAM-SHA-512"].iterations, 8192);

        let r = alter(
            &mut creds,
            &request(
                vec![delete("alice", 1)],
                vec![upsert("alice2", 1, 4096, "pw")],
            ),
        );
        assert_eq!(codes(&r), [("alice", 0), ("alice2", 0)]);
        assert!(!creds.contains_key("alice"));
        assert!(creds.contains_key("alice2"));
    }

    #[test]
    fn scram_alter_validations() {
        let mut creds = ScramCredentials::new();
        alter(
            &mut creds,
            &request(vec![], vec![upsert("bob", 2, 4096, "pw")]),
        );
        let before = creds.clone();
        let r = alter(
            &mut creds,
            &request(
                vec![
                    delete("", 1),
                    delete("bob", 1),
                    delete("carol", 2),
                    delete("dave", 0),
                    delete("erin", 2),
                    delete("erin", 2),
                ],
                vec![
                    upsert("frank", 3, 4096, "pw"),
                    upsert("grace", 1, 4095, "pw"),
                    upsert("heidi", 2, 16385, "pw"),
                    upsert("ivan", 1, 4096, "pw"),
                    upsert("ivan", 2, 4096, "pw"),
                    upsert("", 1, 4096, "pw"),
                    upsert("bob", 1, 4096, "pw"),
                    upsert("judy", 1, 4096, "pw").with_salt(Bytes::new()),
                ],
            ),
        );
        use ResponseError::*;
        assert_eq!(
            codes(&r),
            [
                ("", UnacceptableCredential.code()),
                // bob has only a SCRAM-SHA-512 credential.
                ("bob", ResourceNotFound.code()),
                ("carol", ResourceNotFound.code()),
                ("dave", UnsupportedSaslMechanism.code()),
                ("erin", ResourceNotFound.code()),
                ("frank", UnsupportedSaslMechanism.code()),
                ("grace", UnacceptableCredential.code()),
                ("heidi", UnacceptableCredential.code()),
                ("ivan", DuplicateResource.code()),
                ("judy", UnacceptableCredential.code()),
            ]
        );
        assert_eq!(creds, before);

        // The same user in a deletion and an upsertion is a duplicate too, and neither is
        // applied.
        let r = alter(
            &mut creds,
            &request(vec![delete("bob", 2)], vec![upsert("bob", 1, 4096, "pw")]),
        );
        assert_eq!(codes(&r), [("bob", DuplicateResource.code())]);
        assert_eq!(creds, before);
    }

    fn context(broker: &crate::fuzz::FuzzBroker) -> RequestContext {
        RequestContext {
            broker: broker.broker.clone(),
            peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000)),
            header: RequestHeader::default(),
            session: Arc::new(crate::security::Session::anonymous(
                Ipv4Addr::LOCALHOST.into(),
            )),
        }
    }

    async fn call_alter(
        ctx: &RequestContext,
        req: AlterUserScramCredentialsRequest,
    ) -> AlterUserScramCredentialsResponse {
        match handle(ctx, req).await {
            Handled::Reply(super::super::Reply::Now(body)) => match *body {
                ResponseKind::AlterUserScramCredentials(r) => r,
                _ => panic!("not an AlterUserScramCredentials response"),
            },
            _ => panic!("no immediate reply"),
        }
    }

    async fn call_describe(
        ctx: &RequestContext,
        users: Option<Vec<&str>>,
    ) -> kafka_protocol::messages::DescribeUserScramCredentialsResponse {
        let users = users.map(|u| {
            u.into_iter()
                .map(|n| UserName::default().with_name(str_bytes(n)))
                .collect()
        });
        let req = DescribeUserScramCredentialsRequest::default().with_users(users);
        match super::super::describe_user_scram_credentials::handle(ctx, req).await {
            Handled::Reply(super::super::Reply::Now(body)) => match *body {
                ResponseKind::DescribeUserScramCredentials(r) => r,
                _ => panic!("not a DescribeUserScramCredentials response"),
            },
            _ => panic!("no immediate reply"),
        }
    }

    #[tokio::test]
    async fn scram_alter_persists_and_reaches_the_sasl_server() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::fuzz::FuzzBroker::open(dir.path()).unwrap();
        let ctx = context(&broker);

        let r = call_alter(&ctx, request(vec![], vec![upsert("alice", 2, 4096, "pw")])).await;
        assert_eq!(r.results.len(), 1);
        assert_eq!(r.results[0].error_code, 0);
        let stored = ctx.broker.topics.security().scram_credentials;
        assert_eq!(stored["alice"]["SCRAM-SHA-512"].iterations, 4096);
        assert_eq!(ctx.broker.security.sasl.scram_credentials(), stored);

        let d = call_describe(&ctx, None).await;
        assert_eq!(d.results.len(), 1);
        assert_eq!(d.results[0].user.as_str(), "alice");
        assert_eq!(d.results[0].credential_infos[0].mechanism, 2);
        assert_eq!(d.results[0].credential_infos[0].iterations, 4096);
        let d = call_describe(&ctx, Some(vec!["alice", "nobody"])).await;
        assert_eq!(
            d.results[1].error_code,
            ResponseError::ResourceNotFound.code()
        );

        let r = call_alter(&ctx, request(vec![delete("alice", 2)], vec![])).await;
        assert_eq!(r.results[0].error_code, 0);
        assert!(ctx.broker.topics.security().scram_credentials.is_empty());
        assert!(ctx.broker.security.sasl.scram_credentials().is_empty());
        let r = call_alter(&ctx, request(vec![delete("alice", 2)], vec![])).await;
        assert_eq!(
            r.results[0].error_code,
            ResponseError::ResourceNotFound.code()
        );
    }

    /// Both APIs through the handler table, the way a connection dispatches them, with
    /// responses that encode.
    #[tokio::test]
    async fn scram_apis_dispatch_through_the_handler_table() {
        use kafka_protocol::messages::{ApiKey, RequestKind};

        use crate::fuzz::{Dispatched, FuzzBroker, encode_request};
        let dir = tempfile::tempdir().unwrap();
        let broker = FuzzBroker::open(dir.path()).unwrap();
        let alter = request(vec![delete("bob", 1)], vec![upsert("alice", 1, 4096, "pw")]);
        let describe = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            UserName::default().with_name(str_bytes("alice")),
        ]));
        for (key, body) in [
            (
                ApiKey::AlterUserScramCredentials,
                RequestKind::AlterUserScramCredentials(alter),
            ),
            (
                ApiKey::AlterUserScramCredentials,
                RequestKind::AlterUserScramCredentials(Default::default()),
            ),
            (
                ApiKey::DescribeUserScramCredentials,
                RequestKind::DescribeUserScramCredentials(describe),
            ),
            (
                ApiKey::DescribeUserScramCredentials,
                RequestKind::DescribeUserScramCredentials(Default::default()),
            ),
        ] {
            let frame = encode_request(key, 0, &body).unwrap();
            assert_eq!(
                broker.dispatch(&frame).await,
                Dispatched::Answered,
                "{key:?}"
            );
        }
        assert!(
            broker
                .broker
                .security
                .sasl
                .scram_credentials()
                .contains_key("alice")
        );
    }

    #[test]
    fn scram_alter_denied_names_every_user_once() {
        let req = request(
            vec![delete("bob", 1)],
            vec![upsert("bob", 1, 4096, "pw"), upsert("alice", 1, 4096, "pw")],
        );
        let results = every_user(&req, ResponseError::ClusterAuthorizationFailed, "no");
        let code = ResponseError::ClusterAuthorizationFailed.code();
        assert_eq!(codes(&results), [("alice", code), ("bob", code)]);
    }
}
