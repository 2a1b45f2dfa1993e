//! SASL/OAUTHBEARER (RFC 7628) with JWT access tokens checked as Kafka's
//! `OAuthBearerValidatorCallbackHandler` checks them: a JWS signed with a key of the
//! configured JSON Web Key Set ([`super::jwks`]), `exp` required and in the future, `iat`
//! required, `nbf` and `iat` not in the future (each with
//! `sasl_oauthbearer_clock_skew_seconds` of slack), `iss` and `aud` as configured, and the
//! principal from the `sasl_oauthbearer_sub_claim_name` claim.
//!
//! The client's message is `n,[a=authzid],^Aauth=Bearer <jwt>^A[key=value^A]*^A`. A token
//! that does not validate is answered, as Kafka and the RFC do, with a challenge carrying
//! `{"status":"invalid_token"}`; the client acknowledges it with a single `^A` and the
//! exchange then fails.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::jwks::{Jwks, JwsAlgorithm, decode_segment};
use super::{SaslExchange, SaslStep, decode_sasl_name};
use crate::config::Config;
use crate::security::Principal;

/// The mechanism's name.
pub const MECHANISM: &str = "OAUTHBEARER";

/// What the client is told about a token that does not validate (RFC 7628 3.2.2).
pub const INVALID_TOKEN: &str = "{\"status\":\"invalid_token\"}";

const MALFORMED: &str = "Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER";

/// The checks a token must pass.
pub struct TokenValidator {
    jwks: Jwks,
    expected_issuer: Option<String>,
    expected_audiences: Vec<String>,
    sub_claim: String,
    clock_skew_ms: i64,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// The principal name (the sub claim, trimmed).
    pub principal: String,
    /// `exp`, in ms since the epoch.
    pub expires_at_ms: i64,
}

impl TokenValidator {
    /// The validator `config` describes; reads the key set.
    pub fn from_config(config: &Config) -> Result<TokenValidator, String> {
        let location = config
            .sasl_oauthbearer_jwks_endpoint_url
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .ok_or(
                "OAUTHBEARER is enabled but sasl_oauthbearer_jwks_endpoint_url names no key set \
                 (a file:// URL or a path to a JWKS file)",
            )?;
        let jwks = Jwks::load(location)?;
        Ok(TokenValidator::new(
            jwks,
            &config.sasl_oauthbearer_expected_issuer,
            &config.sasl_oauthbearer_expected_audience,
            &config.sasl_oauthbearer_sub_claim_name,
            config.sasl_oauthbearer_clock_skew_seconds,
        ))
    }

    /// A validator over `jwks`. `issuer` empty: any; `audiences` (comma-separated) empty:
    /// any; `sub_claim` empty: `sub`.
    pub fn new(
        jwks: Jwks,
        issuer: &str,
        audiences: &str,
        sub_claim: &str,
        clock_skew_seconds: i64,
    ) -> TokenValidator {
        let issuer = issuer.trim();
        let sub_claim = sub_claim.trim();
        TokenValidator {
            jwks,
            expected_issuer: (!issuer.is_empty()).then(|| issuer.to_string()),
            expected_audiences: audiences
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
            sub_claim: if sub_claim.is_empty() {
                "sub"
            } else {
                sub_claim
            }
            .to_string(),
            clock_skew_ms: clock_skew_seconds.clamp(0, i64::MAX / 1000) * 1000,
        }
    }

