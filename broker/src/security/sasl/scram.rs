//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side, and the credential
//! arithmetic that AlterUserScramCredentials needs.
//!
//! The exchange: client-first (`n,,n=user,r=cnonce`), server-first (`r=cnonce+snonce,
//! s=salt,i=iterations`), client-final (`c=biws,r=nonce,p=proof`), server-final
//! (`v=signature`). The server keeps only `StoredKey = H(HMAC(SaltedPassword, "Client
//! Key"))` and `ServerKey = HMAC(SaltedPassword, "Server Key")`, never the password; the
//! proof is checked by recomputing StoredKey from it and comparing in constant time.
//!
//! Channel binding is not supported (a `p=` client fails), nor are delegation tokens
//! (`tokenauth=true` fails). A user without a credential gets a server-first built from a
//! salt derived from a per-broker secret and the name (stable across attempts, so it looks
//! like a real one) and fails at client-final like a wrong password.

use std::num::NonZeroU32;
use std::sync::Arc;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{SaslExchange, SaslStep, ScramCredentials, decode_sasl_name};
use crate::metadata_store::ScramCredentialRecord;
use crate::security::Principal;

/// Most PBKDF2 iterations a credential may ask clients for (Kafka's limit).
pub const MAX_ITERATIONS: i32 = 16384;

/// Largest client message accepted (client-first or client-final); real ones are a few
/// hundred bytes.
pub const MAX_MESSAGE: usize = 8192;

/// The two SCRAM mechanisms, with Kafka's names and type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (type 1).
    Sha256,
    /// SCRAM-SHA-512 (type 2).
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The mechanism called `name` (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism with Kafka's type code (`ScramMechanism.type()`: 1 and 2; 0 is
    /// UNKNOWN).
    pub fn from_type(code: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.type_code() == code)
    }

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's type code of the mechanism (in the SCRAM credential APIs).
    pub fn type_code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// Fewest PBKDF2 iterations accepted (Kafka's limit, RFC 7677's minimum).
    pub fn min_iterations(self) -> i32 {
        4096
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// Length of the hash (and of keys, proofs and signatures).
    fn hash_len(self) -> usize {
        self.digest().output_len()
    }

    fn hmac_sign(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }

    /// The stored credential of a salted password (what the server keeps: the salt, the
    /// iterations, StoredKey and ServerKey). No range checks: see [`scram_credential`].
    pub fn credential(
        self,
        salted_password: &[u8],
        salt: &[u8],
        iterations: i32,
    ) -> ScramCredentialRecord {
        let client_key = self.hmac_sign(salted_password, b"Client Key");
        ScramCredentialRecord {
            salt: BASE64.encode(salt),
            stored_key: BASE64.encode(self.hash(&client_key)),
            server_key: BASE64.encode(self.hmac_sign(salted_password, b"Server Key")),
            iterations,
        }
    }
}

