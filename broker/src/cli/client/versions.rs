//! API version negotiation: ApiVersions when a connection opens, then for each request the
//! highest version both the broker and this client speak.
//!
//! This client speaks what `kafka-protocol` 0.18 knows, except Produce and Fetch above v12:
//! from v13 they name topics only by id, and the CLI names topics (every broker that serves
//! v13 also serves v12; Kafka 4 still serves Fetch from v4 and Produce from v3).

use std::collections::HashMap;

use anyhow::{Context, bail};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::{ApiKey, FetchRequest, ProduceRequest};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};

use super::conn::Conn;

/// The newest Produce and Fetch versions that still name topics.
const TOPIC_NAME_MAX: i16 = 12;

/// UNSUPPORTED_VERSION: a broker older than our ApiVersions answers it with a v0 body.
const UNSUPPORTED_VERSION: i16 = 35;

/// The version ranges a broker advertised.
#[derive(Debug, Default, Clone)]
pub struct Versions {
    ranges: HashMap<i16, (i16, i16)>,
}

/// The range of `R` this client speaks.
fn ours<R: Request>() -> (i16, i16) {
    let range = R::VERSIONS;
    let max = if R::KEY == ProduceRequest::KEY || R::KEY == FetchRequest::KEY {
        range.max.min(TOPIC_NAME_MAX)
    } else {
        range.max
    };
    (range.min, max)
}

impl Versions {
    /// The highest version of `R` both sides speak.
    pub fn pick<R: Request>(&self) -> anyhow::Result<i16> {
        let (our_min, our_max) = ours::<R>();
        let Some(&(min, max)) = self.ranges.get(&R::KEY) else {
            bail!("the broker does not serve {}", api_name(R::KEY));
        };
        let version = max.min(our_max);
        if version < min.max(our_min) {
            bail!(
                "the broker serves {} v{min}-v{max}; this client speaks v{our_min}-v{our_max}",
                api_name(R::KEY)
            );
        }
        Ok(version)
    }

    fn from_response(resp: &ApiVersionsResponse) -> Versions {
        Versions {
            ranges: resp
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        }
    }
}

/// `Produce`, `Fetch`, ... for messages; the number for keys `kafka-protocol` does not know.
pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("API {key}"), |k| format!("{k:?}"))
}

/// Asks the broker for its versions with the newest ApiVersions we speak; a broker that does
/// not serve it answers UNSUPPORTED_VERSION in a v0 body listing its range, and we ask again
/// within that range (KIP-511).
pub fn negotiate(conn: &mut Conn) -> anyhow::Result<Versions> {
    let (our_min, our_max) = ours::<ApiVersionsRequest>();
    let first = ask(conn, our_max)?;
    if first.error_code == 0 {
        return Ok(Versions::from_response(&first));
    }
    if first.error_code != UNSUPPORTED_VERSION {
        crate::cli::error::check(first.error_code, None, || "ApiVersions".to_string())?;
    }
    let advertised = Versions::from_response(&first);
    let Some(&(_, broker_max)) = advertised.ranges.get(&ApiVersionsRequest::KEY) else {
        bail!("the broker refused ApiVersions v{our_max} without naming its versions");
    };
    let version = broker_max.min(our_max);
    if version < our_min {
        bail!("the broker serves ApiVersions up to v{broker_max} only");
    }
    let second = ask(conn, version)?;
    crate::cli::error::check(second.error_code, None, || {
        format!("ApiVersions v{version}")
    })?;
    Ok(Versions::from_response(&second))
}

/// One ApiVersions round trip at `version`; the body is decoded at v0 if it does not decode
/// at `version` (the error answer of a broker that does not serve `version`).
fn ask(conn: &mut Conn, version: i16) -> anyhow::Result<ApiVersionsResponse> {
    let mut req = ApiVersionsRequest::default();
    if version >= 3 {
        req = req
            .with_client_software_name(StrBytes::from_static_str("floe-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    }
    let id = conn.send_at(&req, version)?;
    // ApiVersions responses always carry header v0 (KIP-511).
    let body = conn.receive(id, 0)?;
    match ApiVersionsResponse::decode(&mut body.clone(), version) {
        Ok(resp) if resp.error_code != UNSUPPORTED_VERSION => Ok(resp),
        _ => ApiVersionsResponse::decode(&mut body.clone(), 0).context("decoding ApiVersions"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn advertised(keys: &[(i16, i16, i16)]) -> Versions {
        let resp = ApiVersionsResponse::default().with_api_keys(
            keys.iter()
                .map(|&(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(k)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        );
        Versions::from_response(&resp)
    }

    #[test]
    fn picks_the_highest_common_version() {
        let v = advertised(&[(3, 0, 12), (0, 3, 11), (1, 4, 17)]);
        assert_eq!(v.pick::<MetadataRequest>().ok(), Some(12));
        assert_eq!(v.pick::<ProduceRequest>().ok(), Some(11));
        // Fetch v13+ names topics by id: capped at 12.
        assert_eq!(v.pick::<FetchRequest>().ok(), Some(12));
    }

    #[test]
    fn refuses_apis_without_a_common_version() {
        let v = advertised(&[(3, 20, 30)]);
        let err = v.pick::<MetadataRequest>().err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("v20-v30")),
            "{err:?}"
        );
        let err = v.pick::<ProduceRequest>().err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("does not serve Produce")),
            "{err:?}"
        );
    }
}
