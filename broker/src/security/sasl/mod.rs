//! SASL authentication as Kafka does it: the mechanisms PLAIN ([`plain`], RFC 4616),
//! SCRAM-SHA-256 and SCRAM-SHA-512 ([`scram`], RFC 5802/7677) and OAUTHBEARER
//! ([`oauthbearer`], RFC 7628, JWTs checked against a JSON Web Key Set, [`jwks`]).
//!
//! [`SaslServer`] is built once at start from the config and the stored SCRAM credentials;
//! the connection asks it for one [`SaslExchange`] per SaslHandshake and feeds it the
//! client's SaslAuthenticate tokens. An exchange never panics and never allocates more than
//! a small multiple of the token it is given: every token is untrusted input.
//!
//! Failures answer the client with Kafka's messages, which never say whether a user exists
//! (a SCRAM exchange for an unknown user runs to the end with a fabricated salt and fails
//! like a wrong password); the [`SaslStep::Failed`] `detail` says what really happened, for
//! the server log.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::metadata_store::ScramCredentialRecord;
use crate::security::Principal;

pub mod jwks;
pub mod oauthbearer;
pub mod plain;
pub mod scram;

pub use scram::{
    MAX_ITERATIONS, ScramMechanism, salted_password, scram_credential,
    scram_credential_from_password,
};

/// SCRAM credentials as the metadata store keeps them: user name to mechanism name
/// (`SCRAM-SHA-256`, `SCRAM-SHA-512`) to credential.
pub type ScramCredentials = BTreeMap<String, BTreeMap<String, ScramCredentialRecord>>;

/// The mechanism names the broker implements.
pub const SUPPORTED_MECHANISMS: &[&str] =
    &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// One SASL exchange: client tokens in, answers out.
pub trait SaslExchange: Send {
    /// One client token in, what to answer.
    fn step(&mut self, token: &[u8]) -> SaslStep;
}

/// The answer to one client token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this to the client; the exchange continues with its next token.
    Challenge(Vec<u8>),
    /// Authenticated.
    Done {
        /// Who the client is.
        principal: Principal,
        /// The last server message (SCRAM's server-final; empty for PLAIN and OAUTHBEARER).
        response: Vec<u8>,
        /// For OAUTHBEARER the token's `exp` in ms since the epoch (the session must end
        /// by then); `None` otherwise.
        expires_at_ms: Option<i64>,
    },
    /// Authentication failed.
    Failed {
        /// What the client is told: no secrets, nothing about whether the user exists.
        message: String,
        /// What really happened, for the server log.
        detail: String,
    },
}

impl SaslStep {
    fn failed(message: impl Into<String>, detail: impl Into<String>) -> SaslStep {
        SaslStep::Failed {
            message: message.into(),
            detail: detail.into(),
        }
    }
}

/// The SASL mechanisms the broker offers and the credentials they check.
pub struct SaslServer {
    mechanisms: Vec<String>,
    plain: Arc<plain::PlainUsers>,
    scram: RwLock<Arc<scram::ScramStore>>,
    oauthbearer: Option<Arc<oauthbearer::TokenValidator>>,
}

impl SaslServer {
    /// The mechanisms `config` enables (`sasl_enabled_mechanisms`), PLAIN users from
    /// `sasl_plain_users` and `sasl_plain_users_file`, OAUTHBEARER's key set and checks
    /// from `sasl_oauthbearer_*`, over the stored SCRAM credentials. Reads files (call it
    /// at start, not on a runtime worker).
    pub fn new(config: &Config, scram: &ScramCredentials) -> Result<SaslServer, String> {
        let mut mechanisms: Vec<String> = Vec::new();
        for m in config.sasl_enabled_mechanisms.split(',').map(str::trim) {
            if m.is_empty() || mechanisms.iter().any(|e| e == m) {
                continue;
            }
            if !SUPPORTED_MECHANISMS.contains(&m) {
                return Err(format!(
                    "sasl_enabled_mechanisms: {m} is not supported (supported: {})",
                    SUPPORTED_MECHANISMS.join(", ")
                ));
            }
            mechanisms.push(m.to_string());
        }
        let plain = Arc::new(plain::PlainUsers::from_config(config)?);
        let oauthbearer = if mechanisms.iter().any(|m| m == oauthbearer::MECHANISM) {
            Some(Arc::new(oauthbearer::TokenValidator::from_config(config)?))
        } else {
            None
        };
        Ok(SaslServer {
            mechanisms,
            plain,
            scram: RwLock::new(Arc::new(scram::ScramStore::new(scram.clone())?)),
            oauthbearer,
        })
    }