/// `Hi(password, salt, iterations)`: the salted password a client derives (RFC 5802; the
/// password is used as given, without SASLprep, as Kafka's clients do).
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: NonZeroU32,
) -> Vec<u8> {
    let mut out = vec![0; mechanism.hash_len()];
    pbkdf2::derive(
        mechanism.pbkdf2(),
        iterations,
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

/// The credential for `mechanism` (`SCRAM-SHA-256`, `SCRAM-SHA-512`) from a salted
/// password, as AlterUserScramCredentials sends it; refuses unknown mechanisms,
/// iterations outside Kafka's range and an empty salt or salted password.
pub fn scram_credential(
    mechanism: &str,
    salted_password: &[u8],
    salt: &[u8],
    iterations: i32,
) -> Result<ScramCredentialRecord, String> {
    let m = ScramMechanism::from_name(mechanism)
        .ok_or_else(|| format!("unknown SCRAM mechanism {mechanism:?}"))?;
    check_iterations(m, iterations)?;
    if salt.is_empty() {
        return Err("the salt is empty".into());
    }
    if salted_password.is_empty() {
        return Err("the salted password is empty".into());
    }
    Ok(m.credential(salted_password, salt, iterations))
}

/// The credential for `mechanism` and `password` with a random 32-byte salt (tests and
/// tools; the broker itself never sees passwords of SCRAM users).
pub fn scram_credential_from_password(
    mechanism: &str,
    password: &str,
    iterations: i32,
) -> Result<ScramCredentialRecord, String> {
    let m = ScramMechanism::from_name(mechanism)
        .ok_or_else(|| format!("unknown SCRAM mechanism {mechanism:?}"))?;
    check_iterations(m, iterations)?;
    let rounds = u32::try_from(iterations)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or("iterations must be positive")?;
    let mut salt = [0u8; 32];
    rand::fill(&mut salt).map_err(|_| "no random bytes for the salt")?;
    let salted = salted_password(m, password, &salt, rounds);
    Ok(m.credential(&salted, &salt, iterations))
}

/// Kafka's iteration range: at least the mechanism's minimum, at most [`MAX_ITERATIONS`].
pub fn check_iterations(mechanism: ScramMechanism, iterations: i32) -> Result<(), String> {
    if iterations < mechanism.min_iterations() {
        Err(format!(
            "Too few iterations ({iterations}; at least {} for {})",
            mechanism.min_iterations(),
            mechanism.name()
        ))
    } else if iterations > MAX_ITERATIONS {
        Err(format!(
            "Too many iterations ({iterations}; at most {MAX_ITERATIONS})"
        ))
    } else {
        Ok(())
    }
}

/// The credentials SCRAM exchanges check, and the secret that fabricates credentials for
/// unknown users.
pub struct ScramStore {
    credentials: ScramCredentials,
    secret: [u8; 32],
}

impl ScramStore {
    /// A store over `credentials` with a fresh random secret.
    pub fn new(credentials: ScramCredentials) -> Result<ScramStore, String> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret).map_err(|_| "no random bytes for the SCRAM secret")?;
        Ok(ScramStore {
            credentials,
            secret,
        })
    }

    /// This store with other credentials and the same secret (so the salts fabricated for
    /// unknown users do not change).
    pub fn replaced(&self, credentials: ScramCredentials) -> ScramStore {
        ScramStore {
            credentials,
            secret: self.secret,
        }
    }

    /// The credentials.
    pub fn credentials(&self) -> &ScramCredentials {
        &self.credentials
    }

    /// `user`'s credential for `mechanism`, decoded; `Ok(None)`: none stored.
    fn lookup(&self, user: &str, mechanism: ScramMechanism) -> Result<Option<Keys>, String> {
        let Some(record) = self
            .credentials
            .get(user)
            .and_then(|m| m.get(mechanism.name()))
        else {
            return Ok(None);
        };
        let decode = |what: &str, v: &str| {
            BASE64
                .decode(v)
                .map_err(|e| format!("the stored {what} of {user:?} is not base64: {e}"))
        };
        let keys = Keys {
            salt: decode("salt", &record.salt)?,
            stored_key: decode("stored key", &record.stored_key)?,
            server_key: decode("server key", &record.server_key)?,
            iterations: record.iterations,
        };
        let n = mechanism.hash_len();
        if keys.stored_key.len() != n || keys.server_key.len() != n || keys.salt.is_empty() {
            return Err(format!(
                "the stored {} credential of {user:?} has keys of the wrong length",
                mechanism.name()
            ));
        }
        Ok(Some(keys))
    }

    /// A credential for a user that has none: a salt stable per (mechanism, user) and keys
    /// no proof matches (the exchange fails regardless).
    fn fabricated(&self, user: &str, mechanism: ScramMechanism) -> Keys {
        let mut input = Vec::with_capacity(user.len() + 16);
        input.extend_from_slice(mechanism.name().as_bytes());
        input.push(0);
        input.extend_from_slice(user.as_bytes());
        let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.secret), &input);
        let salt = mac.as_ref().to_vec();
        let stored_key = mechanism.hmac_sign(&self.secret, &salt);
        Keys {
            salt,
            server_key: stored_key.clone(),
            stored_key,
            iterations: mechanism.min_iterations(),
        }
    }
}

/// A decoded credential.
struct Keys {
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
    iterations: i32,
}

/// Where an exchange is.
enum State {
    /// Waiting for client-first.
    ClientFirst,
    /// Server-first was sent; waiting for client-final.
    ClientFinal(Box<Pending>),
    /// Done (succeeded or failed); any further message fails.
    Finished,
}

/// What client-final is checked against.
struct Pending {
    user: String,
    /// The user has no credential: fail at client-final whatever the proof.
    unknown: bool,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    keys: Keys,
}

/// One SCRAM exchange.
pub struct ScramExchange {
    mechanism: ScramMechanism,
    store: Arc<ScramStore>,
    state: State,
    /// Test hook: the server nonce to use instead of a random one (RFC test vectors).
    fixed_nonce: Option<String>,
}

impl ScramExchange {
    /// An exchange for `mechanism` over the credentials of `store`.
    pub fn new(mechanism: ScramMechanism, store: Arc<ScramStore>) -> ScramExchange {
        ScramExchange {
            mechanism,
            store,
            state: State::ClientFirst,
            fixed_nonce: None,
        }
    }

