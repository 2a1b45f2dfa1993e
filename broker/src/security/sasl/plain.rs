//! SASL/PLAIN (RFC 4616): one client message, `[authzid] NUL authcid NUL passwd`, checked
//! against the users of `sasl_plain_users` and `sasl_plain_users_file`.
//!
//! Passwords are kept only as SHA-256 digests and compared digest to digest in constant
//! time, so neither the password nor its length leaks through timing; an unknown user is
//! compared against a dummy digest and gets the same answer as a wrong password.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::{constant_time, digest};

use super::{SaslExchange, SaslStep};
use crate::config::Config;
use crate::security::Principal;

/// The mechanism's name.
pub const MECHANISM: &str = "PLAIN";

/// Largest PLAIN message accepted. RFC 4616 asks for at least 255 octets per field; this
/// leaves room for long generated passwords and nothing more.
pub const MAX_MESSAGE: usize = 8192;

const INVALID: &str = "Authentication failed: Invalid username or password";

/// The PLAIN users: name to the SHA-256 digest of the password.
pub struct PlainUsers {
    digests: BTreeMap<String, Vec<u8>>,
    dummy: Vec<u8>,
}

impl PlainUsers {
    /// The users of `config.sasl_plain_users` and of the file `config.sasl_plain_users_file`
    /// (read here). A user named in both, or twice in the file, is an error.
    pub fn from_config(config: &Config) -> Result<PlainUsers, String> {
        let mut users = config.sasl_plain_users.clone();
        if let Some(path) = &config.sasl_plain_users_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "sasl_plain_users_file {}: cannot be read: {e}",
                    path.display()
                )
            })?;
            for (user, password) in parse_users_file(&text, path)? {
                if users.insert(user.clone(), password).is_some() {
                    return Err(format!(
                        "sasl_plain_users_file {}: user {user:?} is also in sasl_plain_users",
                        path.display()
                    ));
                }
            }
        }
        Ok(PlainUsers::new(&users))
    }

    /// Users from a name-to-password map.
    pub fn new(users: &BTreeMap<String, String>) -> PlainUsers {
        PlainUsers {
            digests: users
                .iter()
                .map(|(u, p)| (u.clone(), sha256(p.as_bytes())))
                .collect(),
            dummy: sha256(b"\0floe: no such user\0"),
        }
    }

    /// Whether `password` is `user`'s, in time independent of both (but for the map
    /// lookup).
    fn check(&self, user: &str, password: &str) -> bool {
        let given = sha256(password.as_bytes());
        match self.digests.get(user) {
            Some(stored) => constant_time::verify_slices_are_equal(&given, stored).is_ok(),
            None => {
                let _ = constant_time::verify_slices_are_equal(&given, &self.dummy);
                false
            }
        }
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
}

/// Parses a users file: one `user:password` per line (split at the first `:`, so passwords
/// may contain colons), surrounding whitespace trimmed, blank lines and `#` comments
/// ignored. A malformed line is an error naming the file and line (never its content,
/// which may hold a password).
pub fn parse_users_file(text: &str, path: &Path) -> Result<Vec<(String, String)>, String> {
    let mut users: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |what: &str| {
            format!(
                "sasl_plain_users_file {} line {}: {what}",
                path.display(),
                i + 1
            )
        };
        let Some((user, password)) = line.split_once(':') else {
            return Err(at("expected user:password"));
        };
        let user = user.trim();
        if user.is_empty() {
            return Err(at("the user name is empty"));
        }
        if password.is_empty() {
            return Err(at("the password is empty"));
        }
        if users.iter().any(|(u, _)| u == user) {
            return Err(at(&format!("user {user:?} is listed twice")));
        }
        users.push((user.to_string(), password.to_string()));
    }
    Ok(users)
}

/// One PLAIN exchange: a single client message, then done either way.
pub struct PlainExchange {
    users: Arc<PlainUsers>,
    finished: bool,
}

impl PlainExchange {
    /// An exchange checking against `users`.
    pub fn new(users: Arc<PlainUsers>) -> PlainExchange {
        PlainExchange {
            users,
            finished: false,
        }
    }
}

