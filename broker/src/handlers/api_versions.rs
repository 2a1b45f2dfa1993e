//! ApiVersions: the versions of every API this broker serves, generated from the handler
//! table, and (v3+) the features it supports and has finalized, which is what Kafka's
//! DescribeFeatures (AdminClient `describeFeatures`, `kafka-features describe`) reads.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseKind};

use super::{Handled, RequestContext, SUPPORTED_APIS, str_bytes};

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

/// Features as Kafka names them: (name, lowest supported, highest supported, finalized).
/// - `metadata.version`: the cluster's metadata level; Floe speaks the protocol of Kafka
///   3.9 (`3.9-IV0`, level 21);
/// - `group.version` 1: the KIP-848 consumer group protocol is served;
/// - `transaction.version` 2: KIP-890 part 1 (server-side transaction verification) and
///   part 2 (transactions V2: partitions join a transaction with Produce v12+ and
///   TxnOffsetCommit v5+, EndTxn v5+ bumps the epoch after every transaction); clients
///   that know only V1 keep using it;
/// - `kraft.version` 0: no controller quorum.
const FEATURES: &[(&str, i16, i16, i16)] = &[
    ("metadata.version", 1, 21, 21),
    ("group.version", 0, 1, 1),
    ("transaction.version", 0, 2, 2),
    ("kraft.version", 0, 0, 0),
];

/// Epoch of the finalized features: they never change while the broker runs.
const FINALIZED_EPOCH: i64 = 1;

/// Handles ApiVersions.
pub async fn handle(ctx: &RequestContext, _req: ApiVersionsRequest) -> Handled {
    let mut response = ApiVersionsResponse::default().with_api_keys(api_keys());
    if ctx.version() >= 3 {
        response = response
            .with_supported_features(
                FEATURES
                    .iter()
                    .map(|(name, min, max, _)| {
                        SupportedFeatureKey::default()
                            .with_name(str_bytes(name))
                            .with_min_version(*min)
                            .with_max_version(*max)
                    })
                    .collect(),
            )
            .with_finalized_features_epoch(FINALIZED_EPOCH)
            .with_finalized_features(
                FEATURES
                    .iter()
                    .filter(|f| f.3 > 0)
                    .map(|(name, _, _, level)| {
                        FinalizedFeatureKey::default()
                            .with_name(str_bytes(name))
                            .with_min_version_level(*level)
                            .with_max_version_level(*level)
                    })
                    .collect(),
            );
    }
    ResponseKind::ApiVersions(response).into()
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