    /// The client is told this for every failure but a mismatched authorization id: no
    /// hint of what was wrong (Kafka's message for SCRAM failures).
    fn invalid(&self, detail: impl Into<String>) -> SaslStep {
        SaslStep::failed(
            format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                self.mechanism.name()
            ),
            format!("{}: {}", self.mechanism.name(), detail.into()),
        )
    }

    fn client_first(&mut self, message: &str) -> SaslStep {
        let first = match parse_client_first(message) {
            Ok(first) => first,
            Err(e) => return self.invalid(format!("malformed client-first message: {e}")),
        };
        if let Some(authzid) = &first.authzid
            && !authzid.is_empty()
            && *authzid != first.user
        {
            return SaslStep::failed(
                "Authentication failed: Client requested an authorization id that is different from username",
                format!(
                    "{}: user {:?} asked to act as {authzid:?}",
                    self.mechanism.name(),
                    first.user
                ),
            );
        }
        let (keys, unknown) = match self.store.lookup(&first.user, self.mechanism) {
            Ok(Some(keys)) => (keys, false),
            Ok(None) => (self.store.fabricated(&first.user, self.mechanism), true),
            Err(e) => return self.invalid(e),
        };
        if keys.iterations < self.mechanism.min_iterations() {
            return self.invalid(format!(
                "the credential of {:?} has {} iterations, fewer than the minimum {}",
                first.user,
                keys.iterations,
                self.mechanism.min_iterations()
            ));
        }
        let server_nonce = match self.fixed_nonce.take() {
            Some(n) => n,
            None => {
                // Letters and digits only, as Kafka's (a base-36 number).
                const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
                let mut bytes = [0u8; 32];
                if rand::fill(&mut bytes).is_err() {
                    return self.invalid("no random bytes for the server nonce");
                }
                bytes
                    .iter()
                    .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                    .collect::<String>()
            }
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&keys.salt),
            keys.iterations
        );
        let challenge = server_first.clone().into_bytes();
        self.state = State::ClientFinal(Box::new(Pending {
            user: first.user,
            unknown,
            gs2_header: first.gs2_header.to_string(),
            client_first_bare: first.bare.to_string(),
            server_first,
            nonce,
            keys,
        }));
        SaslStep::Challenge(challenge)
    }

    fn client_final(&self, pending: &Pending, message: &str) -> SaslStep {
        let fin = match parse_client_final(message, self.mechanism.hash_len()) {
            Ok(fin) => fin,
            Err(e) => return self.invalid(format!("malformed client-final message: {e}")),
        };
        if fin.channel_binding != pending.gs2_header.as_bytes() {
            return self.invalid("the channel binding (c=) does not repeat the gs2 header");
        }
        // Kafka checks that the nonce ends with the server's, no more: librdkafka before
        // 2.1 sends its own nonce again in front of the server's (and signs what it sent).
        if !fin.nonce.ends_with(pending.nonce.as_str()) {
            return self
                .invalid("the nonce of client-final does not end with the one of server-first");
        }
        let auth_message = format!(
            "{},{},{}",
            pending.client_first_bare, pending.server_first, fin.without_proof
        );
        let m = self.mechanism;
        let client_signature = m.hmac_sign(&pending.keys.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = fin
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let matches =
            constant_time::verify_slices_are_equal(&m.hash(&client_key), &pending.keys.stored_key)
                .is_ok();
        if pending.unknown {
            return self.invalid(format!("no credential for user {:?}", pending.user));
        }
        if !matches {
            return self.invalid(format!(
                "wrong password (client proof) for user {:?}",
                pending.user
            ));
        }
        let signature = m.hmac_sign(&pending.keys.server_key, auth_message.as_bytes());
        SaslStep::Done {
            principal: Principal::user(pending.user.clone()),
            response: format!("v={}", BASE64.encode(signature)).into_bytes(),
            expires_at_ms: None,
        }
    }
}

impl SaslExchange for ScramExchange {
    fn step(&mut self, token: &[u8]) -> SaslStep {
        let state = std::mem::replace(&mut self.state, State::Finished);
        if token.len() > MAX_MESSAGE {
            return self.invalid(format!("a client message of {} bytes", token.len()));
        }
        let Ok(message) = std::str::from_utf8(token) else {
            return self.invalid("a client message that is not UTF-8");
        };
        match state {
            State::ClientFirst => self.client_first(message),
            State::ClientFinal(pending) => self.client_final(&pending, message),
            State::Finished => self.invalid("a message after the exchange ended"),
        }
    }
}

