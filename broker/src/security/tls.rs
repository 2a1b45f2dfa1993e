//! TLS for SSL and SASL_SSL listeners (rustls): the server certificate chain and key from
//! PEM files, optional client certificates checked against a PEM truststore (mTLS) whose
//! subject becomes the principal through `ssl_principal_mapping_rules`, TLS 1.2 and 1.3.
//!
//! The files are checked every `ssl_reload_interval_ms`; when one changed, the next
//! connections get the new certificate (connections already open keep theirs). A file that
//! fails to load keeps the previous configuration in service, with an error logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::Config;

/// Kafka's `ssl.principal.mapping.rules`: `RULE:pattern/replacement/[LU]` entries and
/// `DEFAULT`, separated by commas; the first rule whose pattern matches the whole subject
/// (RFC 4514, as Java's `X500Principal.getName()` prints it) gives the principal name.
#[derive(Debug, Clone)]
pub struct PrincipalRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: regex::Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl PrincipalRules {
    /// Parses the rules.
    pub fn parse(s: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after.trim_start().trim_start_matches(',').trim_start();
                continue;
            }
            let Some(body) = rest.strip_prefix("RULE:") else {
                return Err(format!(
                    "ssl_principal_mapping_rules: expected RULE:pattern/replacement/ or DEFAULT at '{rest}'"
                ));
            };
            // pattern/replacement/ then optional L or U; a '/' inside is escaped as '\/'.
            let (pattern, after) = split_unescaped(body).ok_or_else(|| {
                format!("ssl_principal_mapping_rules: unterminated rule '{rest}'")
            })?;
            let (replacement, after) = split_unescaped(after).ok_or_else(|| {
                format!("ssl_principal_mapping_rules: unterminated rule '{rest}'")
            })?;
            let (case, after) = match after.chars().next() {
                Some('L') => (Case::Lower, &after[1..]),
                Some('U') => (Case::Upper, &after[1..]),
                _ => (Case::Keep, after),
            };
            let pattern = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                format!("ssl_principal_mapping_rules: bad pattern '{pattern}': {e}")
            })?;
            rules.push(Rule::Replace {
                pattern,
                replacement: replacement.to_string(),
                case,
            });
            rest = after.trim_start().trim_start_matches(',').trim_start();
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(PrincipalRules { rules })
    }

    /// The principal name for a certificate subject; `None` if no rule matches.
    pub fn apply(&self, subject: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(subject.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if let Some(caps) = pattern.captures(subject) {
                        let mut out = String::new();
                        caps.expand(&java_replacement(replacement), &mut out);
                        return Some(match case {
                            Case::Keep => out,
                            Case::Lower => out.to_lowercase(),
                            Case::Upper => out.to_uppercase(),
                        });
                    }
                }
            }
        }
        None
    }
}

/// Splits at the first '/' not preceded by a backslash; unescapes `\/`.
fn split_unescaped(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if s[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java replacements say `$1`; the regex crate reads `$1a` as a group named `1a`, so every
/// group reference is braced.
fn java_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                out.push(d);
                chars.next();
            }
            out.push('}');
        } else if c == '$' {
            out.push_str("$$");
        } else {
            out.push(c);
        }
    }
    out
}

/// The subject of a DER certificate, RFC 4514 (most specific first: `CN=alice,O=Floe`).
pub fn certificate_subject(der: &[u8]) -> Result<String, String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("cannot parse the client certificate: {e}"))?;
    Ok(cert.tbs_certificate.subject.to_string())
}

/// (modification time, length) of each TLS file, `None` for a missing one.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The provider's cipher suites with AES-128-GCM first: as strong as TLS needs and the
/// cheapest for both ends to run over bulk data (clients such as OpenSSL list AES-256 first,
/// so the server's order is the one used).
fn fast_first(mut provider: rustls::crypto::CryptoProvider) -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS13_AES_128_GCM_SHA256,
    };
    let rank = |s: &rustls::SupportedCipherSuite| {
        !matches!(
            s.suite(),
            TLS13_AES_128_GCM_SHA256
                | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    };
    // A stable sort: the others keep the provider's order.
    provider.cipher_suites.sort_by_key(rank);
    provider
}

/// Where the TLS material comes from.
#[derive(Debug, Clone)]
struct Files {
    keystore: PathBuf,
    key: Option<PathBuf>,
    truststore: Option<PathBuf>,
    client_auth: String,
    protocols: Vec<&'static rustls::SupportedProtocolVersion>,
}

impl Files {
    fn paths(&self) -> Vec<&Path> {
        let mut p = vec![self.keystore.as_path()];
        p.extend(self.key.as_deref());
        p.extend(self.truststore.as_deref());
        p
    }

