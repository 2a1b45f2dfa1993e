//! Who is on the other end of a connection, and what they may do: listeners and their
//! security protocols ([`listeners`]), TLS ([`tls`]), SASL authentication ([`sasl`]) and
//! authorization with Kafka's ACLs ([`acl`]). See `docs/security.md`.
//!
//! A connection's identity is its [`Session`]: the principal it authenticated as (or
//! `User:ANONYMOUS` on a PLAINTEXT listener), the client address and the listener. Every
//! request handler sees it through `RequestContext::session` and asks the authorizer.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

pub mod acl;
pub mod listeners;
pub mod quota;
pub mod sasl;
pub mod tls;

/// A Kafka principal: a type (`User`) and a name (`alice`), written `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// The principal type (Kafka only uses `User`, and `Group` in some authorizers).
    pub principal_type: String,
    /// The name.
    pub name: String,
}

impl Principal {
    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            principal_type: "User".into(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`: the principal of connections that did not authenticate.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    /// Parses `Type:name` (the name may itself contain colons).
    pub fn parse(s: &str) -> Result<Principal, String> {
        match s.split_once(':') {
            Some((t, n)) if !t.is_empty() && !n.is_empty() => Ok(Principal {
                principal_type: t.to_string(),
                name: n.to_string(),
            }),
            _ => Err(format!(
                "'{s}' is not a principal (Type:name, e.g. User:alice)"
            )),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// Kafka's four security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS, the principal from the client certificate (or ANONYMOUS without one).
    Ssl,
    /// SASL authentication without TLS.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Parses a protocol name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL before any other request.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who a connection is: what every handler authorizes against.
#[derive(Debug, Clone)]
pub struct Session {
    /// The authenticated principal (`User:ANONYMOUS` without authentication).
    pub principal: Principal,
    /// The client's address (ACL hosts match it).
    pub client_address: IpAddr,
    /// Name of the listener the client connected to.
    pub listener: Arc<str>,
    /// That listener's security protocol.
    pub protocol: SecurityProtocol,
}

impl Session {
    /// An unauthenticated session on a PLAINTEXT listener (tests and fuzzing).
    pub fn anonymous(client_address: IpAddr) -> Session {
        Session {
            principal: Principal::anonymous(),
            client_address,
            listener: Arc::from("PLAINTEXT"),
            protocol: SecurityProtocol::Plaintext,
        }
    }
}

/// The broker's security state: who may authenticate, and what principals may do.
pub struct Security {
    /// ACLs and the decisions made with them.
    pub authorizer: acl::Authorizer,
    /// SASL mechanisms and the credentials they check.
    pub sasl: sasl::SaslServer,
    /// Client quotas and the rates measured against them.
    pub quotas: quota::Quotas,
}

impl Security {
    /// Security from the settings and the persisted ACLs and credentials.
    pub fn new(
        config: &crate::config::Config,
        stored: &crate::metadata_store::SecurityMetadata,
    ) -> Result<Security, String> {
        Ok(Security {
            authorizer: acl::Authorizer::new(config, &stored.acls)?,
            sasl: sasl::SaslServer::new(config, &stored.scram_credentials)?,
            quotas: quota::Quotas::new(config, &stored.client_quotas),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_and_print() {
        let p = Principal::parse("User:CN=alice,O=Floe").unwrap();
        assert_eq!(p.principal_type, "User");
        assert_eq!(p.name, "CN=alice,O=Floe");
        assert_eq!(p.to_string(), "User:CN=alice,O=Floe");
        assert!(Principal::parse("alice").is_err());
        assert!(Principal::parse("User:").is_err());
        assert_eq!(Principal::anonymous().to_string(), "User:ANONYMOUS");
    }

    #[test]
    fn protocols_parse() {
        for p in [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ] {
            assert_eq!(SecurityProtocol::parse(p.name()), Some(p));
        }
        assert_eq!(
            SecurityProtocol::parse("sasl_ssl"),
            Some(SecurityProtocol::SaslSsl)
        );
        assert_eq!(SecurityProtocol::parse("TLS"), None);
    }
}
