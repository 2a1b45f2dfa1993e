//! Test-time TLS material and a broker with every kind of listener.
//!
//! Certificates are generated with the `openssl` command for each test run (a CA, a server
//! certificate for 127.0.0.1/localhost, client certificates); no private key is committed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Broker, free_port, run_ok};

/// A CA and the certificates it signed, as PEM files in one directory.
pub struct Pki {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// CA certificate (clients' truststore, the broker's `ssl_truststore_location`).
    pub ca: PathBuf,
    /// Server certificate chain followed by its key (`ssl_keystore_location`).
    pub server: PathBuf,
}

impl Pki {
    /// Generates a CA and a server certificate (SAN 127.0.0.1, localhost) in `dir`.
    pub fn generate(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let path = |name: &str| dir.join(name);
        self_signed_ca(
            &path("ca.key"),
            &path("ca.pem"),
            "/O=Floe Test/CN=Floe Test CA",
        );
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca: path("ca.pem"),
            server: path("server.pem"),
        };
        pki.sign("server", "/O=Floe Test/CN=localhost", true);
        let chain = [
            std::fs::read(path("server.crt")).unwrap(),
            std::fs::read(path("server.key")).unwrap(),
        ]
        .concat();
        std::fs::write(&pki.server, chain).unwrap();
        pki
    }

    /// Signs a new server certificate (new serial, same names) and replaces the
    /// keystore file with it, as a certificate renewal does.
    pub fn renew_server(&self) {
        self.sign("server", "/O=Floe Test/CN=localhost", true);
        let chain = [
            std::fs::read(self.dir.join("server.crt")).unwrap(),
            std::fs::read(self.dir.join("server.key")).unwrap(),
        ]
        .concat();
        // Written next to it and renamed, so the broker never reads half a file.
        let tmp = self.dir.join("server.pem.new");
        std::fs::write(&tmp, chain).unwrap();
        std::fs::rename(&tmp, &self.server).unwrap();
    }

    /// Generates a client certificate with `subject` (e.g. `/O=Floe/CN=alice`); returns
    /// (certificate, key) paths.
    pub fn client(&self, name: &str, subject: &str) -> (PathBuf, PathBuf) {
        self.sign(name, subject, false);
        (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        )
    }

    fn sign(&self, name: &str, subject: &str, server: bool) {
        let path = |f: String| self.dir.join(f).to_str().unwrap().to_string();
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &path(format!("{name}.key")),
            "-out",
            &path(format!("{name}.csr")),
        ]);
        let ext = if server {
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        } else {
            "extendedKeyUsage=clientAuth\n"
        };
        std::fs::write(self.dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-sha256",
            "-in",
            &path(format!("{name}.csr")),
            "-CA",
            self.ca.to_str().unwrap(),
            "-CAkey",
            &path("ca.key".into()),
            "-CAcreateserial",
            "-extfile",
            &path(format!("{name}.ext")),
            "-out",
            &path(format!("{name}.crt")),
        ]);
    }
}

/// A self-signed CA certificate with `subject`, its key at `key` and certificate at `cert`.
pub fn self_signed_ca(key: &Path, cert: &Path, subject: &str) {
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        subject,
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
}

fn openssl(args: &[&str]) {
    run_ok(Command::new("openssl").args(args));
}

/// A broker with a PLAINTEXT listener (the harness port, for setup as an admin), and
/// SASL_SSL, SSL (client certificates requested) and SASL_PLAINTEXT listeners.
pub struct SecureBroker {
    /// The broker; `bootstrap()` is its PLAINTEXT listener.
    pub broker: Broker,
    /// The TLS material.
    pub pki: Pki,
    /// Port of the SASL_SSL listener.
    pub sasl_ssl: u16,
    /// Port of the SSL listener.
    pub ssl: u16,
    /// Port of the SASL_PLAINTEXT listener.
    pub sasl_plaintext: u16,
}

impl SecureBroker {
    /// Starts one, with `extra` settings (`key=value`, given to `--set`).
    pub fn start(dir: &Path, extra: &[&str]) -> SecureBroker {
        let pki = Pki::generate(&dir.join("pki"));
        let (sasl_ssl, ssl, sasl_plaintext) = (free_port(), free_port(), free_port());
        let port = free_port();
        let mut args = vec![
            "--set".to_string(),
            format!(
                "listeners=PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_ssl},\
                 SSL://127.0.0.1:{ssl},SASL_PLAINTEXT://127.0.0.1:{sasl_plaintext}"
            ),
            "--set".into(),
            format!("ssl_keystore_location={}", pki.server.display()),
            "--set".into(),
            format!("ssl_truststore_location={}", pki.ca.display()),
            "--set".into(),
            "ssl_client_auth=requested".into(),
        ];
        for e in extra {
            args.push("--set".into());
            args.push(e.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let broker = Broker::start_on(port, &args);
        SecureBroker {
            broker,
            pki,
            sasl_ssl,
            ssl,
            sasl_plaintext,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn at(port: u16) -> String {
        format!("127.0.0.1:{port}")
    }
}
