//! The records the group coordinator keeps in `__consumer_offsets`, in Kafka's own formats
//! so the topic compacts the way Kafka's does (the key says what the record is about; the
//! latest value per key wins; a null value deletes).
//!
//! - Offset commit: key version 1 `(group, topic, partition)`, value version 3
//!   `(offset, leader epoch, metadata, commit timestamp)`, or version 1 when the commit
//!   carries an explicit expiry (OffsetCommit v2-v4 `retention_time_ms`).
//! - Group metadata: key version 2 `(group)`, value version 3 (protocol type, generation,
//!   protocol, leader, state timestamp, members with their subscription and assignment).
//!
//! - Consumer group (KIP-848) metadata: key version 3 `(group)`, value version 0 `(epoch)`,
//!   a flexible-version value (followed by an empty tagged-field section). The other KIP-848
//!   records (members, target and current assignments, keys 4-8) are not written: members
//!   rejoin after a restart.
//!
//! These are Kafka's non-flexible encodings: int16-length strings (-1 for null),
//! int32-length bytes, int32-count arrays, all big-endian. Decoding never panics on
//! truncated or malformed input.

use bytes::{BufMut, Bytes, BytesMut};

/// Why a record of `__consumer_offsets` could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The record ended before a field did.
    #[error("record truncated at byte {0}")]
    Truncated(usize),
    /// A string is not UTF-8.
    #[error("string at byte {0} is not UTF-8")]
    NotUtf8(usize),
    /// A length is negative where null is not allowed, or absurd.
    #[error("invalid length {len} at byte {at}")]
    BadLength {
        /// Byte position.
        at: usize,
        /// The length read.
        len: i64,
    },
    /// A key or value version Floe does not read.
    #[error("unsupported {what} version {version}")]
    Version {
        /// Which schema.
        what: &'static str,
        /// The version found.
        version: i16,
    },
}

/// What a record of `__consumer_offsets` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// A committed offset.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A group's membership and assignment.
    Group {
        /// Group id.
        group: String,
    },
    /// A KIP-848 consumer group's epoch.
    ConsumerGroupMetadata {
        /// Group id.
        group: String,
    },
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The committed offset (the next record to consume).
    pub offset: i64,
    /// Leader epoch of the record before the offset, -1 if unknown.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: String,
    /// When the commit was made.
    pub commit_timestamp: i64,
    /// Explicit expiry (OffsetCommit v2-v4 with a retention time), -1 for none.
    pub expire_timestamp: i64,
}

/// One member in a group metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    /// Member id.
    pub member_id: String,
    /// Static membership instance id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Metadata of the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A group's metadata as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type ("consumer", "connect", ...).
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Selected protocol (assignor), if any members.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its current state.
    pub current_state_timestamp: i64,
    /// Members.
    pub members: Vec<MemberValue>,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;

/// Encodes a record key.
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut b = BytesMut::new();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            b.put_i16(OFFSET_KEY_VERSION);
            put_str(&mut b, group);
            put_str(&mut b, topic);
            b.put_i32(*partition);
        }
        RecordKey::Group { group } => {
            b.put_i16(GROUP_KEY_VERSION);
            put_str(&mut b, group);
        }
        RecordKey::ConsumerGroupMetadata { group } => {
            b.put_i16(CONSUMER_GROUP_METADATA_KEY_VERSION);
            put_str(&mut b, group);
        }
    }
    b.freeze()
}

const CONSUMER_GROUP_METADATA_KEY_VERSION: i16 = 3;

/// Encodes a consumer group metadata value (version 0: the group epoch, no tagged fields).
pub fn encode_consumer_group_value(epoch: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(epoch);
    b.put_u8(0);
    b.freeze()
}

/// Decodes a consumer group metadata value: its epoch (tagged fields are ignored).
pub fn decode_consumer_group_value(buf: &[u8]) -> Result<i32, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    if version != 0 {
        return Err(RecordError::Version {
            what: "consumer group metadata value",
            version,
        });
    }
    r.i32()
}

/// Encodes an offset commit value (version 3, or 1 when it carries an expiry).
pub fn encode_offset_value(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    if v.expire_timestamp >= 0 {
        b.put_i16(1);
        b.put_i64(v.offset);
        put_str(&mut b, &v.metadata);
        b.put_i64(v.commit_timestamp);
        b.put_i64(v.expire_timestamp);
    } else {
        b.put_i16(3);
        b.put_i64(v.offset);
        b.put_i32(v.leader_epoch);
        put_str(&mut b, &v.metadata);
        b.put_i64(v.commit_timestamp);
    }
    b.freeze()
}