/// A parsed client-first message.
#[derive(Debug)]
struct ClientFirst<'a> {
    /// `n,,` or `n,a=authzid,` (or `y,...`): what client-final's `c=` must repeat.
    gs2_header: &'a str,
    /// The authorization id, decoded (`None`: not given).
    authzid: Option<String>,
    /// Everything after the gs2 header (part of the AuthMessage).
    bare: &'a str,
    /// The user name, decoded.
    user: String,
    nonce: &'a str,
}

/// The next attribute, which must be the nonce (`r=`), checked.
fn next_nonce<'a>(attrs: &mut impl Iterator<Item = &'a str>) -> Result<&'a str, String> {
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or("no nonce (r=)")?;
    if !is_printable_nonce(nonce) {
        return Err("malformed nonce".into());
    }
    Ok(nonce)
}

/// `printable` of RFC 5802 (the nonce's characters): 0x21..=0x7E but `,`.
fn is_printable_nonce(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// An extension (`key=value`, RFC 5802 `attr-val`): the key letters, the value non-empty.
fn parse_extension(ext: &str) -> Result<(&str, &str), String> {
    match ext.split_once('=') {
        Some((k, v))
            if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic()) && !v.is_empty() =>
        {
            Ok((k, v))
        }
        _ => Err(format!("{ext:?} is not an attribute")),
    }
}

fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, String> {
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (flag, rest) = message.split_once(',').ok_or("no gs2 header")?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err("channel binding is not supported".into()),
        _ => return Err(format!("unknown channel binding flag {flag:?}")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or("no gs2 header")?;
    let authzid = match authzid {
        "" => None,
        a => {
            let name = a.strip_prefix("a=").ok_or("malformed authorization id")?;
            Some(decode_sasl_name(name).ok_or("malformed authorization id")?)
        }
    };
    let gs2_header = &message[..message.len() - bare.len()];
    let mut attrs = bare.split(',');
    let mut first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err("mandatory extensions (m=) are not supported".into());
    }
    first = first.strip_prefix("n=").ok_or("no user name (n=)")?;
    if first.is_empty() {
        return Err("empty user name".into());
    }
    let user = decode_sasl_name(first).ok_or("malformed user name")?;
    let nonce = next_nonce(&mut attrs)?;
    for ext in attrs {
        let (key, value) = parse_extension(ext)?;
        if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
            return Err("delegation tokens (tokenauth) are not supported".into());
        }
    }
    Ok(ClientFirst {
        gs2_header,
        authzid,
        bare,
        user,
        nonce,
    })
}

/// A parsed client-final message.
#[derive(Debug)]
struct ClientFinal<'a> {
    channel_binding: Vec<u8>,
    nonce: &'a str,
    /// `client-final-message-without-proof` (part of the AuthMessage).
    without_proof: &'a str,
    proof: Vec<u8>,
}

fn parse_client_final(message: &str, proof_len: usize) -> Result<ClientFinal<'_>, String> {
    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    let (without_proof, proof) = message.rsplit_once(",p=").ok_or("no proof (p=)")?;
    if proof.contains(',') {
        return Err("the proof is not the last attribute".into());
    }
    // A base64 proof of the right length is (proof_len + 2) / 3 * 4 characters; anything
    // longer is refused before decoding.
    if proof.len() != proof_len.div_ceil(3) * 4 {
        return Err("the proof has the wrong length".into());
    }
    let proof = BASE64
        .decode(proof)
        .map_err(|_| "the proof is not base64")?;
    if proof.len() != proof_len {
        return Err("the proof has the wrong length".into());
    }
    let mut attrs = without_proof.split(',');
    let channel = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or("no channel binding (c=)")?;
    // The gs2 header is short: refuse long channel-binding data before decoding.
    if channel.len() > 1024 {
        return Err("the channel binding is too long".into());
    }
    let channel_binding = BASE64
        .decode(channel)
        .map_err(|_| "the channel binding is not base64")?;
    let nonce = next_nonce(&mut attrs)?;
    for ext in attrs {
        parse_extension(ext)?;
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

/// Credentials for tests: `user` with `password` under each mechanism, 4096 iterations.
#[cfg(test)]
pub(crate) fn test_credentials(users: &[(&str, &str)]) -> ScramCredentials {
    let mut creds = ScramCredentials::new();
    for (user, password) in users {
        let mut by_mech = std::collections::BTreeMap::new();
        for m in ScramMechanism::ALL {
            let record =
                scram_credential_from_password(m.name(), password, 4096).expect("test credential");
            by_mech.insert(m.name().to_string(), record);
        }
        creds.insert(user.to_string(), by_mech);
    }
    creds
}

#[cfg(test)]
mod tests;
