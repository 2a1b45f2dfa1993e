//! What a request names: namespaces as path segments (levels joined by the unit separator
//! 0x1F, `%1F` on the wire), query parameters, and page tokens. Everything here is
//! untrusted input; anything malformed is a 400 naming the culprit.

use std::collections::HashMap;

use iceberg::{NamespaceIdent, TableIdent};

use super::error::RestError;

/// Separator of namespace levels in a path segment or `parent` (the specification's default
/// `namespace-separator`).
pub const NAMESPACE_SEPARATOR: char = '\u{1f}';

/// Longest name (a namespace level or a table) accepted; longer ones cannot be in the catalog.
const MAX_NAME_BYTES: usize = 1024;

/// Largest `pageSize` honoured; a larger one is capped, not refused.
pub const MAX_PAGE_SIZE: usize = 10_000;

/// The levels of a namespace path segment (already percent-decoded by the router).
pub fn namespace(segment: &str) -> Result<NamespaceIdent, RestError> {
    let levels: Vec<String> = segment
        .split(NAMESPACE_SEPARATOR)
        .map(str::to_string)
        .collect();
    for level in &levels {
        check_name("namespace level", level)?;
        // The SQL catalog behind the API stores a namespace as its levels joined by '.':
        // a level holding one could not be told apart from two levels.
        if level.contains('.') {
            return Err(RestError::bad_request(format!(
                "namespace level {level:?} contains '.': separate namespace levels with %1F"
            )));
        }
    }
    NamespaceIdent::from_vec(levels)
        .map_err(|e| RestError::bad_request(format!("invalid namespace: {}", e.message())))
}

/// A table (or view) identifier from its namespace segment and name.
pub fn table(namespace_segment: &str, name: &str) -> Result<TableIdent, RestError> {
    let ns = namespace(namespace_segment)?;
    check_name("table name", name)?;
    Ok(TableIdent::new(ns, name.to_string()))
}

fn check_name(what: &str, name: &str) -> Result<(), RestError> {
    if name.is_empty() {
        return Err(RestError::bad_request(format!("empty {what}")));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(RestError::bad_request(format!(
            "{what} longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(RestError::bad_request(format!(
            "{what} {name:?} contains control characters"
        )));
    }
    Ok(())
}

/// The query string's parameters (the last value of a repeated one wins).
pub fn query(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// A page of a listing: `pageToken` (where the previous page ended) and `pageSize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Items strictly after this key (from the token), or from the start.
    pub after: Option<String>,
    /// At most this many items; `None`: all (a client that sent no page size).
    pub size: Option<usize>,
}

impl Page {
    /// Reads `pageToken` and `pageSize` from the query.
    pub fn from_query(q: &HashMap<String, String>) -> Result<Page, RestError> {
        let after = match q.get("pageToken").map(String::as_str) {
            None | Some("") => None,
            Some(token) => Some(decode_token(token)?),
        };
        let size = match q.get("pageSize").map(String::as_str) {
            None | Some("") => None,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Some(n.min(MAX_PAGE_SIZE)),
                _ => {
                    return Err(RestError::bad_request(format!(
                        "pageSize must be a positive integer, not {text:?}"
                    )));
                }
            },
        };
        Ok(Page { after, size })
    }

    /// Cuts `items` (each with its sort key) to this page: the items and the token of the
    /// next page, if there is one.
    pub fn apply<T>(&self, mut items: Vec<(String, T)>) -> (Vec<T>, Option<String>) {
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.dedup_by(|a, b| a.0 == b.0);
        if let Some(after) = &self.after {
            items.retain(|(k, _)| k > after);
        }
        let next = match self.size {
            Some(size) if items.len() > size => {
                items.truncate(size);
                items.last().map(|(k, _)| encode_token(k))
            }
            _ => None,
        };
        (items.into_iter().map(|(_, v)| v).collect(), next)
    }
}

/// The sort key of a namespace or table: its levels (and name) joined by the separator.
pub fn sort_key(levels: &[String]) -> String {
    levels.join(&NAMESPACE_SEPARATOR.to_string())
}

/// Page tokens are the last key of the page, hex-encoded: opaque to clients, URL-safe, and
/// stable while the listing changes between pages.
fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Result<String, RestError> {
    let bad = || RestError::bad_request(format!("invalid pageToken {token:?}"));
    if !token.len().is_multiple_of(2) || token.len() > 2 * (MAX_NAME_BYTES + 1) * 16 {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_from_segments() {
        assert_eq!(namespace("default").unwrap().as_ref(), &vec!["default"]);
        assert_eq!(namespace("a\u{1f}b").unwrap().as_ref(), &vec!["a", "b"]);
        for bad in ["", "a\u{1f}", "a.b", "a\nb"] {
            let e = namespace(bad).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad:?}");
            assert_eq!(e.kind, "BadRequestException");
        }
        assert!(namespace(&"x".repeat(5000)).is_err());
        assert!(table("default", "").is_err());
        assert_eq!(table("default", "t").unwrap().name(), "t");
    }

    #[test]
    fn query_strings() {
        let q = query(Some("parent=a%1Fb&pageToken=&pageSize=2"));
        assert_eq!(q["parent"], "a\u{1f}b");
        assert_eq!(
            Page::from_query(&q).unwrap(),
            Page {
                after: None,
                size: Some(2)
            }
        );
        for bad in [
            "pageSize=0",
            "pageSize=-1",
            "pageSize=x",
            "pageToken=zz",
            "pageToken=abc",
        ] {
            assert!(Page::from_query(&query(Some(bad))).is_err(), "{bad}");
        }
        assert!(query(None).is_empty());
    }

    #[test]
    fn pages_walk_a_listing_once() {
        let names = ["e", "b", "a", "d", "c"];
        let items = || {
            names
                .iter()
                .map(|n| (n.to_string(), *n))
                .collect::<Vec<_>>()
        };
        let mut page = Page {
            after: None,
            size: Some(2),
        };
        let mut seen = Vec::new();
        loop {
            let (got, next) = page.apply(items());
            seen.extend(got);
            match next {
                Some(token) => {
                    let q = query(Some(&format!("pageToken={token}&pageSize=2")));
                    page = Page::from_query(&q).unwrap();
                }
                None => break,
            }
        }
        assert_eq!(seen, vec!["a", "b", "c", "d", "e"]);
        let all = Page {
            after: None,
            size: None,
        };
        assert_eq!(all.apply(items()).1, None);
    }
}
