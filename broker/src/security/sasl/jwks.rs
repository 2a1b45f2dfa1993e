//! JSON Web Key Sets (RFC 7517) and JWS signature checks (RFC 7515, 7518, 8037): the keys
//! OAUTHBEARER tokens are verified with.
//!
//! Supported keys: RSA (`n`, `e`), EC on P-256, P-384 and P-521 (`x`, `y`), and OKP
//! Ed25519 (`x`); supported algorithms: RS256/384/512, PS256/384/512, ES256/384/512 and
//! EdDSA. `none` and the HMAC algorithms are never accepted (a key set holds public keys).
//! Verification is aws-lc-rs's.

use std::path::PathBuf;

use aws_lc_rs::signature::{self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use serde_json::Value;

/// Base64url that also takes padded values (some key sets pad their JWK members).
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A JWS signature algorithm this broker verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// ECDSA on P-521 with SHA-512.
    Es512,
    /// Ed25519.
    EdDsa,
}

impl JwsAlgorithm {
    const ALL: [JwsAlgorithm; 10] = [
        JwsAlgorithm::Rs256,
        JwsAlgorithm::Rs384,
        JwsAlgorithm::Rs512,
        JwsAlgorithm::Ps256,
        JwsAlgorithm::Ps384,
        JwsAlgorithm::Ps512,
        JwsAlgorithm::Es256,
        JwsAlgorithm::Es384,
        JwsAlgorithm::Es512,
        JwsAlgorithm::EdDsa,
    ];

    /// The algorithm with this JOSE name (`RS256`, ...); `None` for anything else,
    /// `none` included.
    pub fn from_name(name: &str) -> Option<JwsAlgorithm> {
        JwsAlgorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            JwsAlgorithm::Rs256 => "RS256",
            JwsAlgorithm::Rs384 => "RS384",
            JwsAlgorithm::Rs512 => "RS512",
            JwsAlgorithm::Ps256 => "PS256",
            JwsAlgorithm::Ps384 => "PS384",
            JwsAlgorithm::Ps512 => "PS512",
            JwsAlgorithm::Es256 => "ES256",
            JwsAlgorithm::Es384 => "ES384",
            JwsAlgorithm::Es512 => "ES512",
            JwsAlgorithm::EdDsa => "EdDSA",
        }
    }

    fn rsa(self) -> Option<&'static RsaParameters> {
        Some(match self {
            JwsAlgorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            JwsAlgorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            JwsAlgorithm::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            JwsAlgorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            JwsAlgorithm::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            JwsAlgorithm::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    fn curve(self) -> Option<Curve> {
        match self {
            JwsAlgorithm::Es256 => Some(Curve::P256),
            JwsAlgorithm::Es384 => Some(Curve::P384),
            JwsAlgorithm::Es512 => Some(Curve::P521),
            _ => None,
        }
    }
}

/// An elliptic curve of ECDSA keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_name(name: &str) -> Option<Curve> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            _ => None,
        }
    }

    /// Length of one coordinate.
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    fn verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
        }
    }
}

/// A public key's material.
#[derive(Debug, Clone)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point `0x04 || x || y`.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

/// One usable key of a set.
#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    /// The algorithm the key is restricted to (`alg` member), if any.
    alg: Option<String>,
    material: KeyMaterial,
}

