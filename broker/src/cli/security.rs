//! The security options of a command ([`SecurityOpts`]) turned into the client's
//! [`Security`]: which protocol, checked for consistency, and the TLS configuration built
//! once for every connection. Every inconsistency is an argument error (exit 2), found
//! before anything is sent.
//!
//! Without `--security-protocol` the protocol follows from the options, as rpk does it:
//! TLS with any `--tls-*` option, SASL with `--sasl-mechanism`. With it, options the
//! protocol does not use are refused rather than ignored, so a password is never silently
//! dropped and a CA never silently unused.

use crate::cli::args::{SecurityOpts, SecurityProtocol};
use crate::cli::client::Security;
use crate::cli::client::sasl::Credentials;
use crate::cli::client::tls::{self, TlsOptions};
use crate::cli::error::usage;

/// The protocol `opts` ask for.
pub fn protocol(opts: &SecurityOpts) -> SecurityProtocol {
    if let Some(p) = opts.security_protocol {
        return p;
    }
    let tls = opts.tls_ca.is_some() || opts.tls_cert.is_some() || opts.tls_insecure_skip_verify;
    match (tls, opts.sasl_mechanism.is_some()) {
        (false, false) => SecurityProtocol::Plaintext,
        (true, false) => SecurityProtocol::Ssl,
        (false, true) => SecurityProtocol::SaslPlaintext,
        (true, true) => SecurityProtocol::SaslSsl,
    }
}

/// The client's security settings; reads the TLS files.
pub fn resolve(opts: &SecurityOpts) -> anyhow::Result<Security> {
    let protocol = protocol(opts);
    let name = protocol.name();
    if !protocol.tls() {
        let given = [
            ("--tls-ca", opts.tls_ca.is_some()),
            ("--tls-cert", opts.tls_cert.is_some()),
            ("--tls-key", opts.tls_key.is_some()),
            ("--tls-insecure-skip-verify", opts.tls_insecure_skip_verify),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
            return Err(usage(format!(
                "{flag} is a TLS option, but the security protocol is {name} (TLS is SSL or \
                 SASL_SSL)"
            )));
        }
    }
    if !protocol.sasl() {
        let given = [
            ("--sasl-mechanism", opts.sasl_mechanism.is_some()),
            ("--user", opts.user.is_some()),
            ("--password", opts.password.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
            return Err(usage(format!(
                "{flag} is a SASL option, but the security protocol is {name} (give \
                 --sasl-mechanism, or --security-protocol SASL_SSL or SASL_PLAINTEXT)"
            )));
        }
    }
    let sasl = if protocol.sasl() {
        let mechanism = opts.sasl_mechanism.ok_or_else(|| {
            usage(format!(
                "{name} needs --sasl-mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            ))
        })?;
        let user = opts
            .user
            .clone()
            .ok_or_else(|| usage("SASL needs --user (or FLOE_SASL_USER)"))?;
        let password = opts.password.clone().ok_or_else(|| {
            usage("SASL needs --password (or FLOE_SASL_PASSWORD, which keeps it out of shell history)")
        })?;
        Some(Credentials {
            mechanism,
            user,
            password,
        })
    } else {
        None
    };
    let tls = if protocol.tls() {
        Some(tls::client_config(&TlsOptions {
            ca: opts.tls_ca.clone(),
            cert: opts.tls_cert.clone(),
            key: opts.tls_key.clone(),
            insecure_skip_verify: opts.tls_insecure_skip_verify,
        })?)
    } else {
        None
    };
    Ok(Security { tls, sasl })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::sasl::Mechanism;
    use crate::cli::error::UsageError;

    fn refused(opts: &SecurityOpts, needle: &str) {
        let err = resolve(opts).expect_err("refused");
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err:#}");
        assert!(format!("{err:#}").contains(needle), "{err:#}");
    }

    #[test]
    fn the_protocol_follows_from_the_options() {
        let mut o = SecurityOpts::default();
        assert_eq!(protocol(&o), SecurityProtocol::Plaintext);
        o.sasl_mechanism = Some(Mechanism::Plain);
        assert_eq!(protocol(&o), SecurityProtocol::SaslPlaintext);
        o.tls_ca = Some("ca.pem".into());
        assert_eq!(protocol(&o), SecurityProtocol::SaslSsl);
        o.sasl_mechanism = None;
        assert_eq!(protocol(&o), SecurityProtocol::Ssl);
        o.security_protocol = Some(SecurityProtocol::Plaintext);
        assert_eq!(protocol(&o), SecurityProtocol::Plaintext);
    }

    #[test]
    fn inconsistent_options_are_argument_errors() {
        let base = SecurityOpts::default();
        refused(
            &SecurityOpts {
                user: Some("alice".into()),
                ..base.clone()
            },
            "--user is a SASL option",
        );
        refused(
            &SecurityOpts {
                security_protocol: Some(SecurityProtocol::SaslPlaintext),
                tls_ca: Some("ca.pem".into()),
                ..base.clone()
            },
            "--tls-ca is a TLS option",
        );
        refused(
            &SecurityOpts {
                security_protocol: Some(SecurityProtocol::SaslSsl),
                user: Some("alice".into()),
                password: Some("x".into()),
                ..base.clone()
            },
            "needs --sasl-mechanism",
        );
        refused(
            &SecurityOpts {
                sasl_mechanism: Some(Mechanism::ScramSha512),
                user: Some("alice".into()),
                ..base.clone()
            },
            "needs --password",
        );
        let ok = resolve(&SecurityOpts {
            sasl_mechanism: Some(Mechanism::ScramSha256),
            user: Some("alice".into()),
            password: Some("x".into()),
            ..base
        })
        .expect("SASL_PLAINTEXT");
        assert!(ok.tls.is_none() && ok.sasl.is_some());
    }
}
