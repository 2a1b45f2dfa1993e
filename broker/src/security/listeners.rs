//! Named listeners as Kafka configures them: `listeners`, `advertised_listeners` and
//! `listener_security_protocol_map`, resolved into one [`ListenerSpec`] per port. Without
//! `listeners`, the single `listen` address is a PLAINTEXT listener named `PLAINTEXT`.

use std::collections::BTreeMap;

use super::SecurityProtocol;
use crate::config::{Config, parse_host_port};

/// One listener: a name, a security protocol, where it binds and what it advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The listener name (`PLAINTEXT`, `CLIENT`, ...), upper case as Kafka keeps it.
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// `host:port` to bind (an empty host binds every interface).
    pub bind: String,
    /// `(host, port)` given to clients in Metadata; `None`: the bound address.
    pub advertised: Option<(String, u16)>,
}

/// The listeners `config` describes, in the order given.
pub fn parse(config: &Config) -> Result<Vec<ListenerSpec>, String> {
    let map = protocol_map(&config.listener_security_protocol_map)?;
    let mut specs = Vec::new();
    if config.listeners.trim().is_empty() {
        specs.push(ListenerSpec {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            bind: config.listen.clone(),
            advertised: None,
        });
    } else {
        for entry in split_list(&config.listeners) {
            let (name, host, port) = parse_entry(entry)?;
            if specs.iter().any(|s: &ListenerSpec| s.name == name) {
                return Err(format!("listeners: the name {name} is used twice"));
            }
            if specs.iter().any(|s| port_of(&s.bind) == port && port != 0) {
                return Err(format!("listeners: port {port} is used twice"));
            }
            let protocol = map
                .get(&name)
                .copied()
                .or_else(|| SecurityProtocol::parse(&name))
                .ok_or_else(|| {
                    format!(
                        "listener {name} has no security protocol: name it in \
                         listener_security_protocol_map (e.g. {name}:SASL_SSL)"
                    )
                })?;
            let host = if host.is_empty() { "0.0.0.0" } else { host };
            let bind = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            specs.push(ListenerSpec {
                name,
                protocol,
                bind,
                advertised: None,
            });
        }
    }
    let advertised = config.advertised_listeners.trim();
    if let Some(single) = config.advertised_listener.as_deref() {
        specs[0].advertised = Some(parse_host_port(single)?);
    }
    if !advertised.is_empty() && !advertised.contains("://") {
        specs[0].advertised = Some(parse_host_port(advertised)?);
    } else {
        for entry in split_list(advertised) {
            let (name, host, port) = parse_entry(entry)?;
            let spec = specs.iter_mut().find(|s| s.name == name).ok_or_else(|| {
                format!("advertised_listeners names {name}, which is not a listener")
            })?;
            if host.is_empty() || host == "0.0.0.0" || host == "::" {
                return Err(format!(
                    "advertised_listeners: {name} must advertise a host clients can reach, not '{host}'"
                ));
            }
            spec.advertised = Some((host.to_string(), port));
        }
    }
    Ok(specs)
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|e| !e.is_empty())
}

fn port_of(bind: &str) -> u16 {
    bind.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0)
}

/// `NAME://host:port` as (upper-case name, host without brackets, port).
fn parse_entry(entry: &str) -> Result<(String, &str, u16), String> {
    let (name, rest) = entry
        .split_once("://")
        .ok_or_else(|| format!("'{entry}' is not NAME://host:port"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("'{entry}' has an invalid listener name"));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("'{entry}' has no port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("'{entry}' has an invalid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((name.to_ascii_uppercase(), host, port))
}

/// `NAME:PROTOCOL,...`.
fn protocol_map(s: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut map = BTreeMap::new();
    for entry in split_list(s) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            format!("listener_security_protocol_map: '{entry}' is not NAME:PROTOCOL")
        })?;
        let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
            format!(
                "listener_security_protocol_map: '{protocol}' is not PLAINTEXT, SSL, \
                 SASL_PLAINTEXT or SASL_SSL"
            )
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listeners: &str, advertised: &str, map: &str) -> Config {
        Config {
            listeners: listeners.into(),
            advertised_listeners: advertised.into(),
            listener_security_protocol_map: map.into(),
            ..Config::default()
        }
    }

    #[test]
    fn single_listen_is_a_plaintext_listener() {
        let specs = parse(&Config::default()).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, "PLAINTEXT");
        assert_eq!(specs[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(specs[0].bind, "127.0.0.1:9092");
        let bare = parse(&config("", "broker.example:19092", "")).unwrap();
        assert_eq!(bare[0].advertised, Some(("broker.example".into(), 19092)));
    }

    #[test]
    fn named_listeners_with_a_protocol_map() {
        let c = config(
            "PLAINTEXT://127.0.0.1:9092, CLIENT://:9093,SASL_SSL://[::1]:9094",
            "CLIENT://kafka.example:443",
            "CLIENT:SASL_SSL",
        );
        let specs = parse(&c).unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[1].name, "CLIENT");
        assert_eq!(specs[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(specs[1].bind, "0.0.0.0:9093");
        assert_eq!(specs[1].advertised, Some(("kafka.example".into(), 443)));
        assert_eq!(specs[2].bind, "[::1]:9094");
        assert_eq!(specs[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(specs[0].advertised, None);
    }

    #[test]
    fn mistakes_are_named() {
        let err = |c: Config| parse(&c).unwrap_err();
        assert!(err(config("CLIENT://:9093", "", "")).contains("no security protocol"));
        assert!(err(config("A://:1,A://:2", "", "A:SSL")).contains("used twice"));
        assert!(err(config("A://:1,B://:1", "", "A:SSL,B:SSL")).contains("port 1"));
        assert!(err(config("SSL://:1", "PLAINTEXT://h:1", "")).contains("not a listener"));
        assert!(err(config("SSL://:1", "SSL://0.0.0.0:1", "")).contains("reach"));
        assert!(err(config("SSL://:1", "", "SSL:TLS")).contains("not PLAINTEXT"));
        assert!(err(config("localhost:9092", "", "")).contains("NAME://host:port"));
    }
}
