//! SaslAuthenticate outside a SASL exchange: on a SASL listener the connection's
//! authenticator (`connection/auth.rs`) answers it during an exchange; anywhere else
//! (a listener without SASL, or after authentication without a new SaslHandshake) Kafka
//! answers ILLEGAL_SASL_STATE.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse};

use super::{Handled, RequestContext, str_bytes};

/// Handles SaslAuthenticate outside an exchange.
pub async fn handle(ctx: &RequestContext, _req: SaslAuthenticateRequest) -> Handled {
    let message = if ctx.session.protocol.uses_sasl() {
        "SaslAuthenticate request received after successful authentication"
    } else {
        "SaslAuthenticate request received on a listener without SASL"
    };
    ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(str_bytes(message))),
    )
    .into()
}
