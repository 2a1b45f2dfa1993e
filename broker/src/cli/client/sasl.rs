//! SASL authentication of a connection, as Kafka's clients do it: after ApiVersions,
//! SaslHandshake v1 names the mechanism, then SaslAuthenticate rounds carry its tokens.
//!
//! PLAIN is one token (`\0user\0password`). SCRAM-SHA-256/512 (RFC 5802, RFC 7677) is the
//! client side of the exchange: client-first `n,,n=user,r=cnonce`; server-first
//! `r=cnonce+snonce,s=salt,i=iterations` (checked: our nonce, a salt, iterations in
//! range); client-final `c=biws,r=nonce,p=proof`; server-final `v=signature`, checked in
//! constant time, so a server that does not know the password cannot pass for the broker.
//! The password is used as given (no SASLprep), as Kafka's clients do.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::{constant_time, digest, hmac, pbkdf2, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use clap::ValueEnum;
use kafka_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use kafka_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use kafka_protocol::protocol::StrBytes;

use super::conn::Conn;
use crate::cli::error;

/// UNSUPPORTED_SASL_MECHANISM.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// SASL_AUTHENTICATION_FAILED.
const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// The error codes of a refused authentication: UNSUPPORTED_SASL_MECHANISM,
/// ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED.
pub const FAILURE_CODES: [i16; 3] = [UNSUPPORTED_SASL_MECHANISM, 34, SASL_AUTHENTICATION_FAILED];

/// A SASL exchange that failed on the client's side (a server message that is malformed,
/// or a SCRAM server signature that does not check out).
#[derive(Debug)]
pub struct AuthFailure(pub String);

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuthFailure {}

/// Fewest PBKDF2 iterations a server may ask for (RFC 7677, Kafka's minimum).
const MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations a server may ask for: Kafka allows 16384; this leaves room for
/// other servers while a hostile one cannot keep the client hashing for long.
const MAX_ITERATIONS: u32 = 100_000;
/// Most SaslAuthenticate rounds (SCRAM needs two).
const MAX_ROUNDS: usize = 4;

/// The SASL mechanisms the CLI speaks, by their Kafka names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mechanism {
    /// PLAIN (RFC 4616): user and password in one token; use it over TLS.
    #[value(name = "PLAIN")]
    Plain,
    /// SCRAM-SHA-256 (RFC 7677).
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM-SHA-512.
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl Mechanism {
    /// The name SaslHandshake carries.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A user's SASL credentials. The password is never printed.
#[derive(Clone)]
pub struct Credentials {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Authenticates `conn` (whose ApiVersions are negotiated) with `creds`. Returns the
/// session lifetime the broker announced (KIP-368), if any: the connection must
/// authenticate again before it ends.
pub fn authenticate(conn: &mut Conn, creds: &Credentials) -> anyhow::Result<Option<Duration>> {
    let addr = conn.addr().to_string();
    let context = || {
        format!(
            "SASL {} authentication of '{}' at {addr}",
            creds.mechanism.name(),
            creds.user,
        )
    };
    let handshake_version = conn
        .version::<SaslHandshakeRequest>()
        .with_context(context)?;
    if handshake_version < 1 {
        bail!(
            "{}: the broker serves SaslHandshake v0 only (bare SASL tokens, before Kafka 1.0), \
             which this client does not speak",
            context()
        );
    }
    let resp = conn
        .call_at(
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(creds.mechanism.name())),
            handshake_version,
        )
        .with_context(context)?;
    if resp.error_code == UNSUPPORTED_SASL_MECHANISM {
        let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(error::kafka(
            resp.error_code,
            context(),
            format!(
                "the listener offers {}",
                if offered.is_empty() {
                    "no mechanism".to_string()
                } else {
                    offered.join(", ")
                }
            ),
        ));
    }
    error::check(resp.error_code, None, context)?;

    let version = conn
        .version::<SaslAuthenticateRequest>()
        .with_context(context)?;
    let mut exchange = Exchange::new(creds)?;
    let mut token = exchange.first();
    for _ in 0..MAX_ROUNDS {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let resp = conn.call_at(&req, version).with_context(context)?;
        if resp.error_code != 0 {
            let message = resp.error_message.as_deref().map(str::to_string);
            let message = match message {
                Some(m) if !m.is_empty() => m,
                _ if resp.error_code == SASL_AUTHENTICATION_FAILED => {
                    "authentication failed".to_string()
                }
                _ => String::new(),
            };
            return Err(error::kafka(resp.error_code, context(), message));
        }
        match exchange
            .next(&resp.auth_bytes)
            .map_err(|e| anyhow::Error::new(AuthFailure(e)).context(context()))?
        {
            Next::Send(t) => token = t,
            Next::Done => {
                let lifetime = u64::try_from(resp.session_lifetime_ms)
                    .ok()
                    .filter(|&ms| ms > 0)
                    .map(Duration::from_millis);
                return Ok(lifetime);
            }
        }
    }
    bail!(
        "{}: the broker asked for more than {MAX_ROUNDS} rounds",
        context()
    )
}

/// What the exchange does after a server message.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Send this token.
    Send(Vec<u8>),
    /// Authenticated (and, for SCRAM, the server proved it knows the credential).
    Done,
}

