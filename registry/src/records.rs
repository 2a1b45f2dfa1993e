//! The records of the `_schemas` topic, in Confluent Schema Registry's own format, so the
//! topic reads the same as one Confluent's registry wrote (and tools that inspect it work):
//! JSON keys with a `keytype`, JSON values, a tombstone for a hard delete.
//!
//! | keytype  | key                                  | value                                   |
//! |----------|--------------------------------------|-----------------------------------------|
//! | `SCHEMA` | `{subject, version, magic: 1}`       | subject, version, id, schemaType, references, schema, deleted |
//! | `CONFIG` | `{subject or null, magic: 0}`        | `{compatibilityLevel}`; tombstone = delete |
//! | `MODE`   | `{subject or null, magic: 0}`        | `{mode}`; tombstone = delete            |
//!
//! Later records of one key replace earlier ones, which is also what compaction keeps.
//! Other key types Confluent writes (`NOOP`, `DELETE_SUBJECT`, `CLEAR_SUBJECT`) are read
//! and ignored: Floe writes each version's own record when it deletes a subject.

use serde::{Deserialize, Serialize};

use crate::compat::{Compatibility, Mode};
use crate::schema::{Reference, SchemaType};

/// A record key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Key {
    /// One version of a subject.
    Schema {
        /// Subject.
        subject: String,
        /// Version.
        version: i32,
        /// Format version (1).
        magic: i32,
    },
    /// A compatibility level: of a subject, or the global one (`subject` null).
    Config {
        /// Subject (`None`: global).
        subject: Option<String>,
        /// Format version (0).
        magic: i32,
    },
    /// A mode: of a subject, or the global one.
    Mode {
        /// Subject (`None`: global).
        subject: Option<String>,
        /// Format version (0).
        magic: i32,
    },
    /// Confluent's subject-deletion record (read, ignored).
    DeleteSubject {},
    /// Confluent's record for clearing a subject (read, ignored).
    ClearSubject {},
    /// Confluent's no-op (read, ignored).
    Noop {},
}

impl Key {
    /// The key of a subject's version.
    pub fn schema(subject: &str, version: i32) -> Key {
        Key::Schema {
            subject: subject.to_string(),
            version,
            magic: 1,
        }
    }

    /// The key of a compatibility level.
    pub fn config(subject: Option<&str>) -> Key {
        Key::Config {
            subject: subject.map(str::to_string),
            magic: 0,
        }
    }

    /// The key of a mode.
    pub fn mode(subject: Option<&str>) -> Key {
        Key::Mode {
            subject: subject.map(str::to_string),
            magic: 0,
        }
    }
}

/// The value of a `SCHEMA` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValue {
    /// Subject.
    pub subject: String,
    /// Version within the subject.
    pub version: i32,
    /// Global schema id.
    pub id: i32,
    /// Type (absent: Avro).
    #[serde(rename = "schemaType", default, skip_serializing_if = "is_avro")]
    pub schema_type: SchemaType,
    /// References to other subjects' versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// The schema text as registered.
    pub schema: String,
    /// Soft-deleted.
    #[serde(default)]
    pub deleted: bool,
}

fn is_avro(t: &SchemaType) -> bool {
    *t == SchemaType::Avro
}

/// The value of a `CONFIG` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    /// The level.
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: Compatibility,
}

/// The value of a `MODE` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeValue {
    /// The mode.
    pub mode: Mode,
}

/// A decoded record: what [`crate::state::State::apply`] applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A version written or soft-deleted.
    Schema(SchemaValue),
    /// A version hard-deleted.
    SchemaDeleted {
        /// Subject.
        subject: String,
        /// Version.
        version: i32,
    },
    /// A compatibility level set (`None`: removed).
    Config {
        /// Subject (`None`: global).
        subject: Option<String>,
        /// The level.
        level: Option<Compatibility>,
    },
    /// A mode set (`None`: removed).
    Mode {
        /// Subject (`None`: global).
        subject: Option<String>,
        /// The mode.
        mode: Option<Mode>,
    },
    /// A key type Floe does not act on.
    Ignored,
}