impl Jwk {
    /// Whether the key can verify `alg` signatures.
    fn fits(&self, alg: JwsAlgorithm) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        match &self.material {
            KeyMaterial::Rsa { .. } => alg.rsa().is_some(),
            KeyMaterial::Ec { curve, .. } => alg.curve() == Some(*curve),
            KeyMaterial::Ed25519 { .. } => alg == JwsAlgorithm::EdDsa,
        }
    }

    fn verify(&self, alg: JwsAlgorithm, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Rsa { n, e } => alg.rsa().is_some_and(|params| {
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }),
            KeyMaterial::Ec { curve, point } => UnparsedPublicKey::new(curve.verification(), point)
                .verify(message, sig)
                .is_ok(),
            KeyMaterial::Ed25519 { x } => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

/// A JSON Web Key Set: the keys tokens may be signed with.
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// Reads the key set at `location`: a `file://` URL or a path (read at start;
    /// HTTP endpoints are not fetched).
    pub fn load(location: &str) -> Result<Jwks, String> {
        let path = if location.starts_with("file:") {
            url::Url::parse(location)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| format!("JWKS location {location:?} is not a file URL"))?
        } else if location.contains("://") {
            return Err(format!(
                "JWKS location {location:?}: only file:// URLs and paths are supported"
            ));
        } else {
            PathBuf::from(location)
        };
        let text = std::fs::read(&path)
            .map_err(|e| format!("JWKS {}: cannot be read: {e}", path.display()))?;
        Jwks::parse(&text).map_err(|e| format!("JWKS {}: {e}", path.display()))
    }

    /// Parses a key set (`{"keys": [...]}`). Keys of other types or curves, and keys
    /// marked for encryption (`"use": "enc"`), are skipped; a malformed key of a supported
    /// type is an error, and so is a set without a usable key.
    pub fn parse(json: &[u8]) -> Result<Jwks, String> {
        let value: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("no \"keys\" array")?;
        let mut out = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some(jwk) = parse_jwk(key).map_err(|e| format!("key {i}: {e}"))? {
                out.push(jwk);
            }
        }
        if out.is_empty() {
            return Err("no usable signing key (RSA, EC P-256/P-384/P-521, OKP Ed25519)".into());
        }
        Ok(Jwks { keys: out })
    }

    /// Checks the JWS signature `sig` over `message` (`header.payload`) made with `alg`:
    /// with the key named `kid`, or without a kid with any key that fits the algorithm.
    pub fn verify(
        &self,
        alg: JwsAlgorithm,
        kid: Option<&str>,
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), String> {
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .peekable();
        if candidates.peek().is_none() {
            return Err(format!(
                "no key with kid {:?} in the key set",
                kid.unwrap_or_default()
            ));
        }
        let mut fitting = candidates.filter(|k| k.fits(alg)).peekable();
        if fitting.peek().is_none() {
            return Err(format!("no key for algorithm {}", alg.name()));
        }
        if fitting.any(|k| k.verify(alg, message, sig)) {
            Ok(())
        } else {
            Err("the signature does not verify".into())
        }
    }
}

fn member<'a>(key: &'a Value, name: &str) -> Result<Option<&'a str>, String> {
    match key.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{name}\" is not a string")),
    }
}

fn bytes_member(key: &Value, name: &str) -> Result<Vec<u8>, String> {
    let s = member(key, name)?.ok_or_else(|| format!("no \"{name}\""))?;
    URL_SAFE_ANY_PAD
        .decode(s)
        .map_err(|_| format!("\"{name}\" is not base64url"))
}

fn parse_jwk(key: &Value) -> Result<Option<Jwk>, String> {
    if !key.is_object() {
        return Err("not an object".into());
    }
    if member(key, "use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let material = match member(key, "kty")? {
        Some("RSA") => KeyMaterial::Rsa {
            n: bytes_member(key, "n")?,
            e: bytes_member(key, "e")?,
        },
        Some("EC") => {
            let Some(curve) = member(key, "crv")?.and_then(Curve::from_name) else {
                return Ok(None);
            };
            let x = bytes_member(key, "x")?;
            let y = bytes_member(key, "y")?;
            let n = curve.coordinate_len();
            if x.len() != n || y.len() != n {
                return Err(format!("EC coordinates must be {n} bytes each"));
            }
            let mut point = Vec::with_capacity(1 + 2 * n);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            KeyMaterial::Ec { curve, point }
        }
        Some("OKP") => {
            if member(key, "crv")? != Some("Ed25519") {
                return Ok(None);
            }
            let x = bytes_member(key, "x")?;
            if x.len() != 32 {
                return Err("an Ed25519 key is 32 bytes".into());
            }
            KeyMaterial::Ed25519 { x }
        }
        Some(_) => return Ok(None),
        None => return Err("no \"kty\"".into()),
    };
    Ok(Some(Jwk {
        kid: member(key, "kid")?.map(str::to_string),
        alg: member(key, "alg")?.map(str::to_string),
        material,
    }))
}