/// The client side of one mechanism's exchange.
enum Exchange {
    Plain { token: Vec<u8>, sent: bool },
    Scram(Box<Scram>),
}

impl Exchange {
    fn new(creds: &Credentials) -> anyhow::Result<Exchange> {
        Ok(match creds.mechanism {
            Mechanism::Plain => {
                let mut token = Vec::with_capacity(creds.user.len() + creds.password.len() + 2);
                token.push(0);
                token.extend_from_slice(creds.user.as_bytes());
                token.push(0);
                token.extend_from_slice(creds.password.as_bytes());
                Exchange::Plain { token, sent: false }
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                Exchange::Scram(Box::new(Scram::new(creds, random_nonce()?)))
            }
        })
    }

    /// The first token.
    fn first(&mut self) -> Vec<u8> {
        match self {
            Exchange::Plain { token, sent } => {
                *sent = true;
                std::mem::take(token)
            }
            Exchange::Scram(s) => s.client_first().into_bytes(),
        }
    }

    /// The server's answer to our last token.
    fn next(&mut self, server: &[u8]) -> Result<Next, String> {
        match self {
            Exchange::Plain { .. } => Ok(Next::Done),
            Exchange::Scram(s) => s.next(server),
        }
    }
}

/// 24 random bytes as base64: printable, no commas.
fn random_nonce() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes).map_err(|_| anyhow!("no random bytes for the SCRAM nonce"))?;
    Ok(BASE64.encode(bytes))
}

/// Where a SCRAM exchange is.
enum ScramState {
    /// Client-first not sent yet.
    Start,
    /// Client-first sent; waiting for server-first.
    ServerFirst,
    /// Client-final sent; waiting for server-final, which must carry this signature.
    ServerFinal { server_signature: Vec<u8> },
    /// Finished; anything more from the server is an error.
    Finished,
}

/// The client side of SCRAM-SHA-256/512.
struct Scram {
    sha512: bool,
    password: String,
    nonce: String,
    client_first_bare: String,
    state: ScramState,
}

impl Scram {
    fn new(creds: &Credentials, nonce: String) -> Scram {
        let client_first_bare = format!("n={},r={nonce}", escape_name(&creds.user));
        Scram {
            sha512: creds.mechanism == Mechanism::ScramSha512,
            password: creds.password.clone(),
            nonce,
            client_first_bare,
            state: ScramState::Start,
        }
    }

    fn client_first(&mut self) -> String {
        self.state = ScramState::ServerFirst;
        // gs2 header: no channel binding, no authorization id.
        format!("n,,{}", self.client_first_bare)
    }

    fn next(&mut self, message: &[u8]) -> Result<Next, String> {
        let text = std::str::from_utf8(message)
            .map_err(|_| "the SCRAM server message is not UTF-8".to_string())?;
        match std::mem::replace(&mut self.state, ScramState::Finished) {
            ScramState::ServerFirst => {
                let (token, server_signature) = self.client_final(text)?;
                self.state = ScramState::ServerFinal { server_signature };
                Ok(Next::Send(token.into_bytes()))
            }
            ScramState::ServerFinal { server_signature } => {
                verify_server_final(text, &server_signature)?;
                Ok(Next::Done)
            }
            ScramState::Start | ScramState::Finished => {
                Err("the SCRAM server sent a message out of turn".into())
            }
        }
    }

