//! SaslHandshake outside a SASL exchange: on a SASL listener the connection's
//! authenticator (`connection/auth.rs`) answers it; here it arrives on a listener without
//! SASL, and Kafka's answer is ILLEGAL_SASL_STATE.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ResponseKind, SaslHandshakeRequest, SaslHandshakeResponse};

use super::{Handled, RequestContext};

/// Handles SaslHandshake on a listener without SASL.
pub async fn handle(ctx: &RequestContext, req: SaslHandshakeRequest) -> Handled {
    tracing::debug!(
        peer = %ctx.peer,
        listener = %ctx.session.listener,
        mechanism = %req.mechanism.as_str(),
        "SaslHandshake on a listener without SASL"
    );
    ResponseKind::SaslHandshake(
        SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code()),
    )
    .into()
}