/// Base64url without padding, as JWS compact serialization has it.
pub(crate) fn decode_segment(segment: &str) -> Result<Vec<u8>, ()> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn jwks_ec_and_ed25519_keys_verify() {
        let ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = ec.public_key().as_ref();
        let ed = Ed25519KeyPair::generate().unwrap();
        let json = format!(
            r#"{{"keys":[
                {{"kty":"EC","crv":"P-256","kid":"ec","x":"{}","y":"{}"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"{}"}},
                {{"kty":"oct","k":"c2VjcmV0"}},
                {{"kty":"EC","crv":"P-256","use":"enc","x":"","y":""}}
            ]}}"#,
            b64(&point[1..33]),
            b64(&point[33..]),
            b64(ed.public_key().as_ref())
        );
        let jwks = Jwks::parse(json.as_bytes()).unwrap();
        assert_eq!(jwks.keys.len(), 2);
        let msg = b"header.payload";
        let sig = ec.sign(&SystemRandom::new(), msg).unwrap();
        jwks.verify(JwsAlgorithm::Es256, Some("ec"), msg, sig.as_ref())
            .unwrap();
        jwks.verify(JwsAlgorithm::Es256, None, msg, sig.as_ref())
            .unwrap();
        assert!(
            jwks.verify(JwsAlgorithm::Es256, Some("ed"), msg, sig.as_ref())
                .is_err()
        );
        assert!(
            jwks.verify(JwsAlgorithm::Es256, Some("nope"), msg, sig.as_ref())
                .is_err()
        );
        assert!(
            jwks.verify(JwsAlgorithm::Es256, None, b"other", sig.as_ref())
                .is_err()
        );
        let sig = ed.sign(msg);
        jwks.verify(JwsAlgorithm::EdDsa, Some("ed"), msg, sig.as_ref())
            .unwrap();
        assert!(
            jwks.verify(JwsAlgorithm::EdDsa, None, msg, &sig.as_ref()[1..])
                .is_err()
        );
    }

    #[test]
    fn jwks_rsa_keys_verify() {
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let components: RsaPublicKeyComponents<Vec<u8>> = key.public_key().into();
        let json = format!(
            r#"{{"keys":[{{"kty":"RSA","alg":"RS256","n":"{}","e":"{}"}}]}}"#,
            b64(&components.n),
            b64(&components.e)
        );
        let jwks = Jwks::parse(json.as_bytes()).unwrap();
        let msg = b"header.payload";
        let mut sig = vec![0; key.public_modulus_len()];
        key.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            msg,
            &mut sig,
        )
        .unwrap();
        jwks.verify(JwsAlgorithm::Rs256, None, msg, &sig).unwrap();
        // The key is restricted to RS256.
        assert!(jwks.verify(JwsAlgorithm::Rs512, None, msg, &sig).is_err());
        sig[10] ^= 1;
        assert!(jwks.verify(JwsAlgorithm::Rs256, None, msg, &sig).is_err());
    }

    #[test]
    fn jwks_bad_sets_are_refused() {
        for json in [
            &b"not json"[..],
            b"{}",
            b"{\"keys\":{}}",
            b"{\"keys\":[]}",
            b"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\"}]}",
            b"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}",
            b"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
            b"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"!!\"}]}",
            b"{\"keys\":[{\"n\":\"AQAB\"}]}",
            b"{\"keys\":[1]}",
        ] {
            assert!(
                Jwks::parse(json).is_err(),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
        assert!(Jwks::load("https://idp.example/jwks").is_err());
        let err = Jwks::load("/nonexistent/jwks.json").unwrap_err();
        assert!(err.contains("/nonexistent/jwks.json"), "{err}");
        assert_eq!(JwsAlgorithm::from_name("none"), None);
        assert_eq!(JwsAlgorithm::from_name("HS256"), None);
        assert_eq!(JwsAlgorithm::from_name("ES256"), Some(JwsAlgorithm::Es256));
    }

    #[test]
    fn jwks_load_from_file_url_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let ed = Ed25519KeyPair::generate().unwrap();
        let path = dir.path().join("jwks.json");
        let json = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{}"}}]}}"#,
            b64(ed.public_key().as_ref())
        );
        std::fs::write(&path, json).unwrap();
        Jwks::load(path.to_str().unwrap()).unwrap();
        let url = url::Url::from_file_path(&path).unwrap();
        Jwks::load(url.as_str()).unwrap();
    }
}