/// Encodes a group metadata value (version 3).
pub fn encode_group_value(v: &GroupValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    b.put_i64(v.current_state_timestamp);
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        b.put_i32(m.subscription.len() as i32);
        b.put_slice(&m.subscription);
        b.put_i32(m.assignment.len() as i32);
        b.put_slice(&m.assignment);
    }
    b.freeze()
}

pub(crate) fn put_str(b: &mut BytesMut, s: &str) {
    // Group ids, topics and member ids are bounded well below i16::MAX by the protocol
    // they arrived in (int16-length strings).
    let len = s.len().min(i16::MAX as usize);
    b.put_i16(len as i16);
    b.put_slice(&s.as_bytes()[..len]);
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

/// Decodes a record key.
pub fn decode_key(buf: &[u8]) -> Result<RecordKey, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    match version {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::Group { group: r.string()? }),
        CONSUMER_GROUP_METADATA_KEY_VERSION => {
            Ok(RecordKey::ConsumerGroupMetadata { group: r.string()? })
        }
        v => Err(RecordError::Version {
            what: "key",
            version: v,
        }),
    }
}

/// Decodes an offset commit value (versions 0-3).
pub fn decode_offset_value(buf: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::Version {
            what: "offset commit value",
            version,
        });
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

/// Decodes a group metadata value (versions 0-3).
pub fn decode_group_value(buf: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::Version {
            what: "group metadata value",
            version,
        });
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    if count < 0 {
        return Err(RecordError::BadLength {
            at: r.pos,
            len: i64::from(count),
        });
    }
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            // Version 0 had no rebalance timeout; Kafka used the session timeout.
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// A cursor over a record in Kafka's non-flexible encoding (shared with the transaction
/// coordinator's records).
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl Reader<'_> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(RecordError::Truncated(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let at = self.pos;
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| RecordError::NotUtf8(at))
    }

    pub(crate) fn string(&mut self) -> Result<String, RecordError> {
        let at = self.pos;
        self.nullable_string()?
            .ok_or(RecordError::BadLength { at, len: -1 })
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let at = self.pos;
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize).map_err(
            |_| RecordError::BadLength {
                at,
                len: i64::from(len),
            },
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_group_metadata_in_kafka_layout() {
        let key = RecordKey::ConsumerGroupMetadata { group: "g".into() };
        let bytes = encode_key(&key);
        assert_eq!(&bytes[..], &[0, 3, 0, 1, b'g']);
        assert_eq!(decode_key(&bytes), Ok(key));
        let value = encode_consumer_group_value(9);
        assert_eq!(&value[..], &[0, 0, 0, 0, 0, 9, 0]);
        assert_eq!(decode_consumer_group_value(&value), Ok(9));
        assert!(decode_consumer_group_value(&value[..3]).is_err());
    }

    #[test]
    fn keys_round_trip_in_kafka_layout() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        let bytes = encode_key(&key);
        // version 1, "g", "t", partition 7
        assert_eq!(&bytes[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(decode_key(&bytes).unwrap(), key);
        let key = RecordKey::Group {
            group: "grp".into(),
        };
        let bytes = encode_key(&key);
        assert_eq!(&bytes[..], &[0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(decode_key(&bytes).unwrap(), key);
    }

    #[test]
    fn values_round_trip() {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 1000,
            expire_timestamp: -1,
        };
        assert_eq!(decode_offset_value(&encode_offset_value(&v)).unwrap(), v);
        let v1 = OffsetValue {
            leader_epoch: -1,
            expire_timestamp: 5000,
            ..v
        };
        assert_eq!(decode_offset_value(&encode_offset_value(&v1)).unwrap(), v1);

        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 99,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group_value(&encode_group_value(&g)).unwrap(), g);
        let empty = GroupValue {
            protocol: None,
            leader: None,
            members: vec![],
            ..g
        };
        assert_eq!(
            decode_group_value(&encode_group_value(&empty)).unwrap(),
            empty
        );
    }

    #[test]
    fn truncated_or_bad_input_is_an_error_not_a_panic() {
        let g = encode_group_value(&GroupValue {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: Some("range".into()),
            leader: Some("m".into()),
            current_state_timestamp: 0,
            members: vec![MemberValue {
                member_id: "m".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 1,
                subscription: Bytes::from_static(b"x"),
                assignment: Bytes::new(),
            }],
        });
        for cut in 0..g.len() {
            assert!(decode_group_value(&g[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_key(&[0, 9, 0, 0]).is_err());
        assert!(decode_key(&[0, 1, 0x7f, 0xff]).is_err());
        assert!(decode_offset_value(&[0, 7, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode_key(&[0, 2, 0, 2, 0xff, 0xfe]).is_err());
    }
}
