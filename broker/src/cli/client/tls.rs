//! TLS for the SSL and SASL_SSL security protocols: a rustls client configuration (aws-lc-rs
//! provider, TLS 1.2 and 1.3) built once from PEM files and shared by every connection, and
//! the blocking handshake of one connection.
//!
//! The broker's certificate is checked against the CAs of `--tls-ca`, or without it the
//! system's CA bundle (`$SSL_CERT_FILE`, else the usual distribution paths), and against the
//! host the connection was opened to (a bootstrap address, or the address a broker
//! advertised), as Kafka clients check it (`ssl.endpoint.identification.algorithm=https`).

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};

use crate::cli::error;

/// CA bundles of common distributions, tried in order when no CA file is given (the paths
/// OpenSSL, Go and librdkafka's `probe` look at).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL, CentOS
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL 7+
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/ssl/cert.pem",                  // macOS, Alpine
];

/// What the TLS options asked for.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM file of the CAs to trust (`None`: the system's bundle).
    pub ca: Option<PathBuf>,
    /// PEM file of the client certificate chain (mTLS); may also hold the key.
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's key (`None`: read from `cert`).
    pub key: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
}

/// The TLS client configuration for `opts`. Files that cannot be read or hold nothing
/// usable are argument errors (exit 2): nothing has been sent yet.
pub fn client_config(opts: &TlsOptions) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = if opts.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots(opts.ca.as_deref())?)
    };
    let config = match &opts.cert {
        Some(cert) => {
            let chain = certificates(cert)?;
            let key_file = opts.key.as_deref().unwrap_or(cert);
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                error::usage(format!(
                    "--tls-key {}: no private key read ({e}){}",
                    key_file.display(),
                    if opts.key.is_none() {
                        "; give the key file with --tls-key"
                    } else {
                        ""
                    }
                ))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                error::usage(format!(
                    "--tls-cert {}: the certificate and key do not go together: {e}",
                    cert.display()
                ))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error::usage(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error::usage(format!(
            "{}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// The CAs of `ca`, or of the system's bundle.
fn roots(ca: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in certificates(ca).map_err(|e| error::usage(format!("--tls-ca {e:#}")))? {
            roots.add(cert).map_err(|e| {
                error::usage(format!(
                    "--tls-ca {}: not a usable CA certificate: {e}",
                    ca.display()
                ))
            })?;
        }
        return Ok(roots);
    }
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let candidates = env
        .iter()
        .cloned()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    for bundle in candidates {
        if let Ok(certs) = CertificateDer::pem_file_iter(&bundle) {
            roots.add_parsable_certificates(certs.filter_map(Result::ok));
            if !roots.is_empty() {
                return Ok(roots);
            }
        }
    }
    Err(error::usage(
        "TLS needs the CA that signed the broker's certificate: give it with --tls-ca FILE \
         (no system CA bundle was found: $SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt, \
         ...)",
    ))
}

/// The TLS server name of `addr` (`host:port`, `[v6]:port`): a DNS name or an IP address.
pub fn server_name(addr: &str) -> anyhow::Result<ServerName<'static>> {
    let host = match addr.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None => addr.rsplit_once(':').map_or(addr, |(h, _)| h),
    };
    ServerName::try_from(host.to_string())
        .map_err(|_| anyhow::anyhow!("'{host}' is not a host name TLS can check"))
}

/// A TLS connection over `tcp`, handshake done (bounded by the socket's timeouts).
pub fn handshake(
    config: &Arc<ClientConfig>,
    addr: &str,
    mut tcp: TcpStream,
) -> anyhow::Result<StreamOwned<ClientConnection, TcpStream>> {
    let name = server_name(addr)?;
    let mut conn = ClientConnection::new(config.clone(), name)
        .with_context(|| format!("starting TLS with {addr}"))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Err(handshake_error(e, addr));
        }
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// A handshake failure with rustls's reason and, for the usual mistakes, what to check.
fn handshake_error(e: io::Error, addr: &str) -> anyhow::Error {
    if let Some(tls) = rustls_error(&e) {
        let hint = match &tls {
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature,
            ) => " (the broker's certificate is not signed by a trusted CA: see --tls-ca)",
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            ) => " (the broker's certificate does not name the host connected to)",
            _ => "",
        };
        return anyhow::Error::new(tls).context(format!("TLS handshake with {addr} failed{hint}"));
    }
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => anyhow::anyhow!(
            "TLS handshake with {addr} failed: no answer within the request timeout \
             (is it a TLS listener?)"
        ),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => anyhow::anyhow!(
            "TLS handshake with {addr} failed: the broker closed the connection (is it a TLS \
             listener? does it require a client certificate, --tls-cert?)"
        ),
        _ => anyhow::Error::new(e).context(format!("TLS handshake with {addr} failed")),
    }
}

/// The rustls error inside an I/O error of a TLS stream, if that is what it is.
pub fn rustls_error(e: &io::Error) -> Option<rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
}

/// `--tls-insecure-skip-verify`: any certificate for any name is accepted (the handshake
/// signatures are still checked, so the peer holds the certificate's key).
struct AnyCertificate(Arc<CryptoProvider>);

impl fmt::Debug for AnyCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyCertificate")
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_address() {
        let name = |a: &str| server_name(a).map(|n| n.to_str().into_owned()).ok();
        assert_eq!(
            name("kafka.example.com:9093").as_deref(),
            Some("kafka.example.com")
        );
        assert_eq!(name("127.0.0.1:9093").as_deref(), Some("127.0.0.1"));
        assert_eq!(name("[::1]:9093").as_deref(), Some("::1"));
        assert!(name("bad_host!:9093").is_none());
    }

    #[test]
    fn unreadable_files_are_argument_errors() {
        let opts = TlsOptions {
            ca: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let err = client_config(&opts).expect_err("refused");
        assert!(err.downcast_ref::<error::UsageError>().is_some(), "{err:#}");
        assert!(
            format!("{err:#}").contains("/nonexistent/ca.pem"),
            "{err:#}"
        );
    }
}