    /// Client-final for `server_first`, and the server signature server-final must carry.
    fn client_final(&self, server_first: &str) -> Result<(String, Vec<u8>), String> {
        let first = parse_server_first(server_first)?;
        if first.nonce.len() <= self.nonce.len() || !first.nonce.starts_with(&self.nonce) {
            return Err("the SCRAM server's nonce does not extend ours".into());
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&first.iterations) {
            return Err(format!(
                "the SCRAM server asks for {} iterations (this client accepts \
                 {MIN_ITERATIONS} to {MAX_ITERATIONS})",
                first.iterations
            ));
        }
        let iterations = NonZeroU32::new(first.iterations)
            .ok_or_else(|| "the SCRAM server asks for 0 iterations".to_string())?;
        let (pbkdf2_alg, hmac_alg, digest_alg) = if self.sha512 {
            (
                pbkdf2::PBKDF2_HMAC_SHA512,
                hmac::HMAC_SHA512,
                &digest::SHA512,
            )
        } else {
            (
                pbkdf2::PBKDF2_HMAC_SHA256,
                hmac::HMAC_SHA256,
                &digest::SHA256,
            )
        };
        let mut salted = vec![0u8; digest_alg.output_len()];
        pbkdf2::derive(
            pbkdf2_alg,
            iterations,
            &first.salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let sign = |key: &[u8], data: &[u8]| {
            hmac::sign(&hmac::Key::new(hmac_alg, key), data)
                .as_ref()
                .to_vec()
        };
        let without_proof = format!("c=biws,r={}", first.nonce);
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = sign(&salted, b"Client Key");
        let stored_key = digest::digest(digest_alg, &client_key);
        let client_signature = sign(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = sign(&salted, b"Server Key");
        let server_signature = sign(&server_key, auth_message.as_bytes());
        Ok((
            format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature,
        ))
    }
}

/// A SASL name with `=` and `,` escaped (RFC 5802 `saslname`).
fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

struct ServerFirst {
    nonce: String,
    salt: Vec<u8>,
    iterations: u32,
}

/// `[m=ext,]r=nonce,s=salt,i=iterations[,ext...]`; `e=` is the server's error.
fn parse_server_first(message: &str) -> Result<ServerFirst, String> {
    let mut nonce = None;
    let mut salt = None;
    let mut iterations = None;
    for (i, attr) in message.split(',').enumerate() {
        let (key, value) = attr
            .split_once('=')
            .ok_or_else(|| format!("malformed SCRAM server-first message {message:?}"))?;
        match (i, key) {
            (0, "e") => return Err(format!("the SCRAM server refused: {value}")),
            (0, "m") => return Err("the SCRAM server requires an unknown extension".into()),
            (0, "r") => nonce = Some(value.to_string()),
            (1, "s") => {
                salt = Some(
                    BASE64
                        .decode(value)
                        .map_err(|_| "the SCRAM salt is not base64".to_string())?,
                )
            }
            (2, "i") => {
                iterations =
                    Some(value.parse::<u32>().map_err(|_| {
                        format!("the SCRAM iteration count {value:?} is not a number")
                    })?)
            }
            (0..=2, _) => return Err(format!("malformed SCRAM server-first message {message:?}")),
            // Extensions after the three attributes are ignored (RFC 5802).
            _ => {}
        }
    }
    match (nonce, salt, iterations) {
        (Some(nonce), Some(salt), Some(iterations)) if !salt.is_empty() && !nonce.is_empty() => {
            Ok(ServerFirst {
                nonce,
                salt,
                iterations,
            })
        }
        _ => Err(format!("malformed SCRAM server-first message {message:?}")),
    }
}

/// Checks `v=signature` against what the server must have computed.
fn verify_server_final(message: &str, expected: &[u8]) -> Result<(), String> {
    let first = message.split(',').next().unwrap_or_default();
    if let Some(err) = first.strip_prefix("e=") {
        return Err(format!("the SCRAM server refused: {err}"));
    }
    let signature = first
        .strip_prefix("v=")
        .and_then(|v| BASE64.decode(v).ok())
        .ok_or_else(|| format!("malformed SCRAM server-final message {message:?}"))?;
    constant_time::verify_slices_are_equal(&signature, expected).map_err(|_| {
        "the broker's SCRAM signature is wrong: it does not know this user's credential \
         (not the broker it claims to be?)"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use floe_broker::security::sasl::scram::{ScramExchange, ScramStore};
    use floe_broker::security::sasl::{
        SaslExchange, SaslStep, ScramMechanism, scram_credential_from_password,
    };

    fn creds(mechanism: Mechanism, user: &str, password: &str) -> Credentials {
        Credentials {
            mechanism,
            user: user.into(),
            password: password.into(),
        }
    }

    /// RFC 7677's SCRAM-SHA-256 example, message for message.
    #[test]
    fn rfc7677_example() {
        let mut s = Scram::new(
            &creds(Mechanism::ScramSha256, "user", "pencil"),
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(s.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = s.next(server_first.as_bytes());
        assert_eq!(
            client_final,
            Ok(Next::Send(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                    .to_vec()
            ))
        );
        assert_eq!(
            s.next(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Ok(Next::Done)
        );
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let mut s = Scram::new(
            &creds(Mechanism::ScramSha256, "user", "pencil"),
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        s.client_first();
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert!(matches!(s.next(server_first.as_bytes()), Ok(Next::Send(_))));
        let err = s
            .next(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(err.contains("signature is wrong"), "{err}");
    }

    #[test]
    fn bad_server_first_messages_are_refused() {
        let cases = [
            ("r=other-nonce,s=c2FsdA==,i=4096", "does not extend ours"),
            ("r=abc,s=c2FsdA==,i=4096", "does not extend ours"),
            ("r=abcX,s=c2FsdA==,i=1024", "1024 iterations"),
            ("r=abcX,s=c2FsdA==,i=4000000000", "iterations"),
            ("r=abcX,s=c2FsdA==,i=many", "not a number"),
            ("r=abcX,s=!!,i=4096", "not base64"),
            ("r=abcX,s=,i=4096", "malformed"),
            ("r=abcX,i=4096", "malformed"),
            ("m=x,r=abcX,s=c2FsdA==,i=4096", "extension"),
            ("e=unknown-user", "refused: unknown-user"),
            ("garbage", "malformed"),
        ];
        for (message, needle) in cases {
            let mut s = Scram::new(&creds(Mechanism::ScramSha512, "u", "p"), "abc".into());
            s.client_first();
            let err = s.next(message.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{message}: {err}");
        }
    }

    #[test]
    fn names_are_escaped() {
        let s = Scram::new(&creds(Mechanism::ScramSha256, "a=b,c", "p"), "n".into());
        assert_eq!(s.client_first_bare, "n=a=3Db=2Cc,r=n");
    }

    #[test]
    fn plain_is_one_token() {
        let mut e = Exchange::new(&creds(Mechanism::Plain, "admin", "secret")).unwrap();
        assert_eq!(e.first(), b"\0admin\0secret");
        assert_eq!(e.next(b""), Ok(Next::Done));
    }

    /// The client against the broker's server side, both mechanisms, a wrong password.
    #[test]
    fn against_the_broker_exchange() {
        for (mechanism, server) in [
            (Mechanism::ScramSha256, ScramMechanism::Sha256),
            (Mechanism::ScramSha512, ScramMechanism::Sha512),
        ] {
            let record = scram_credential_from_password(server.name(), "s3cret", 4096).unwrap();
            let mut users = BTreeMap::new();
            users.insert(
                "al,ice".to_string(),
                BTreeMap::from([(server.name().to_string(), record)]),
            );
            let store = Arc::new(ScramStore::new(users).unwrap());
            for (password, ok) in [("s3cret", true), ("wrong", false)] {
                let mut client = Exchange::new(&creds(mechanism, "al,ice", password)).unwrap();
                let mut server = ScramExchange::new(server, store.clone());
                let SaslStep::Challenge(first) = server.step(&client.first()) else {
                    panic!("no server-first");
                };
                let Ok(Next::Send(fin)) = client.next(&first) else {
                    panic!("no client-final");
                };
                match server.step(&fin) {
                    SaslStep::Done {
                        principal,
                        response,
                        ..
                    } => {
                        assert!(ok, "{password} accepted");
                        assert_eq!(principal.name, "al,ice");
                        assert_eq!(client.next(&response), Ok(Next::Done));
                    }
                    SaslStep::Failed { .. } => assert!(!ok, "{password} refused"),
                    SaslStep::Challenge(_) => panic!("a third round"),
                }
            }
        }
    }
}