impl Record {
    /// Decodes a record of the topic.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Record, String> {
        let key: Key = serde_json::from_slice(key).map_err(|e| format!("undecodable key: {e}"))?;
        let value_of = |what: &str| -> Result<Option<serde_json::Value>, String> {
            value
                .map(|v| serde_json::from_slice(v).map_err(|e| format!("undecodable {what}: {e}")))
                .transpose()
        };
        Ok(match key {
            Key::Schema {
                subject, version, ..
            } => match value_of("schema")? {
                None | Some(serde_json::Value::Null) => Record::SchemaDeleted { subject, version },
                Some(v) => {
                    let v: SchemaValue = serde_json::from_value(v)
                        .map_err(|e| format!("undecodable schema value: {e}"))?;
                    if v.subject != subject || v.version != version {
                        return Err(format!(
                            "schema value of {}/{} under the key of {subject}/{version}",
                            v.subject, v.version
                        ));
                    }
                    Record::Schema(v)
                }
            },
            Key::Config { subject, .. } => Record::Config {
                subject,
                level: match value_of("config")? {
                    None | Some(serde_json::Value::Null) => None,
                    Some(v) => Some(
                        serde_json::from_value::<ConfigValue>(v)
                            .map_err(|e| format!("undecodable config: {e}"))?
                            .compatibility_level,
                    ),
                },
            },
            Key::Mode { subject, .. } => Record::Mode {
                subject,
                mode: match value_of("mode")? {
                    None | Some(serde_json::Value::Null) => None,
                    Some(v) => Some(
                        serde_json::from_value::<ModeValue>(v)
                            .map_err(|e| format!("undecodable mode: {e}"))?
                            .mode,
                    ),
                },
            },
            Key::DeleteSubject {} | Key::ClearSubject {} | Key::Noop {} => Record::Ignored,
        })
    }

    /// Encodes the record as the topic's key and value (`None`: tombstone).
    pub fn encode(&self) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        match self {
            Record::Schema(v) => {
                Some((to_vec(&Key::schema(&v.subject, v.version)), Some(to_vec(v))))
            }
            Record::SchemaDeleted { subject, version } => {
                Some((to_vec(&Key::schema(subject, *version)), None))
            }
            Record::Config { subject, level } => Some((
                to_vec(&Key::config(subject.as_deref())),
                level.map(|l| {
                    to_vec(&ConfigValue {
                        compatibility_level: l,
                    })
                }),
            )),
            Record::Mode { subject, mode } => Some((
                to_vec(&Key::mode(subject.as_deref())),
                mode.map(|m| to_vec(&ModeValue { mode: m })),
            )),
            Record::Ignored => None,
        }
    }
}

/// JSON bytes of a record part (plain data: serializing cannot fail).
fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_confluents_format() {
        let schema = Record::Schema(SchemaValue {
            subject: "orders-value".into(),
            version: 2,
            id: 7,
            schema_type: SchemaType::Protobuf,
            references: vec![Reference {
                name: "other.proto".into(),
                subject: "other".into(),
                version: 1,
            }],
            schema: "syntax = \"proto3\";".into(),
            deleted: false,
        });
        let (key, value) = schema.encode().unwrap();
        assert_eq!(
            String::from_utf8(key.clone()).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":2,"magic":1}"#
        );
        let value = value.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(json["schemaType"], "PROTOBUF");
        assert_eq!(json["references"][0]["subject"], "other");
        assert_eq!(Record::decode(&key, Some(&value)).unwrap(), schema);
        assert_eq!(
            Record::decode(&key, None).unwrap(),
            Record::SchemaDeleted {
                subject: "orders-value".into(),
                version: 2
            }
        );

        let config = Record::Config {
            subject: None,
            level: Some(Compatibility::FullTransitive),
        };
        let (key, value) = config.encode().unwrap();
        assert_eq!(
            String::from_utf8(key.clone()).unwrap(),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(
            String::from_utf8(value.clone().unwrap()).unwrap(),
            r#"{"compatibilityLevel":"FULL_TRANSITIVE"}"#
        );
        assert_eq!(Record::decode(&key, value.as_deref()).unwrap(), config);
    }

    #[test]
    fn avro_omits_the_type_and_confluents_other_keys_are_ignored() {
        let v = SchemaValue {
            subject: "s".into(),
            version: 1,
            id: 1,
            schema_type: SchemaType::Avro,
            references: vec![],
            schema: "\"string\"".into(),
            deleted: true,
        };
        let json = serde_json::to_string(&v).unwrap();
        assert!(!json.contains("schemaType"), "{json}");
        assert_eq!(
            Record::decode(br#"{"keytype":"NOOP","magic":0}"#, Some(b"{}")).unwrap(),
            Record::Ignored
        );
        assert!(Record::decode(b"garbage", None).is_err());
        // A value that names another key is refused, not applied.
        let (_, value) = Record::Schema(v).encode().unwrap();
        let other = Key::schema("t", 1);
        assert!(Record::decode(&serde_json::to_vec(&other).unwrap(), value.as_deref()).is_err());
    }
}