    /// Checks `token` (a compact JWS) at `now_ms`; `Err` says why it is not valid.
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, String> {
        let token = token.trim();
        let mut sections = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) = (
            sections.next(),
            sections.next(),
            sections.next(),
            sections.next(),
        ) else {
            return Err("not a JWS: expected three sections (header, payload, signature)".into());
        };
        let header = json_object(header, "header")?;
        let alg = match header.get("alg") {
            Some(Value::String(a)) => a.as_str(),
            _ => return Err("the header has no \"alg\"".into()),
        };
        let Some(alg) = JwsAlgorithm::from_name(alg) else {
            return Err(format!("algorithm {alg:?} is not accepted"));
        };
        if header.contains_key("crit") {
            return Err(
                "the header has critical extensions (crit), which are not supported".into(),
            );
        }
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err("\"kid\" is not a string".into()),
        };
        let signature = decode_segment(sig).map_err(|_| "the signature is not base64url")?;
        let signed = &token[..header_and_payload_len(token)];
        self.jwks.verify(alg, kid, signed.as_bytes(), &signature)?;

        let claims = json_object(payload, "payload")?;
        let skew = self.clock_skew_ms;
        let exp = time_claim(&claims, "exp")?.ok_or("the token has no \"exp\"")?;
        if exp.saturating_add(skew) <= now_ms {
            return Err(format!("the token expired at {exp} ms (now {now_ms} ms)"));
        }
        if let Some(nbf) = time_claim(&claims, "nbf")?
            && nbf.saturating_sub(skew) > now_ms
        {
            return Err(format!(
                "the token is not valid before {nbf} ms (now {now_ms} ms)"
            ));
        }
        let iat = time_claim(&claims, "iat")?.ok_or("the token has no \"iat\"")?;
        if iat.saturating_sub(skew) > now_ms {
            return Err(format!(
                "the token was issued in the future ({iat} ms, now {now_ms} ms)"
            ));
        }
        if let Some(expected) = &self.expected_issuer {
            match claims.get("iss") {
                Some(Value::String(iss)) if iss == expected => {}
                Some(Value::String(iss)) => {
                    return Err(format!("issuer {iss:?} is not the expected {expected:?}"));
                }
                _ => return Err("the token has no \"iss\"".into()),
            }
        }
        if !self.expected_audiences.is_empty() {
            let audiences: Vec<&str> = match claims.get("aud") {
                Some(Value::String(a)) => vec![a.as_str()],
                Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
                _ => return Err("the token has no \"aud\"".into()),
            };
            if !audiences
                .iter()
                .any(|a| self.expected_audiences.iter().any(|e| e == a))
            {
                return Err(format!(
                    "audience {audiences:?} names none of {:?}",
                    self.expected_audiences
                ));
            }
        }
        let principal = match claims.get(&self.sub_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::String(_)) => {
                return Err(format!("the \"{}\" claim is empty", self.sub_claim));
            }
            Some(_) => return Err(format!("the \"{}\" claim is not a string", self.sub_claim)),
            None => return Err(format!("the token has no \"{}\" claim", self.sub_claim)),
        };
        Ok(ValidToken {
            principal,
            expires_at_ms: exp,
        })
    }
}

/// Length of `header.payload` in a token known to have two dots.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn json_object(segment: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = decode_segment(segment).map_err(|_| format!("the {what} is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("the {what} is not a JSON object")),
        Err(e) => Err(format!("the {what} is not JSON: {e}")),
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional) in ms.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Some(number) = value.as_number() else {
        return Err(format!("\"{name}\" is not a number"));
    };
    let ms = if let Some(secs) = number.as_i64() {
        secs.saturating_mul(1000)
    } else {
        // `as` saturates (and maps NaN to 0): fine for a clock check.
        (number.as_f64().unwrap_or(f64::MAX) * 1000.0) as i64
    };
    if ms < 0 {
        return Err(format!("\"{name}\" is negative"));
    }
    Ok(Some(ms))
}

