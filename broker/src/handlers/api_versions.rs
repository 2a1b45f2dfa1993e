//! ApiVersions: the versions of every API this broker serves, generated from the handler
//! table. Tagged fields (features) are left at their defaults so they are not written
//! (old librdkafka mis-skips tagged fields it does not know).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseKind};

use super::{Handled, RequestContext, SUPPORTED_APIS};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect()
}

/// Handles ApiVersions.
pub async fn handle(_ctx: &RequestContext, _req: ApiVersionsRequest) -> Handled {
    ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(api_keys())).into()
}

/// The KIP-511 answer to an ApiVersions request of a version we do not know (sent as v0).
pub fn unsupported_version_response() -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(api_keys()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn table_is_within_what_the_codec_supports() {
        for a in SUPPORTED_APIS {
            let codec = a.key.valid_versions();
            assert!(
                codec.min <= a.min && a.max <= codec.max && a.min <= a.max,
                "{:?} {}..={} outside codec range {codec}",
                a.key,
                a.min,
                a.max
            );
        }
        let keys: Vec<i16> = api_keys().iter().map(|k| k.api_key).collect();
        assert!(keys.contains(&(ApiKey::ApiVersions as i16)));
        assert!(keys.contains(&(ApiKey::Produce as i16)));
    }
}
