//! Compatibility levels and modes, and the check a registration runs.
//!
//! A level names a direction and a reach. BACKWARD: a consumer with the new schema reads
//! data written with the old one. FORWARD: a consumer with the old schema reads data written
//! with the new one. FULL: both. Without `_TRANSITIVE` the new schema is checked against the
//! latest live version only, with it against every live version. NONE checks nothing.

use serde::{Deserialize, Serialize};

use crate::schema::Parsed;

/// A compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// No check.
    None,
    /// New reads the latest version's data (the default).
    #[default]
    Backward,
    /// New reads every live version's data.
    BackwardTransitive,
    /// The latest version reads new data.
    Forward,
    /// Every live version reads new data.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every live version.
    FullTransitive,
}

impl Compatibility {
    /// Parses the API's name (case-insensitive).
    pub fn parse(name: &str) -> Option<Compatibility> {
        serde_json::from_value(serde_json::Value::String(name.to_ascii_uppercase())).ok()
    }

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Checked against every live version rather than the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// Why `new` is not compatible with `previous` (live versions, oldest first) at this
    /// level; empty when it is.
    pub fn errors(self, new: &Parsed, previous: &[(i32, &Parsed)]) -> Vec<String> {
        let against: &[(i32, &Parsed)] = if self.transitive() {
            previous
        } else {
            match previous.last() {
                Some(_) => &previous[previous.len() - 1..],
                None => &[],
            }
        };
        let (backward, forward) = match self {
            Compatibility::None => (false, false),
            Compatibility::Backward | Compatibility::BackwardTransitive => (true, false),
            Compatibility::Forward | Compatibility::ForwardTransitive => (false, true),
            Compatibility::Full | Compatibility::FullTransitive => (true, true),
        };
        let mut errors = Vec::new();
        // Newest first, as Confluent reports them.
        for (version, old) in against.iter().rev() {
            if backward {
                for e in new.backward_errors(old) {
                    errors.push(format!(
                        "{e} (new schema cannot read version {version}'s data)"
                    ));
                }
            }
            if forward {
                for e in old.backward_errors(new) {
                    errors.push(format!(
                        "{e} (version {version} cannot read the new schema's data)"
                    ));
                }
            }
        }
        errors
    }
}

/// A registry or subject mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// Registrations and deletes allowed (the default).
    #[default]
    Readwrite,
    /// Writes refused.
    Readonly,
    /// Writes refused, even where a subject's own mode would allow them.
    ReadonlyOverride,
    /// Registrations carry their own ids and versions (migrating from another registry);
    /// no compatibility check.
    Import,
}

impl Mode {
    /// Parses the API's name (case-insensitive).
    pub fn parse(name: &str) -> Option<Mode> {
        serde_json::from_value(serde_json::Value::String(name.to_ascii_uppercase())).ok()
    }

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::ReadonlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaType;

    fn avro(fields: &str) -> Parsed {
        Parsed::parse(
            SchemaType::Avro,
            &format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn names_parse_case_insensitively() {
        assert_eq!(
            Compatibility::parse("full_transitive"),
            Some(Compatibility::FullTransitive)
        );
        assert_eq!(Compatibility::parse("sideways"), None);
        assert_eq!(Mode::parse("readonly"), Some(Mode::Readonly));
        assert_eq!(
            Compatibility::BackwardTransitive.as_str(),
            "BACKWARD_TRANSITIVE"
        );
    }

    #[test]
    fn transitive_levels_check_every_version_plain_ones_the_latest() {
        // v1 has `a`; v2 dropped it; v3 adds `a` back without a default.
        let v1 = avro(r#"{"name":"a","type":"int"}"#);
        let v2 = avro(r#"{"name":"b","type":"int","default":0}"#);
        let v3 =
            avro(r#"{"name":"b","type":"int","default":0},{"name":"c","type":"int","default":1}"#);
        let previous = [(1, &v1), (2, &v2)];
        assert!(Compatibility::Backward.errors(&v3, &previous).is_empty());
        assert!(
            Compatibility::BackwardTransitive
                .errors(&v3, &previous)
                .is_empty()
        );
        let v4 = avro(r#"{"name":"a","type":"string"}"#);
        let previous = [(1, &v1), (2, &v2), (3, &v3)];
        assert!(!Compatibility::Backward.errors(&v4, &previous).is_empty());
        assert!(Compatibility::None.errors(&v4, &previous).is_empty());
        // FORWARD: v3 (old) reads v5's data: v5 has to keep b (v3's reader field has a
        // default, so dropping it is fine too).
        let v5 = avro(r#"{"name":"b","type":"int"}"#);
        assert!(Compatibility::Forward.errors(&v5, &[(3, &v3)]).is_empty());
        assert!(Compatibility::Full.errors(&v5, &[(3, &v3)]).is_empty());
        let errors = Compatibility::Full.errors(&v4, &[(3, &v3)]);
        assert!(!errors.is_empty());
    }
}