    /// (modification time, length) of every file: what a reload compares.
    fn stamp(&self) -> Stamp {
        self.paths()
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
            })
            .collect()
    }

    /// Reads the files and builds a server configuration (blocking file I/O).
    fn load(&self) -> Result<rustls::ServerConfig, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.keystore)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| {
                format!(
                    "cannot read certificates from {}: {e}",
                    self.keystore.display()
                )
            })?;
        if chain.is_empty() {
            return Err(format!("{} holds no certificate", self.keystore.display()));
        }
        let key_file = self.key.as_deref().unwrap_or(&self.keystore);
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| format!("cannot read a private key from {}: {e}", key_file.display()))?;
        let provider = Arc::new(fast_first(rustls::crypto::aws_lc_rs::default_provider()));
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.protocols)
            .map_err(|e| format!("TLS versions: {e}"))?;
        let builder = match (&self.truststore, self.client_auth.as_str()) {
            (Some(trust), "requested" | "required") => {
                let mut roots = rustls::RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(trust)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        format!("cannot read certificates from {}: {e}", trust.display())
                    })?;
                let (added, _) = roots.add_parsable_certificates(cas);
                if added == 0 {
                    return Err(format!(
                        "{} holds no usable CA certificate",
                        trust.display()
                    ));
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.client_auth == "requested" {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("client certificate verifier: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            format!(
                "the certificate and key in {} do not go together: {e}",
                self.keystore.display()
            )
        })?;
        // The server's order of cipher suites decides (see `fast_first`).
        config.ignore_client_order = true;
        Ok(config)
    }
}

/// The TLS acceptor of the SSL and SASL_SSL listeners, reloaded when its files change.
pub struct Tls {
    files: Files,
    current: RwLock<(tokio_rustls::TlsAcceptor, Stamp)>,
    /// Turns certificate subjects into principal names.
    pub rules: PrincipalRules,
}

impl Tls {
    /// Loads the TLS material named in `config` (blocking file I/O: call before serving or
    /// from a blocking thread). `None` when no keystore is configured.
    pub fn load(config: &Config) -> Result<Option<Arc<Tls>>, String> {
        let Some(keystore) = config.ssl_keystore_location.clone() else {
            return Ok(None);
        };
        let protocols = config
            .ssl_enabled_protocols
            .split(',')
            .map(str::trim)
            .filter_map(|v| match v {
                "TLSv1.2" => Some(&rustls::version::TLS12),
                "TLSv1.3" => Some(&rustls::version::TLS13),
                _ => None,
            })
            .collect();
        let files = Files {
            keystore,
            key: config.ssl_key_location.clone(),
            truststore: config.ssl_truststore_location.clone(),
            client_auth: config.ssl_client_auth.clone(),
            protocols,
        };
        let stamp = files.stamp();
        let server = files.load()?;
        Ok(Some(Arc::new(Tls {
            rules: PrincipalRules::parse(&config.ssl_principal_mapping_rules)?,
            current: RwLock::new((tokio_rustls::TlsAcceptor::from(Arc::new(server)), stamp)),
            files,
        })))
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Reloads the files if any changed since they were loaded (blocking file I/O).
    /// Returns whether a new configuration is in service.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let stamp = self.files.stamp();
        if stamp == self.current.read().unwrap_or_else(|p| p.into_inner()).1 {
            return Ok(false);
        }
        let loaded = self.files.load();
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        // Remember the stamp either way: a broken file is reported once, not every check.
        current.1 = stamp;
        let server = loaded?;
        current.0 = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        Ok(true)
    }

    /// Checks the files every `interval` on a blocking thread, until the runtime ends.
    pub fn spawn_reloader(self: &Arc<Self>, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let t = Arc::clone(&tls);
                match tokio::task::spawn_blocking(move || t.reload_if_changed()).await {
                    Ok(Ok(true)) => tracing::info!(
                        keystore = %tls.files.keystore.display(),
                        "TLS certificate files changed: new connections use the new ones"
                    ),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::error!(
                        "TLS certificate files changed but cannot be loaded; still serving the previous ones: {e}"
                    ),
                    Err(_) => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_keeps_the_subject() {
        let r = PrincipalRules::parse("DEFAULT").unwrap();
        assert_eq!(
            r.apply("CN=alice,O=Floe").as_deref(),
            Some("CN=alice,O=Floe")
        );
        let empty = PrincipalRules::parse("").unwrap();
        assert_eq!(empty.apply("CN=x").as_deref(), Some("CN=x"));
    }

    #[test]
    fn rules_apply_in_order_with_case() {
        let r = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=Service.*$/svc-$1/L, RULE:^CN=([^,]*).*$/$1/, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            r.apply("CN=Billing,OU=Services,O=Floe").as_deref(),
            Some("svc-billing")
        );
        assert_eq!(r.apply("CN=alice,O=Floe").as_deref(), Some("alice"));
        assert_eq!(r.apply("O=NoCn").as_deref(), Some("O=NoCn"));
        let upper = PrincipalRules::parse("RULE:^CN=(.*)$/$1/U").unwrap();
        assert_eq!(upper.apply("CN=bob").as_deref(), Some("BOB"));
        assert_eq!(upper.apply("O=x"), None);
        let slash = PrincipalRules::parse(r"RULE:^CN=(.*)$/a\/$1/").unwrap();
        assert_eq!(slash.apply("CN=b").as_deref(), Some("a/b"));
    }

    #[test]
    fn aes_128_gcm_comes_first() {
        let provider = fast_first(rustls::crypto::aws_lc_rs::default_provider());
        let suites: Vec<_> = provider.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(suites[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert!(suites.contains(&rustls::CipherSuite::TLS13_AES_256_GCM_SHA384));
        assert_eq!(
            suites.len(),
            rustls::crypto::aws_lc_rs::default_provider()
                .cipher_suites
                .len()
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(PrincipalRules::parse("RULE:^(.*$/x/").is_err());
        assert!(PrincipalRules::parse("RULE:abc").is_err());
        assert!(PrincipalRules::parse("SOMETHING").is_err());
    }
}
