//! SASL mechanisms. (Being built: see the module's owner.)

use std::collections::BTreeMap;

use crate::config::Config;
use crate::metadata_store::ScramCredentialRecord;

/// The SASL mechanisms the broker offers and the credentials they check.
pub struct SaslServer {
    mechanisms: Vec<String>,
}

impl SaslServer {
    /// The mechanisms `config` enables, over the stored SCRAM credentials.
    pub fn new(
        config: &Config,
        _scram: &BTreeMap<String, BTreeMap<String, ScramCredentialRecord>>,
    ) -> Result<SaslServer, String> {
        Ok(SaslServer {
            mechanisms: config
                .sasl_enabled_mechanisms
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect(),
        })
    }

    /// The enabled mechanism names, as SaslHandshake lists them.
    pub fn mechanisms(&self) -> &[String] {
        &self.mechanisms
    }
}
