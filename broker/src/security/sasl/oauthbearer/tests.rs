//! OAUTHBEARER with a key set and tokens made here (an EC P-256 key of aws-lc-rs).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;

/// "Now" in these tests: 2024-01-01T00:00:00Z.
const NOW_MS: i64 = 1_704_067_200_000;
const NOW: i64 = NOW_MS / 1000;

fn now() -> i64 {
    NOW_MS
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Issuer {
    key: EcdsaKeyPair,
    jwks: Jwks,
}

impl Issuer {
    fn new() -> Issuer {
        let key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = key.public_key().as_ref();
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        }]});
        let jwks = Jwks::parse(jwks.to_string().as_bytes()).unwrap();
        Issuer { key, jwks }
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", b64(sig.as_ref()))
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(&json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}), claims)
    }

    fn validator(&self) -> TokenValidator {
        TokenValidator::new(
            self.jwks.clone(),
            "https://idp.example",
            "kafka, other",
            "sub",
            30,
        )
    }
}

fn claims() -> Value {
    json!({
        "iss": "https://idp.example",
        "aud": ["kafka"],
        "sub": "alice",
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "scope": "produce",
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

fn message(token: &str) -> Vec<u8> {
    format!("n,,\u{1}host=broker\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
}

fn exchange(issuer: &Issuer) -> OAuthBearerExchange {
    OAuthBearerExchange::new(Arc::new(issuer.validator()), now)
}

/// The refusal of a token: the error challenge, then the failure after ^A; the reason.
fn refused(issuer: &Issuer, message: &[u8]) -> String {
    let mut e = exchange(issuer);
    assert_eq!(
        e.step(message),
        SaslStep::Challenge(INVALID_TOKEN.as_bytes().to_vec())
    );
    match e.step(b"\x01") {
        SaslStep::Failed { message, detail } => {
            assert_eq!(message, INVALID_TOKEN);
            detail
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn oauthbearer_valid_token_authenticates() {
    let issuer = Issuer::new();
    let token = issuer.token(&claims());
    assert_eq!(
        exchange(&issuer).step(&message(&token)),
        SaslStep::Done {
            principal: Principal::user("alice"),
            response: vec![],
            expires_at_ms: Some((NOW + 3600) * 1000),
        }
    );
    // An authorization id equal to the principal, no extensions, a string audience, a
    // token without kid (the key set has one key).
    let token = issuer.sign(
        &json!({"alg": "ES256"}),
        &with(claims(), "aud", json!("other")),
    );
    let msg = format!("n,a=alice,\u{1}auth=Bearer {token}\u{1}\u{1}");
    assert!(matches!(
        exchange(&issuer).step(msg.as_bytes()),
        SaslStep::Done { .. }
    ));
    // Another principal claim.
    let validator = TokenValidator::new(issuer.jwks.clone(), "", "", "client_id", 0);
    let token = issuer.token(&with(claims(), "client_id", json!(" svc ")));
    assert_eq!(validator.validate(&token, NOW_MS).unwrap().principal, "svc");
}

#[test]
fn oauthbearer_expired_token_is_refused() {
    let issuer = Issuer::new();
    let token = issuer.token(&with(claims(), "exp", json!(NOW - 60)));
    let detail = refused(&issuer, &message(&token));
    assert!(detail.contains("expired"), "{detail}");
    // Within the clock skew it still passes.
    let token = issuer.token(&with(claims(), "exp", json!(NOW - 10)));
    assert!(matches!(
        exchange(&issuer).step(&message(&token)),
        SaslStep::Done { .. }
    ));
    // exp and iat are required; nbf and iat may not be in the future.
    for (claim, value, why) in [
        ("exp", Value::Null, "exp"),
        ("iat", Value::Null, "iat"),
        ("exp", json!("tomorrow"), "exp"),
        ("nbf", json!(NOW + 120), "not valid before"),
        ("iat", json!(NOW + 120), "future"),
    ] {
        let token = issuer.token(&with(claims(), claim, value));
        let detail = refused(&issuer, &message(&token));
        assert!(detail.contains(why), "{claim}: {detail}");
    }
}

#[test]
fn oauthbearer_wrong_audience_or_issuer_is_refused() {
    let issuer = Issuer::new();
    for (claim, value) in [
        ("aud", json!(["somebody-else"])),
        ("aud", json!("somebody-else")),
        ("aud", Value::Null),
        ("iss", json!("https://evil.example")),
        ("iss", Value::Null),
        ("sub", Value::Null),
        ("sub", json!("  ")),
        ("sub", json!(42)),
    ] {
        let token = issuer.token(&with(claims(), claim, value.clone()));
        let detail = refused(&issuer, &message(&token));
        assert!(detail.contains(claim), "{claim}={value}: {detail}");
    }
    // Without expected audience and issuer, any will do.
    let validator = TokenValidator::new(issuer.jwks.clone(), "", "", "", 30);
    let token = issuer.token(&with(claims(), "aud", json!("somebody-else")));
    assert!(validator.validate(&token, NOW_MS).is_ok());
}

#[test]
fn oauthbearer_bad_signature_is_refused() {
    let issuer = Issuer::new();
    let token = issuer.token(&claims());
    // Claims changed after signing.
    let (head, rest) = token.split_once('.').unwrap();
    let sig = rest.split_once('.').unwrap().1;
    let forged = with(claims(), "sub", json!("admin"));
    let forged = format!("{head}.{}.{sig}", b64(forged.to_string().as_bytes()));
    assert!(refused(&issuer, &message(&forged)).contains("signature"));
    // Signed by another key.
    let other = Issuer::new();
    let token = other.token(&claims());
    assert!(refused(&issuer, &message(&token)).contains("signature"));
    // A kid the key set does not have; an algorithm the key is not for.
    let token = issuer.sign(&json!({"alg": "ES256", "kid": "k2"}), &claims());
    assert!(refused(&issuer, &message(&token)).contains("kid"));
    let token = issuer.sign(&json!({"alg": "ES384", "kid": "k1"}), &claims());
    assert!(refused(&issuer, &message(&token)).contains("ES384"));
}

#[test]
fn oauthbearer_alg_none_and_hmac_are_refused() {
    let issuer = Issuer::new();
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none"}).to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let detail = refused(&issuer, &message(&unsigned));
    assert!(detail.contains("none"), "{detail}");
    let hs = issuer.sign(&json!({"alg": "HS256", "kid": "k1"}), &claims());
    assert!(refused(&issuer, &message(&hs)).contains("HS256"));
    let crit = issuer.sign(&json!({"alg": "ES256", "crit": ["exp"]}), &claims());
    assert!(refused(&issuer, &message(&crit)).contains("crit"));
}

#[test]
fn oauthbearer_malformed_tokens_and_messages_fail_cleanly() {
    let issuer = Issuer::new();
    for token in [
        "abc",
        "a.b",
        "a.b.c.d",
        "AA.e30.AA",
        "e30.e30.AA",
        "W10.e30.AA",
        "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.AA",
    ] {
        refused(&issuer, &message(token));
    }
    let token = issuer.token(&claims());
    for msg in [
        String::new(),
        "n,,".to_string(),
        format!("y,,\u{1}auth=Bearer {token}\u{1}\u{1}"),
        format!("n,,\u{1}auth=Bearer {token}\u{1}"),
        format!("n,,auth=Bearer {token}\u{1}\u{1}"),
        format!("n,,\u{1}auth=Basic {token}\u{1}\u{1}"),
        "n,,\u{1}auth=Bearer\u{1}\u{1}".to_string(),
        format!("n,,\u{1}auth=Bearer {token}\u{1}auth=Bearer x\u{1}\u{1}"),
        "n,,\u{1}host=b\u{1}\u{1}".to_string(),
        format!("n,,\u{1}1x=b\u{1}auth=Bearer {token}\u{1}\u{1}"),
        format!("n,,\u{1}auth=Bearer {token}!\u{1}\u{1}"),
        format!("n,a=,\u{1}auth=Bearer {token}\u{1}\u{1}"),
        format!("n,a=x=y,\u{1}auth=Bearer {token}\u{1}\u{1}"),
        "n,,\u{1}\u{1}".to_string(),
    ] {
        match exchange(&issuer).step(msg.as_bytes()) {
            SaslStep::Failed { message, .. } => assert_eq!(message, MALFORMED, "{msg:?}"),
            other => panic!("{msg:?}: {other:?}"),
        }
    }
    assert!(matches!(
        exchange(&issuer).step(b"\xff\xfe"),
        SaslStep::Failed { .. }
    ));
    // A different authorization id than the token's principal.
    let msg = format!("n,a=bob,\u{1}auth=Bearer {token}\u{1}\u{1}");
    match exchange(&issuer).step(msg.as_bytes()) {
        SaslStep::Failed { message, .. } => assert!(message.contains("authorization id")),
        other => panic!("{other:?}"),
    }
    // After the error challenge, anything but ^A still ends the exchange.
    let mut e = exchange(&issuer);
    assert!(matches!(e.step(&message("a.b.c")), SaslStep::Challenge(_)));
    assert!(matches!(e.step(&message(&token)), SaslStep::Failed { .. }));
    assert!(matches!(e.step(&message(&token)), SaslStep::Failed { .. }));
}

#[test]
fn oauthbearer_server_from_config() {
    let issuer = Issuer::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let point = issuer.key.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
    std::fs::write(&path, jwks.to_string()).unwrap();
    let config = Config {
        sasl_enabled_mechanisms: "OAUTHBEARER".into(),
        sasl_oauthbearer_jwks_endpoint_url: Some(format!("file://{}", path.display())),
        sasl_oauthbearer_expected_audience: "kafka".into(),
        ..Config::default()
    };
    let server = super::super::SaslServer::new(&config, &Default::default()).unwrap();
    assert_eq!(server.mechanisms(), ["OAUTHBEARER"]);
    let claims = with(claims(), "exp", json!(i64::MAX / 2000));
    let claims = with(claims, "iat", json!(1_000));
    let token = issuer.token(&claims);
    let mut e = server.start("OAUTHBEARER").unwrap();
    match e.step(&message(&token)) {
        SaslStep::Done {
            principal,
            expires_at_ms,
            ..
        } => {
            assert_eq!(principal, Principal::user("alice"));
            assert_eq!(expires_at_ms, Some(i64::MAX / 2000 * 1000));
        }
        other => panic!("{other:?}"),
    }
}
