//! How `consume` prints a record: a kcat-like template (`-f '%k=%v\n'`) for text, or one
//! JSON object per line for `--format json`.

use serde_json::{Value, json};

use crate::cli::error::usage;
use crate::cli::records::InRecord;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Headers,
    Timestamp,
}

/// A parsed output template.
#[derive(Debug, Clone)]
pub struct Template {
    tokens: Vec<Token>,
}

impl Template {
    /// Parses `%t %p %o %k %v %h %T %%` and the escapes `\n \t \r \\`; anything else after
    /// `%` or `\` is a usage error.
    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let mut tokens = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '%' => match chars.next() {
                    Some('t') => Token::Topic,
                    Some('p') => Token::Partition,
                    Some('o') => Token::Offset,
                    Some('k') => Token::Key,
                    Some('v') => Token::Value,
                    Some('h') => Token::Headers,
                    Some('T') => Token::Timestamp,
                    Some('%') => {
                        literal.push(b'%');
                        continue;
                    }
                    other => {
                        return Err(usage(format!(
                            "unknown template field '%{}' in '{text}' (known: %t %p %o %k %v %h %T %%)",
                            other.map(String::from).unwrap_or_default()
                        )));
                    }
                },
                '\\' => {
                    let escaped = match chars.next() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('\\') => '\\',
                        other => {
                            return Err(usage(format!(
                                "unknown escape '\\{}' in '{text}' (known: \\n \\t \\r \\\\)",
                                other.map(String::from).unwrap_or_default()
                            )));
                        }
                    };
                    let mut buf = [0u8; 4];
                    literal.extend_from_slice(escaped.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
                c => {
                    let mut buf = [0u8; 4];
                    literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            };
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(token);
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(Template { tokens })
    }

    /// The record as the template says, appended to `buf`. Null keys and values print as
    /// nothing; headers as `k=v` separated by commas (a null header value as just `k`).
    pub fn render(&self, buf: &mut Vec<u8>, topic: &str, partition: i32, r: &InRecord) {
        for token in &self.tokens {
            match token {
                Token::Literal(bytes) => buf.extend_from_slice(bytes),
                Token::Topic => buf.extend_from_slice(topic.as_bytes()),
                Token::Partition => buf.extend_from_slice(partition.to_string().as_bytes()),
                Token::Offset => buf.extend_from_slice(r.offset.to_string().as_bytes()),
                Token::Key => buf.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                Token::Value => buf.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                Token::Timestamp => buf.extend_from_slice(r.timestamp.to_string().as_bytes()),
                Token::Headers => {
                    for (i, (k, v)) in r.headers.iter().enumerate() {
                        if i > 0 {
                            buf.push(b',');
                        }
                        buf.extend_from_slice(k.as_bytes());
                        if let Some(v) = v {
                            buf.push(b'=');
                            buf.extend_from_slice(v);
                        }
                    }
                }
            }
        }
    }
}

fn text(bytes: Option<&[u8]>) -> Value {
    bytes.map_or(Value::Null, |b| {
        Value::String(String::from_utf8_lossy(b).into_owned())
    })
}

/// The record as one JSON object (keys, values and header values as UTF-8 text, invalid
/// bytes replaced by U+FFFD; null stays null).
pub fn json_record(topic: &str, partition: i32, r: &InRecord) -> Value {
    json!({
        "topic": topic,
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "timestamp_type": if r.log_append_time { "log_append" } else { "create" },
        "key": text(r.key.as_deref()),
        "value": text(r.value.as_deref()),
        "headers": r.headers.iter().map(|(k, v)| json!({"key": k, "value": text(v.as_deref())})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record() -> InRecord {
        InRecord {
            offset: 7,
            timestamp: 1_700_000_000_123,
            log_append_time: false,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"v1")),
            headers: vec![
                ("a".into(), Some(Bytes::from_static(b"1"))),
                ("b".into(), None),
            ],
        }
    }

    #[test]
    fn templates_render_every_field() {
        let t = Template::parse("%t|%p|%o|%k|%v|%h|%T|100%%\\t\\n").expect("parse");
        let mut buf = Vec::new();
        t.render(&mut buf, "top", 2, &record());
        assert_eq!(
            String::from_utf8(buf).expect("utf8"),
            "top|2|7|k1|v1|a=1,b|1700000000123|100%\t\n"
        );
    }

    #[test]
    fn unknown_fields_and_escapes_are_usage_errors() {
        for bad in ["%x", "%", "\\q", "abc\\"] {
            let err = Template::parse(bad).expect_err("refused");
            assert!(
                err.downcast_ref::<crate::cli::error::UsageError>()
                    .is_some(),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_records_keep_nulls() {
        let mut r = record();
        r.key = None;
        let v = json_record("top", 0, &r);
        assert_eq!(v["key"], Value::Null);
        assert_eq!(v["value"], "v1");
        assert_eq!(v["headers"][1]["value"], Value::Null);
        assert_eq!(v["timestamp_type"], "create");
    }
}
