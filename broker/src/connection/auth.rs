//! SASL authentication of one connection, as Kafka's server authenticator does it: on a
//! SASL listener a client may send only ApiVersions, then SaslHandshake (which picks the
//! mechanism), then SaslAuthenticate rounds until the mechanism is done. Anything else
//! before that closes the connection. A failure is answered with
//! SASL_AUTHENTICATION_FAILED after `connection_failed_authentication_delay_ms`, then the
//! connection is closed.
//!
//! With `connections_max_reauth_ms` (or an OAUTHBEARER token that expires) the session has
//! a lifetime, told to SaslAuthenticate v1+ clients; they re-authenticate (KIP-368) with a
//! new SaslHandshake and SaslAuthenticate on the same connection, as the same principal. A
//! request other than those after the session ended closes the connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_protocol::request::RequestFrame;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::security::sasl::{SaslExchange, SaslStep};
use crate::security::{Principal, Session};
use crate::state::Broker;

/// What the connection does with a request.
pub enum Gate {
    /// Route it to its handler.
    Dispatch,
    /// It is a SASL step: give it to [`Authenticator::step`].
    Sasl,
    /// Close the connection, for this reason.
    Close(String),
}

/// The answer to a SASL step.
pub struct Answer {
    /// The response body.
    pub body: ResponseKind,
    /// Hold the response back this long (failed authentication).
    pub delay: Option<Duration>,
    /// Close the connection once the response is written.
    pub close: bool,
}

enum State {
    /// Not a SASL listener, or authenticated.
    Open,
    /// Waiting for SaslHandshake (first authentication, or a re-authentication).
    Handshake,
    /// Mechanism chosen; SaslAuthenticate rounds (or, after SaslHandshake v0, bare
    /// tokens) under way.
    Exchanging {
        mechanism: String,
        exchange: Box<dyn SaslExchange>,
        raw: bool,
    },
}

/// The answer to a bare SASL token (after SaslHandshake v0).
pub struct RawAnswer {
    /// The token to send back, if any.
    pub token: Option<Bytes>,
    /// Close the connection (after the token, if any).
    pub close: bool,
}

/// The authentication state of one connection.
pub struct Authenticator {
    broker: Arc<Broker>,
    state: State,
    /// Whether the connection has authenticated once (later handshakes re-authenticate).
    authenticated: bool,
    /// The mechanism of the current session (re-authentication must use the same one).
    mechanism: Option<String>,
    /// When the session ends (`None`: never).
    expires: Option<Instant>,
    session: Arc<Session>,
}

impl Authenticator {
    /// The authenticator of a new connection whose session (principal) is `session`.
    pub fn new(broker: Arc<Broker>, session: Session) -> Authenticator {
        let state = if session.protocol.uses_sasl() {
            State::Handshake
        } else {
            State::Open
        };
        Authenticator {
            broker,
            state,
            authenticated: false,
            mechanism: None,
            expires: None,
            session: Arc::new(session),
        }
    }

    /// The session requests run as.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Whether the first authentication is still to come: requests are bounded by
    /// `sasl_server_max_receive_size` until it is done.
    pub fn pending(&self) -> bool {
        !self.authenticated && self.session.protocol.uses_sasl()
    }

    /// What to do with a request for `api`.
    pub fn gate(&self, api: ApiKey) -> Gate {
        if !self.session.protocol.uses_sasl() {
            return Gate::Dispatch;
        }
        match (&self.state, api) {
            (State::Handshake, ApiKey::SaslHandshake) => Gate::Sasl,
            (State::Exchanging { raw: false, .. }, ApiKey::SaslAuthenticate) => Gate::Sasl,
            (State::Open, ApiKey::SaslHandshake) => Gate::Sasl,
            (_, ApiKey::ApiVersions) if !self.authenticated => Gate::Dispatch,
            _ if !self.authenticated => Gate::Close(format!(
                "{api:?} request before SASL authentication completed"
            )),
            // Re-authentication under way: requests keep running as the old session.
            _ if self.expired() => Gate::Close(
                "the SASL session expired and the client did not re-authenticate \
                 (connections_max_reauth_ms)"
                    .into(),
            ),
            _ => Gate::Dispatch,
        }
    }