    /// The enabled mechanism names, as SaslHandshake lists them.
    pub fn mechanisms(&self) -> &[String] {
        &self.mechanisms
    }

    /// A new exchange for an enabled mechanism (names are case-sensitive, as in Kafka),
    /// `None` otherwise.
    pub fn start(&self, mechanism: &str) -> Option<Box<dyn SaslExchange>> {
        if !self.mechanisms.iter().any(|m| m == mechanism) {
            return None;
        }
        if mechanism == plain::MECHANISM {
            return Some(Box::new(plain::PlainExchange::new(self.plain.clone())));
        }
        if let Some(m) = ScramMechanism::from_name(mechanism) {
            return Some(Box::new(scram::ScramExchange::new(m, self.scram_store())));
        }
        if mechanism == oauthbearer::MECHANISM {
            let validator = self.oauthbearer.clone()?;
            return Some(Box::new(oauthbearer::OAuthBearerExchange::new(
                validator,
                unix_now_ms,
            )));
        }
        None
    }

    /// Replaces the in-memory SCRAM credentials (after they were persisted). Exchanges
    /// already past their first message finish with the credentials they started with.
    pub fn set_scram_credentials(&self, scram: &ScramCredentials) {
        let current = self.scram_store();
        let next = Arc::new(current.replaced(scram.clone()));
        *self.scram.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// The SCRAM credentials in use (what DescribeUserScramCredentials lists).
    pub fn scram_credentials(&self) -> ScramCredentials {
        self.scram_store().credentials().clone()
    }

    fn scram_store(&self) -> Arc<scram::ScramStore> {
        // A poisoned lock only means a panic elsewhere while replacing the Arc; the Arc
        // itself is always whole.
        self.scram.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Milliseconds since the Unix epoch.
fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Decodes a SASL name (RFC 5802 `saslname`): `=2C` is `,`, `=3D` is `=`, any other `=`
/// (and a `,`) is invalid. SCRAM and OAUTHBEARER authorization ids use it.
fn decode_sasl_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find(['=', ',']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("=2C") {
            out.push(',');
        } else if tail.starts_with("=3D") {
            out.push('=');
        } else {
            return None;
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mechanisms: &str) -> Config {
        Config {
            sasl_enabled_mechanisms: mechanisms.into(),
            ..Config::default()
        }
    }

    #[test]
    fn sasl_names_decode() {
        assert_eq!(decode_sasl_name("alice").as_deref(), Some("alice"));
        assert_eq!(decode_sasl_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_sasl_name("=3D=2C").as_deref(), Some("=,"));
        assert_eq!(decode_sasl_name("a=b"), None);
        assert_eq!(decode_sasl_name("a="), None);
        assert_eq!(decode_sasl_name("a=2"), None);
        assert_eq!(decode_sasl_name("a,b"), None);
        assert_eq!(decode_sasl_name("é=2C").as_deref(), Some("é,"));
    }

    #[test]
    fn enabled_mechanisms_are_offered_and_started() {
        let server =
            SaslServer::new(&config(" PLAIN, SCRAM-SHA-512,PLAIN,"), &BTreeMap::new()).unwrap();
        assert_eq!(server.mechanisms(), ["PLAIN", "SCRAM-SHA-512"]);
        assert!(server.start("PLAIN").is_some());
        assert!(server.start("SCRAM-SHA-512").is_some());
        assert!(server.start("SCRAM-SHA-256").is_none());
        assert!(server.start("plain").is_none());
        assert!(server.start("GSSAPI").is_none());
    }

    #[test]
    fn unknown_mechanisms_and_oauthbearer_without_keys_are_refused() {
        let err = SaslServer::new(&config("PLAIN,GSSAPI"), &BTreeMap::new())
            .err()
            .unwrap();
        assert!(err.contains("GSSAPI"), "{err}");
        let err = SaslServer::new(&config("OAUTHBEARER"), &BTreeMap::new())
            .err()
            .unwrap();
        assert!(err.contains("sasl_oauthbearer_jwks_endpoint_url"), "{err}");
    }

    #[test]
    fn scram_credentials_are_replaced() {
        let server = SaslServer::new(&config("SCRAM-SHA-256"), &BTreeMap::new()).unwrap();
        assert!(server.scram_credentials().is_empty());
        let record = scram_credential_from_password("SCRAM-SHA-256", "pw", 4096).unwrap();
        let mut creds = ScramCredentials::new();
        creds
            .entry("alice".into())
            .or_default()
            .insert("SCRAM-SHA-256".into(), record);
        server.set_scram_credentials(&creds);
        assert_eq!(server.scram_credentials(), creds);
    }
}
