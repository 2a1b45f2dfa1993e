//! DescribeUserScramCredentials: which SCRAM mechanisms each user has a credential for, and
//! their iterations (never salts or keys). As Kafka's `ScramImage.describe`: no users (null
//! or empty) lists every user with a credential; a user without one is RESOURCE_NOT_FOUND,
//! a user named twice DUPLICATE_RESOURCE. Needs DESCRIBE on the cluster.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, ResponseKind,
};

use super::{Handled, RequestContext, str_bytes};
use crate::security::acl::{CLUSTER_NAME, Operation, ResourceType};
use crate::security::sasl::{ScramCredentials, ScramMechanism};

/// Handles DescribeUserScramCredentials.
pub async fn handle(ctx: &RequestContext, req: DescribeUserScramCredentialsRequest) -> Handled {
    let allowed = ctx.broker.security.authorizer.authorize(
        &ctx.session,
        Operation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let body = if allowed {
        describe(
            &ctx.broker.security.sasl.scram_credentials(),
            req.users.as_deref(),
        )
    } else {
        denied(req.users.as_deref())
    };
    ResponseKind::DescribeUserScramCredentials(body).into()
}

/// The answer for `users` (`None` or empty: every user with a credential).
pub fn describe(
    credentials: &ScramCredentials,
    users: Option<&[UserName]>,
) -> DescribeUserScramCredentialsResponse {
    let mut names: Vec<(&str, bool)> = Vec::new();
    match users {
        Some(users) if !users.is_empty() => {
            for u in users {
                let name: &str = &u.name;
                match names.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, duplicate)) => *duplicate = true,
                    None => names.push((name, false)),
                }
            }
        }
        _ => names.extend(credentials.keys().map(|n| (n.as_str(), false))),
    }
    let results = names
        .into_iter()
        .map(|(name, duplicate)| {
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(name));
            if duplicate {
                return result
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                    ))));
            }
            let infos: Vec<CredentialInfo> = credentials
                .get(name)
                .into_iter()
                .flatten()
                .filter_map(|(mechanism, record)| {
                    let m = ScramMechanism::from_name(mechanism)?;
                    Some(
                        CredentialInfo::default()
                            .with_mechanism(m.type_code())
                            .with_iterations(record.iterations),
                    )
                })
                .collect();
            if infos.is_empty() {
                result
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "Attempt to describe a user credential that does not exist: {name}"
                    ))))
            } else {
                result.with_credential_infos(infos)
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// The answer when the principal may not describe the cluster.
fn denied(users: Option<&[UserName]>) -> DescribeUserScramCredentialsResponse {
    let code = ResponseError::ClusterAuthorizationFailed.code();
    let message = "Cluster authorization failed.";
    DescribeUserScramCredentialsResponse::default()
        .with_error_code(code)
        .with_error_message(Some(str_bytes(message)))
        .with_results(
            users
                .unwrap_or_default()
                .iter()
                .map(|u| {
                    DescribeUserScramCredentialsResult::default()
                        .with_user(u.name.clone())
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message)))
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sasl::scram_credential_from_password;

    fn user(name: &str) -> UserName {
        UserName::default().with_name(str_bytes(name))
    }

    fn credentials() -> ScramCredentials {
        let mut creds = ScramCredentials::new();
        let mut alice = std::collections::BTreeMap::new();
        alice.insert(
            "SCRAM-SHA-256".to_string(),
            scram_credential_from_password("SCRAM-SHA-256", "pw", 4096).unwrap(),
        );
        alice.insert(
            "SCRAM-SHA-512".to_string(),
            scram_credential_from_password("SCRAM-SHA-512", "pw", 8192).unwrap(),
        );
        creds.insert("alice".into(), alice);
        let mut bob = std::collections::BTreeMap::new();
        bob.insert(
            "SCRAM-SHA-512".to_string(),
            scram_credential_from_password("SCRAM-SHA-512", "pw", 4096).unwrap(),
        );
        creds.insert("bob".into(), bob);
        creds
    }

    /// Per user: name, error code, (mechanism, iterations) of each credential.
    type Summary = Vec<(String, i16, Vec<(i8, i32)>)>;

    fn summary(r: &DescribeUserScramCredentialsResponse) -> Summary {
        r.results
            .iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.error_code,
                    r.credential_infos
                        .iter()
                        .map(|c| (c.mechanism, c.iterations))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn scram_describe_all_users() {
        let creds = credentials();
        let expected = vec![
            ("alice".to_string(), 0, vec![(1, 4096), (2, 8192)]),
            ("bob".to_string(), 0, vec![(2, 4096)]),
        ];
        assert_eq!(summary(&describe(&creds, None)), expected);
        assert_eq!(summary(&describe(&creds, Some(&[]))), expected);
        assert!(describe(&ScramCredentials::new(), None).results.is_empty());
    }

    #[test]
    fn scram_describe_named_users_unknown_and_duplicates() {
        let creds = credentials();
        let r = describe(&creds, Some(&[user("bob"), user("carol"), user("bob")]));
        assert_eq!(
            summary(&r),
            vec![
                (
                    "bob".to_string(),
                    ResponseError::DuplicateResource.code(),
                    vec![]
                ),
                (
                    "carol".to_string(),
                    ResponseError::ResourceNotFound.code(),
                    vec![]
                ),
            ]
        );
        let message = r.results[1].error_message.as_deref().unwrap_or_default();
        assert!(message.starts_with("Attempt to describe a user credential that does not exist"));
    }

    #[test]
    fn scram_describe_denied() {
        let r = denied(Some(&[user("alice")]));
        assert_eq!(
            r.error_code,
            ResponseError::ClusterAuthorizationFailed.code()
        );
        assert_eq!(r.results[0].error_code, r.error_code);
        assert!(denied(None).results.is_empty());
    }
}