    fn expired(&self) -> bool {
        self.expires.is_some_and(|e| Instant::now() >= e)
    }

    /// Handles SaslHandshake or SaslAuthenticate (after [`Authenticator::gate`] said
    /// [`Gate::Sasl`]); `Err` closes the connection without an answer (an undecodable
    /// request).
    pub fn step(&mut self, frame: &RequestFrame) -> Result<Answer, String> {
        let version = frame.api_version();
        let served = crate::handlers::supported(frame.api_key)
            .is_some_and(|a| (a.min..=a.max).contains(&version));
        if !served {
            // SaslHandshake v0 (raw tokens after it) is gone since Kafka 4.0 (KIP-896).
            return Err(format!("{:?} v{version} is not served", frame.api_key));
        }
        match frame.api_key {
            ApiKey::SaslHandshake => {
                let req: SaslHandshakeRequest = frame.decode_as().map_err(|e| e.to_string())?;
                Ok(self.handshake(&req.mechanism, version == 0))
            }
            _ => {
                let req: SaslAuthenticateRequest = frame.decode_as().map_err(|e| e.to_string())?;
                Ok(self.authenticate(frame.api_version(), &req.auth_bytes))
            }
        }
    }

    /// Whether the next frame is a bare SASL token (after SaslHandshake v0).
    pub fn raw_pending(&self) -> bool {
        matches!(self.state, State::Exchanging { raw: true, .. })
    }

    /// One bare SASL token after SaslHandshake v0, as Kafka's authenticator takes them: the
    /// answer is a bare token; a failure closes the connection without one.
    pub fn raw_token(&mut self, token: &[u8]) -> RawAnswer {
        let State::Exchanging {
            mechanism,
            exchange,
            ..
        } = &mut self.state
        else {
            return RawAnswer {
                token: None,
                close: true,
            };
        };
        let mechanism = mechanism.clone();
        match exchange.step(token) {
            SaslStep::Challenge(bytes) => RawAnswer {
                token: Some(Bytes::from(bytes)),
                close: false,
            },
            SaslStep::Failed { message, detail } => {
                self.fail(&mechanism, &message, &detail);
                RawAnswer {
                    token: None,
                    close: true,
                }
            }
            SaslStep::Done {
                principal,
                response,
                expires_at_ms,
            } => match self.complete(&mechanism, principal, expires_at_ms) {
                Ok(_) => RawAnswer {
                    token: Some(Bytes::from(response)),
                    close: false,
                },
                Err(_) => RawAnswer {
                    token: None,
                    close: true,
                },
            },
        }
    }

    fn handshake(&mut self, mechanism: &str, raw: bool) -> Answer {
        let sasl = &self.broker.security.sasl;
        let offered: Vec<StrBytes> = sasl
            .mechanisms()
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        let reply = |code: i16| {
            SaslHandshakeResponse::default()
                .with_error_code(code)
                .with_mechanisms(offered.clone())
        };
        if self.authenticated && self.mechanism.as_deref() != Some(mechanism) {
            tracing::info!(peer = %self.session.client_address, principal = %self.session.principal, "re-authentication with another mechanism ({mechanism}); closing");
            return Answer {
                body: ResponseKind::SaslHandshake(reply(ResponseError::IllegalSaslState.code())),
                delay: None,
                close: true,
            };
        }
        match sasl.start(mechanism) {
            Some(exchange) => {
                self.state = State::Exchanging {
                    mechanism: mechanism.to_string(),
                    exchange,
                    raw,
                };
                Answer {
                    body: ResponseKind::SaslHandshake(reply(0)),
                    delay: None,
                    close: false,
                }
            }
            None => {
                tracing::info!(
                    peer = %self.session.client_address,
                    listener = %self.session.listener,
                    "SASL handshake for mechanism {mechanism:?}, which is not enabled; closing"
                );
                Answer {
                    body: ResponseKind::SaslHandshake(reply(
                        ResponseError::UnsupportedSaslMechanism.code(),
                    )),
                    delay: None,
                    close: true,
                }
            }
        }
    }