impl SaslExchange for PlainExchange {
    fn step(&mut self, token: &[u8]) -> SaslStep {
        if std::mem::replace(&mut self.finished, true) {
            return SaslStep::failed(
                "Authentication failed: unexpected SASL/PLAIN message",
                "a PLAIN exchange got a second message",
            );
        }
        if token.len() > MAX_MESSAGE {
            return SaslStep::failed(
                "Invalid SASL/PLAIN response: too long",
                format!(
                    "PLAIN message of {} bytes (at most {MAX_MESSAGE})",
                    token.len()
                ),
            );
        }
        let Ok(message) = std::str::from_utf8(token) else {
            return SaslStep::failed(
                "Invalid SASL/PLAIN response: not UTF-8",
                "PLAIN message is not UTF-8",
            );
        };
        let fields: Vec<&str> = message.split('\0').collect();
        let [authzid, user, password] = fields[..] else {
            return SaslStep::failed(
                format!(
                    "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
                    fields.len()
                ),
                format!("PLAIN message with {} fields", fields.len()),
            );
        };
        if user.is_empty() {
            return SaslStep::failed(
                "Authentication failed: username not specified",
                "PLAIN message without a user name",
            );
        }
        if password.is_empty() {
            return SaslStep::failed(
                "Authentication failed: password not specified",
                format!("PLAIN message for user {user:?} without a password"),
            );
        }
        if !self.users.check(user, password) {
            let why = if self.users.digests.contains_key(user) {
                "wrong password"
            } else {
                "unknown user"
            };
            return SaslStep::failed(INVALID, format!("PLAIN: {why} for user {user:?}"));
        }
        if !authzid.is_empty() && authzid != user {
            return SaslStep::failed(
                "Authentication failed: Client requested an authorization id that is different from username",
                format!("PLAIN: user {user:?} asked to act as {authzid:?}"),
            );
        }
        SaslStep::Done {
            principal: Principal::user(user),
            response: Vec::new(),
            expires_at_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Arc<PlainUsers> {
        let mut map = BTreeMap::new();
        map.insert("alice".to_string(), "alice-secret".to_string());
        map.insert("bob".to_string(), "p:w:d".to_string());
        Arc::new(PlainUsers::new(&map))
    }

    fn step(token: &[u8]) -> SaslStep {
        PlainExchange::new(users()).step(token)
    }

    fn failed_message(s: SaslStep) -> String {
        match s {
            SaslStep::Failed { message, .. } => message,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn plain_good_password_authenticates() {
        assert_eq!(
            step(b"\0alice\0alice-secret"),
            SaslStep::Done {
                principal: Principal::user("alice"),
                response: vec![],
                expires_at_ms: None
            }
        );
        assert!(matches!(
            step(b"alice\0alice\0alice-secret"),
            SaslStep::Done { .. }
        ));
        assert!(matches!(step(b"\0bob\0p:w:d"), SaslStep::Done { .. }));
    }

    #[test]
    fn plain_bad_password_and_unknown_user_look_the_same() {
        let wrong = step(b"\0alice\0nope");
        let unknown = step(b"\0mallory\0alice-secret");
        let (
            SaslStep::Failed {
                message: m1,
                detail: d1,
            },
            SaslStep::Failed {
                message: m2,
                detail: d2,
            },
        ) = (wrong, unknown)
        else {
            panic!("both must fail");
        };
        assert_eq!(m1, INVALID);
        assert_eq!(m1, m2);
        assert!(d1.contains("wrong password"), "{d1}");
        assert!(d2.contains("unknown user"), "{d2}");
        assert!(!m1.contains("nope") && !d1.contains("nope"));
    }

    #[test]
    fn plain_authzid_must_be_the_user() {
        let m = failed_message(step(b"bob\0alice\0alice-secret"));
        assert!(m.contains("authorization id"), "{m}");
    }

    #[test]
    fn plain_malformed_messages_fail_cleanly() {
        for token in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0alice\0pw\0extra",
            b"\0\0pw",
            b"\0alice\0",
            b"\0\xff\xfe\0pw",
        ] {
            failed_message(step(token));
        }
        let big = vec![b'a'; MAX_MESSAGE + 1];
        assert!(failed_message(step(&big)).contains("too long"));
        let mut e = PlainExchange::new(users());
        assert!(matches!(
            e.step(b"\0alice\0alice-secret"),
            SaslStep::Done { .. }
        ));
        failed_message(e.step(b"\0alice\0alice-secret"));
    }

    #[test]
    fn plain_users_file_parses_and_names_bad_lines() {
        let path = Path::new("/etc/floe/users");
        let users = parse_users_file("# users\n\n alice:se:cret \r\nbob:pw\n", path).unwrap();
        assert_eq!(
            users,
            [
                ("alice".into(), "se:cret".into()),
                ("bob".into(), "pw".into())
            ]
        );
        let err = parse_users_file("alice:pw\nbob-secret\n", path).unwrap_err();
        assert!(err.contains("/etc/floe/users line 2"), "{err}");
        assert!(!err.contains("bob-secret"), "{err}");
        assert!(
            parse_users_file(":pw\n", path)
                .unwrap_err()
                .contains("line 1")
        );
        assert!(parse_users_file("a:\n", path).is_err());
        assert!(
            parse_users_file("a:1\na:2\n", path)
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn plain_users_come_from_config_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, "carol:carol-pw\n").unwrap();
        let mut config = Config {
            sasl_plain_users_file: Some(file.clone()),
            ..Config::default()
        };
        config
            .sasl_plain_users
            .insert("alice".into(), "alice-pw".into());
        let users = Arc::new(PlainUsers::from_config(&config).unwrap());
        assert!(matches!(
            PlainExchange::new(users.clone()).step(b"\0carol\0carol-pw"),
            SaslStep::Done { .. }
        ));
        assert!(matches!(
            PlainExchange::new(users).step(b"\0alice\0alice-pw"),
            SaslStep::Done { .. }
        ));

        std::fs::write(&file, "alice:other\n").unwrap();
        assert!(PlainUsers::from_config(&config).is_err());
        config.sasl_plain_users_file = Some(dir.path().join("missing"));
        let err = PlainUsers::from_config(&config).err().unwrap();
        assert!(err.contains("missing"), "{err}");
    }
}
