//! SCRAM exchanges driven by a small client written here, RFC 7677's test vector, and
//! malformed and hostile messages.

use super::*;

/// The client side of SCRAM, just enough to drive the server.
struct Client {
    mechanism: ScramMechanism,
    password: String,
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
    auth_message: String,
    salted: Vec<u8>,
}

impl Client {
    fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Client {
        Client::with(mechanism, user, password, "n,,", "fyko+d2lbbFgONRv9qkxdawL")
    }

    fn with(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        gs2_header: &str,
        nonce: &str,
    ) -> Client {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        Client {
            mechanism,
            password: password.to_string(),
            gs2_header: gs2_header.to_string(),
            client_first_bare: format!("n={name},r={nonce}"),
            client_nonce: nonce.to_string(),
            auth_message: String::new(),
            salted: Vec::new(),
        }
    }

    fn first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes()
    }

    /// Client-final for `server_first`, with `nonce` if given instead of the server's.
    fn finish(&mut self, server_first: &[u8], nonce: Option<&str>) -> Vec<u8> {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let mut parts = server_first.split(',');
        let r = parts.next().unwrap().strip_prefix("r=").unwrap();
        let s = parts.next().unwrap().strip_prefix("s=").unwrap();
        let i: u32 = parts
            .next()
            .unwrap()
            .strip_prefix("i=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(r.starts_with(&self.client_nonce) && r.len() > self.client_nonce.len());
        let salt = BASE64.decode(s).unwrap();
        self.salted = salted_password(
            self.mechanism,
            &self.password,
            &salt,
            NonZeroU32::new(i).unwrap(),
        );
        let without_proof = format!(
            "c={},r={}",
            BASE64.encode(&self.gs2_header),
            nonce.unwrap_or(r)
        );
        self.auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let m = self.mechanism;
        let client_key = m.hmac_sign(&self.salted, b"Client Key");
        let signature = m.hmac_sign(&m.hash(&client_key), self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes()
    }

    fn server_final_ok(&self, server_final: &[u8]) -> bool {
        let server_key = self.mechanism.hmac_sign(&self.salted, b"Server Key");
        let expected = self
            .mechanism
            .hmac_sign(&server_key, self.auth_message.as_bytes());
        server_final == format!("v={}", BASE64.encode(expected)).as_bytes()
    }
}

fn store(users: &[(&str, &str)]) -> Arc<ScramStore> {
    Arc::new(ScramStore::new(test_credentials(users)).unwrap())
}

fn challenge(step: SaslStep) -> Vec<u8> {
    match step {
        SaslStep::Challenge(c) => c,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

fn failure(step: SaslStep) -> (String, String) {
    match step {
        SaslStep::Failed { message, detail } => (message, detail),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A whole exchange; the server's last answer.
fn exchange(m: ScramMechanism, store: &Arc<ScramStore>, client: &mut Client) -> SaslStep {
    let mut server = ScramExchange::new(m, store.clone());
    let server_first = challenge(server.step(&client.first()));
    let fin = client.finish(&server_first, None);
    server.step(&fin)
}

#[test]
fn scram_rfc7677_test_vector() {
    // RFC 7677 section 3: user "user", password "pencil".
    let m = ScramMechanism::Sha256;
    let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let salted = salted_password(m, "pencil", &salt, NonZeroU32::new(4096).unwrap());
    let record = scram_credential("SCRAM-SHA-256", &salted, &salt, 4096).unwrap();
    let mut creds = ScramCredentials::new();
    creds
        .entry("user".into())
        .or_default()
        .insert("SCRAM-SHA-256".into(), record);
    let store = Arc::new(ScramStore::new(creds).unwrap());

    let mut server = ScramExchange::new(m, store);
    server.fixed_nonce = Some("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
    let server_first = challenge(server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
    assert_eq!(
        std::str::from_utf8(&server_first).unwrap(),
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let done = server.step(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
          p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    );
    assert_eq!(
        done,
        SaslStep::Done {
            principal: Principal::user("user"),
            response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            expires_at_ms: None,
        }
    );
}

#[test]
fn scram_full_exchange_both_mechanisms() {
    let store = store(&[("alice", "alice-secret"), ("we,i=rd", "pw")]);
    for m in ScramMechanism::ALL {
        let mut client = Client::new(m, "alice", "alice-secret");
        match exchange(m, &store, &mut client) {
            SaslStep::Done {
                principal,
                response,
                expires_at_ms,
            } => {
                assert_eq!(principal, Principal::user("alice"));
                assert!(client.server_final_ok(&response), "{m:?}");
                assert_eq!(expires_at_ms, None);
            }
            other => panic!("{m:?}: {other:?}"),
        }
        // An escaped user name, and an authorization id equal to the user.
        let mut client = Client::with(m, "we,i=rd", "pw", "n,a=we=2Ci=3Drd,", "abc");
        let SaslStep::Done { principal, .. } = exchange(m, &store, &mut client) else {
            panic!("{m:?}: escaped name");
        };
        assert_eq!(principal.name, "we,i=rd");
    }
}

#[test]
fn scram_wrong_password_and_unknown_user_fail_alike() {
    let store = store(&[("alice", "alice-secret")]);
    for m in ScramMechanism::ALL {
        let mut wrong = Client::new(m, "alice", "guess");
        let (m1, d1) = failure(exchange(m, &store, &mut wrong));
        let mut unknown = Client::new(m, "mallory", "guess");
        let (m2, d2) = failure(exchange(m, &store, &mut unknown));
        assert_eq!(m1, m2);
        assert!(m1.contains("invalid credentials"), "{m1}");
        assert!(d1.contains("wrong password"), "{d1}");
        assert!(d2.contains("no credential"), "{d2}");
    }
    // The fabricated salt of an unknown user is the same on every attempt.
    let m = ScramMechanism::Sha512;
    let first = |nonce: &str| {
        let client = Client::with(m, "mallory", "x", "n,,", nonce);
        let c = challenge(ScramExchange::new(m, store.clone()).step(&client.first()));
        String::from_utf8(c)
            .unwrap()
            .split(',')
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(first("one"), first("two"));
}

#[test]
fn scram_credential_of_other_mechanism_does_not_authenticate() {
    let mut creds = test_credentials(&[("alice", "pw")]);
    creds.get_mut("alice").unwrap().remove("SCRAM-SHA-512");
    let store = Arc::new(ScramStore::new(creds).unwrap());
    let m = ScramMechanism::Sha512;
    failure(exchange(m, &store, &mut Client::new(m, "alice", "pw")));
}

#[test]
fn scram_nonce_mismatch_fails() {
    let store = store(&[("alice", "pw")]);
    let m = ScramMechanism::Sha256;
    let mut client = Client::new(m, "alice", "pw");
    let mut server = ScramExchange::new(m, store.clone());
    let server_first = challenge(server.step(&client.first()));
    let fin = client.finish(&server_first, Some("fyko+d2lbbFgONRv9qkxdawLforged"));
    let (_, detail) = failure(server.step(&fin));
    assert!(detail.contains("nonce"), "{detail}");

    // Only the client's part of the nonce is not enough either.
    let mut server = ScramExchange::new(m, store);
    let server_first = challenge(server.step(&client.first()));
    let fin = client.finish(&server_first, Some("fyko+d2lbbFgONRv9qkxdawL"));
    failure(server.step(&fin));
}

#[test]
fn scram_nonce_with_the_client_part_repeated_in_front_authenticates() {
    // librdkafka before 2.1 sends `r=<client nonce><server-first nonce>`; Kafka accepts
    // any nonce that ends with the server's, and the proof covers what was sent.
    let store = store(&[("alice", "pw")]);
    let m = ScramMechanism::Sha256;
    let mut client = Client::new(m, "alice", "pw");
    let mut server = ScramExchange::new(m, store);
    let server_first = challenge(server.step(&client.first()));
    let r = std::str::from_utf8(&server_first)
        .unwrap()
        .split(',')
        .find_map(|a| a.strip_prefix("r="))
        .unwrap()
        .to_string();
    let doubled = format!("{}{r}", client.client_nonce);
    let fin = client.finish(&server_first, Some(&doubled));
    assert!(matches!(server.step(&fin), SaslStep::Done { .. }));
}

#[test]
fn scram_channel_binding_must_repeat_the_gs2_header() {
    let store = store(&[("alice", "pw")]);
    let m = ScramMechanism::Sha256;
    let client = Client::new(m, "alice", "pw");
    let mut server = ScramExchange::new(m, store);
    let server_first = challenge(server.step(&client.first()));
    // A client that says `n,,` first and then `n,a=alice,` in c=.
    let mut other = Client::with(m, "alice", "pw", "n,a=alice,", "fyko+d2lbbFgONRv9qkxdawL");
    let fin = other.finish(&server_first, None);
    let (_, detail) = failure(server.step(&fin));
    assert!(detail.contains("channel binding"), "{detail}");
}

#[test]
fn scram_refuses_channel_binding_tokens_authzid_and_extensions() {
    let store = store(&[("alice", "pw")]);
    let m = ScramMechanism::Sha256;
    let fails = |msg: &[u8]| failure(ScramExchange::new(m, store.clone()).step(msg));
    let (_, d) = fails(b"p=tls-unique,,n=alice,r=abc");
    assert!(d.contains("channel binding"), "{d}");
    let (_, d) = fails(b"n,,n=alice,r=abc,tokenauth=true");
    assert!(d.contains("tokenauth"), "{d}");
    let (_, d) = fails(b"n,,m=ext,n=alice,r=abc");
    assert!(d.contains("m="), "{d}");
    let (msg, _) = fails(b"n,a=bob,n=alice,r=abc");
    assert!(msg.contains("authorization id"), "{msg}");
    // Unknown optional extensions are ignored, as Kafka does; `y` (client could bind but
    // the server does not offer it) is accepted.
    challenge(ScramExchange::new(m, store.clone()).step(b"n,,n=alice,r=abc,tokenauth=false,ext=1"));
    challenge(ScramExchange::new(m, store.clone()).step(b"y,,n=alice,r=abc"));
}

#[test]
fn scram_malformed_messages_fail_cleanly() {
    let store = store(&[("alice", "pw")]);
    let m = ScramMechanism::Sha512;
    let long = vec![b'a'; MAX_MESSAGE + 1];
    for first in [
        &b""[..],
        b"n",
        b"n,",
        b"n,,",
        b"x,,n=alice,r=abc",
        b"n,,n=,r=abc",
        b"n,,n=al=ice,r=abc",
        b"n,,n=alice",
        b"n,,n=alice,r=",
        b"n,,n=alice,r=a\x7fb",
        b"n,,r=abc,n=alice",
        b"n,b=x,n=alice,r=abc",
        b"n,,n=alice,r=abc,=x",
        b"n,,n=alice,r=abc,1=x",
        b"n,,n=alice,r=abc,k=",
        b"n,,n=\xff,r=abc",
        &long,
    ] {
        let (message, _) = failure(ScramExchange::new(m, store.clone()).step(first));
        assert!(message.contains("invalid credentials"), "{message}");
    }

    let client = Client::new(m, "alice", "pw");
    let good_first = client.first();
    let mut real = Client::new(m, "alice", "pw");
    let mut server = ScramExchange::new(m, store.clone());
    let server_first = challenge(server.step(&good_first));
    let good_final = String::from_utf8(real.finish(&server_first, None)).unwrap();
    let nonce = std::str::from_utf8(&server_first)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let proof = good_final.rsplit_once(",p=").unwrap().1.to_string();
    for fin in [
        String::new(),
        "c=biws".to_string(),
        format!("c=biws,{nonce}"),
        format!("c=biws,{nonce},p="),
        format!("c=biws,{nonce},p=AAAA"),
        format!("c=biws,{nonce},p={proof},x=1"),
        format!("c=bi!s,{nonce},p={proof}"),
        format!("{nonce},c=biws,p={proof}"),
        format!("c=biws,{nonce},p={}", &proof[1..]),
        format!("c=biws,{nonce},p=={}", &proof[1..]),
        format!("c={},{nonce},p={proof}", "A".repeat(4096)),
    ] {
        let mut server = ScramExchange::new(m, store.clone());
        challenge(server.step(&good_first));
        let (message, detail) = failure(server.step(fin.as_bytes()));
        assert!(message.contains("invalid credentials"), "{fin}: {message}");
        assert!(!detail.is_empty());
    }

    // A finished exchange answers anything with a failure.
    let mut client = Client::new(m, "alice", "pw");
    let mut server = ScramExchange::new(m, store);
    let server_first = challenge(server.step(&client.first()));
    let fin = client.finish(&server_first, None);
    assert!(matches!(server.step(&fin), SaslStep::Done { .. }));
    failure(server.step(&fin));
}

#[test]
fn scram_stored_credential_checks() {
    // Too few iterations in the store (written by something else): refused.
    let mut creds = test_credentials(&[("alice", "pw")]);
    let record = creds
        .get_mut("alice")
        .unwrap()
        .get_mut("SCRAM-SHA-256")
        .unwrap();
    record.iterations = 1000;
    let store = Arc::new(ScramStore::new(creds.clone()).unwrap());
    let m = ScramMechanism::Sha256;
    let (_, d) = failure(ScramExchange::new(m, store).step(&Client::new(m, "alice", "pw").first()));
    assert!(d.contains("iterations"), "{d}");
    // Unreadable stored keys: a clean failure.
    let record = creds
        .get_mut("alice")
        .unwrap()
        .get_mut("SCRAM-SHA-256")
        .unwrap();
    record.iterations = 4096;
    record.stored_key = "not base64!".into();
    let store = Arc::new(ScramStore::new(creds).unwrap());
    failure(ScramExchange::new(m, store).step(&Client::new(m, "alice", "pw").first()));
}

#[test]
fn scram_credentials_are_validated() {
    let salt = [7u8; 16];
    let salted = [9u8; 32];
    assert!(scram_credential("SCRAM-SHA-256", &salted, &salt, 4096).is_ok());
    assert!(scram_credential("SCRAM-SHA-512", &salted, &salt, MAX_ITERATIONS).is_ok());
    assert!(scram_credential("SCRAM-SHA-1", &salted, &salt, 4096).is_err());
    assert!(scram_credential("SCRAM-SHA-256", &salted, &salt, 4095).is_err());
    assert!(scram_credential("SCRAM-SHA-256", &salted, &salt, MAX_ITERATIONS + 1).is_err());
    assert!(scram_credential("SCRAM-SHA-256", &salted, &[], 4096).is_err());
    assert!(scram_credential("SCRAM-SHA-256", &[], &salt, 4096).is_err());
    assert!(scram_credential_from_password("SCRAM-SHA-256", "pw", 0).is_err());
    let a = scram_credential_from_password("SCRAM-SHA-512", "pw", 4096).unwrap();
    let b = scram_credential_from_password("SCRAM-SHA-512", "pw", 4096).unwrap();
    assert_ne!(a.salt, b.salt);
    assert_eq!(BASE64.decode(&a.salt).unwrap().len(), 32);
    assert_eq!(BASE64.decode(&a.stored_key).unwrap().len(), 64);
    assert_eq!(ScramMechanism::from_type(1), Some(ScramMechanism::Sha256));
    assert_eq!(ScramMechanism::from_type(2), Some(ScramMechanism::Sha512));
    assert_eq!(ScramMechanism::from_type(0), None);
}