    fn authenticate(&mut self, version: i16, token: &Bytes) -> Answer {
        let State::Exchanging {
            mechanism,
            exchange,
            ..
        } = &mut self.state
        else {
            // `gate` hands SaslAuthenticate over only while exchanging.
            return Answer {
                body: ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::IllegalSaslState.code()),
                ),
                delay: None,
                close: true,
            };
        };
        let mechanism = mechanism.clone();
        match exchange.step(token) {
            SaslStep::Challenge(bytes) => Answer {
                body: ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes)),
                ),
                delay: None,
                close: false,
            },
            SaslStep::Failed { message, detail } => self.fail(&mechanism, &message, &detail),
            SaslStep::Done {
                principal,
                response,
                expires_at_ms,
            } => match self.complete(&mechanism, principal, expires_at_ms) {
                Ok(lifetime) => {
                    let mut body =
                        SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(response));
                    if version >= 1 {
                        body.session_lifetime_ms = lifetime
                            .map(|l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX))
                            .unwrap_or(0);
                    }
                    Answer {
                        body: ResponseKind::SaslAuthenticate(body),
                        delay: None,
                        close: false,
                    }
                }
                Err(failed) => *failed,
            },
        }
    }

    /// The exchange authenticated `principal`: the session becomes theirs (a
    /// re-authentication must keep the principal). Returns the session's lifetime.
    fn complete(
        &mut self,
        mechanism: &str,
        principal: Principal,
        expires_at_ms: Option<i64>,
    ) -> Result<Option<Duration>, Box<Answer>> {
        if self.authenticated && principal != self.session.principal {
            let detail = format!(
                "re-authentication as {principal}, not {}",
                self.session.principal
            );
            return Err(Box::new(self.fail(
                mechanism,
                "Authentication failed: re-authentication must keep the principal",
                &detail,
            )));
        }
        let lifetime = self.lifetime(expires_at_ms);
        self.expires = lifetime.map(|l| Instant::now() + l);
        if self.authenticated {
            crate::telemetry::REAUTHENTICATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            tracing::debug!(
                peer = %self.session.client_address,
                %principal,
                mechanism,
                "SASL authentication succeeded"
            );
        }
        self.authenticated = true;
        self.mechanism = Some(mechanism.to_string());
        self.state = State::Open;
        self.session = Arc::new(Session {
            principal,
            ..(*self.session).clone()
        });
        Ok(lifetime)
    }

    /// The session's lifetime: `connections_max_reauth_ms`, shortened to the credential's
    /// expiry.
    fn lifetime(&self, expires_at_ms: Option<i64>) -> Option<Duration> {
        let reauth = u64::try_from(self.broker.config.connections_max_reauth_ms)
            .ok()
            .filter(|&ms| ms > 0);
        let token = expires_at_ms.map(|at| {
            let left = at.saturating_sub(crate::handlers::now_ms());
            u64::try_from(left).unwrap_or(0)
        });
        match (reauth, token) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(Duration::from_millis)
    }

    fn fail(&mut self, mechanism: &str, message: &str, detail: &str) -> Answer {
        crate::warn_limited!(
            AUTH_FAILED,
            peer = %self.session.client_address,
            listener = %self.session.listener,
            mechanism,
            "SASL authentication failed: {detail}"
        );
        crate::telemetry::AUTH_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.state = State::Handshake;
        let delay =
            Duration::from_millis(self.broker.config.connection_failed_authentication_delay_ms);
        Answer {
            body: ResponseKind::SaslAuthenticate(
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(message.to_string()))),
            ),
            delay: Some(delay),
            close: true,
        }
    }
}

/// Failed authentications, logged with a rate limit (a client with a wrong password
/// retries in a loop).
static AUTH_FAILED: crate::log_limit::LogLimit =
    crate::log_limit::LogLimit::new("SASL authentication failed", 10);

/// The principal of a TLS client certificate (the first of the chain) through the
/// mapping rules; `User:ANONYMOUS` without a certificate.
pub fn tls_principal(
    certs: Option<&[rustls::pki_types::CertificateDer<'_>]>,
    rules: &crate::security::tls::PrincipalRules,
) -> Result<Principal, String> {
    let Some(cert) = certs.and_then(|c| c.first()) else {
        return Ok(Principal::anonymous());
    };
    let subject = crate::security::tls::certificate_subject(cert)?;
    rules.apply(&subject).map(Principal::user).ok_or_else(|| {
        format!("no ssl_principal_mapping_rules rule matches the subject '{subject}'")
    })
}