/// The client's initial response: the authorization id (empty if not given) and the
/// bearer token.
fn parse_client_response(message: &[u8]) -> Result<(String, &str), String> {
    let message = std::str::from_utf8(message).map_err(|_| "not UTF-8")?;
    // gs2-header: "n," [ "a=" saslname ] ","
    let rest = message.strip_prefix("n,").ok_or("no gs2 header (n,)")?;
    let (authzid, rest) = rest.split_once(',').ok_or("no gs2 header")?;
    let authzid = match authzid {
        "" => String::new(),
        a => a
            .strip_prefix("a=")
            .and_then(decode_sasl_name)
            .filter(|a| !a.is_empty())
            .ok_or("malformed authorization id")?,
    };
    // ^A (key=value^A)* ^A
    let pairs = rest
        .strip_prefix('\u{1}')
        .and_then(|r| r.strip_suffix('\u{1}'))
        .ok_or("the key-value pairs are not framed by ^A")?;
    let mut auth = None;
    let mut seen: Vec<&str> = Vec::new();
    if !pairs.is_empty() {
        let pairs = pairs
            .strip_suffix('\u{1}')
            .ok_or("a key-value pair is not terminated by ^A")?;
        for pair in pairs.split('\u{1}') {
            let (key, value) = pair.split_once('=').ok_or("a key-value pair without =")?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err("a key that is not letters".into());
            }
            if value.is_empty()
                || !value.bytes().all(|b| {
                    (0x21..=0x7e).contains(&b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n')
                })
            {
                return Err(format!("the value of {key:?} has invalid characters"));
            }
            if seen.contains(&key) {
                return Err(format!("the key {key:?} appears twice"));
            }
            seen.push(key);
            if key == "auth" {
                auth = Some(value);
            }
        }
    }
    let auth = auth.ok_or("no auth")?;
    // auth = scheme 1*SP token; the scheme is "Bearer" in any case.
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or("auth is not \"Bearer <token>\"")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the auth scheme is not Bearer".into());
    }
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_~+/.".contains(&b))
    {
        return Err("the bearer token has invalid characters".into());
    }
    Ok((authzid, token))
}

/// Where an exchange is.
enum State {
    /// Waiting for the client's message.
    Initial,
    /// The token was refused and the error challenge sent; waiting for the client's ^A.
    ErrorSent(String),
    /// Done; any further message fails.
    Finished,
}

/// One OAUTHBEARER exchange.
pub struct OAuthBearerExchange {
    validator: Arc<TokenValidator>,
    now_ms: fn() -> i64,
    state: State,
}

impl OAuthBearerExchange {
    /// An exchange checking tokens with `validator`, at the times `now_ms` tells.
    pub fn new(validator: Arc<TokenValidator>, now_ms: fn() -> i64) -> OAuthBearerExchange {
        OAuthBearerExchange {
            validator,
            now_ms,
            state: State::Initial,
        }
    }
}

impl SaslExchange for OAuthBearerExchange {
    fn step(&mut self, token: &[u8]) -> SaslStep {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Initial => {}
            State::ErrorSent(reason) => {
                let detail = if token == [1] {
                    format!("OAUTHBEARER: invalid token: {reason}")
                } else {
                    format!(
                        "OAUTHBEARER: invalid token: {reason} (and the client did not acknowledge the error with ^A)"
                    )
                };
                return SaslStep::failed(INVALID_TOKEN, detail);
            }
            State::Finished => {
                return SaslStep::failed(
                    MALFORMED,
                    "OAUTHBEARER: a message after the exchange ended",
                );
            }
        }
        let (authzid, jwt) = match parse_client_response(token) {
            Ok(parsed) => parsed,
            Err(e) => {
                return SaslStep::failed(
                    MALFORMED,
                    format!("OAUTHBEARER: malformed client message: {e}"),
                );
            }
        };
        let valid = match self.validator.validate(jwt, (self.now_ms)()) {
            Ok(valid) => valid,
            Err(reason) => {
                self.state = State::ErrorSent(reason);
                return SaslStep::Challenge(INVALID_TOKEN.as_bytes().to_vec());
            }
        };
        if !authzid.is_empty() && authzid != valid.principal {
            return SaslStep::failed(
                format!(
                    "Authentication failed: Client requested an authorization id ({authzid}) that is different from the token's principal name ({})",
                    valid.principal
                ),
                format!(
                    "OAUTHBEARER: {} asked to act as {authzid:?}",
                    valid.principal
                ),
            );
        }
        SaslStep::Done {
            principal: Principal::user(valid.principal),
            response: Vec::new(),
            expires_at_ms: Some(valid.expires_at_ms),
        }
    }
}

#[cfg(test)]
mod tests;
