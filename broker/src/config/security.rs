//! Checks of the security settings (listeners, TLS, SASL, authorization), so a broker with
//! a mistake in them refuses to start with the reason instead of serving insecurely.

use super::Config;

impl Config {
    pub(super) fn validate_security(&self) -> Result<(), String> {
        let listeners = crate::security::listeners::parse(self)?;
        let tls = listeners.iter().any(|l| l.protocol.uses_tls());
        if tls && self.ssl_keystore_location.is_none() {
            return Err(
                "an SSL or SASL_SSL listener needs ssl_keystore_location (a PEM file with the \
                 certificate chain and key)"
                    .into(),
            );
        }
        if !matches!(
            self.ssl_client_auth.as_str(),
            "none" | "requested" | "required"
        ) {
            return Err(format!(
                "ssl_client_auth must be none, requested or required, not '{}'",
                self.ssl_client_auth
            ));
        }
        if self.ssl_client_auth != "none" && tls && self.ssl_truststore_location.is_none() {
            return Err(format!(
                "ssl_client_auth={} needs ssl_truststore_location (the CA certificates client \
                 certificates chain to)",
                self.ssl_client_auth
            ));
        }
        for v in self.ssl_enabled_protocols.split(',').map(str::trim) {
            if !matches!(v, "TLSv1.2" | "TLSv1.3") {
                return Err(format!(
                    "ssl_enabled_protocols: '{v}' is not TLSv1.2 or TLSv1.3"
                ));
            }
        }
        crate::security::tls::PrincipalRules::parse(&self.ssl_principal_mapping_rules)?;
        for m in self.sasl_enabled_mechanisms.split(',').map(str::trim) {
            if !matches!(
                m,
                "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" | "OAUTHBEARER"
            ) {
                return Err(format!(
                    "sasl_enabled_mechanisms: '{m}' is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 \
                     or OAUTHBEARER"
                ));
            }
        }
        if self.sasl_server_max_receive_size < 1024 {
            return Err("sasl_server_max_receive_size must be at least 1024".into());
        }
        if !matches!(
            self.authorizer_class_name.as_str(),
            "" | "acl"
                | "kafka.security.authorizer.AclAuthorizer"
                | "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        ) {
            return Err(format!(
                "authorizer_class_name '{}' is not served: use acl (or Kafka's \
                 StandardAuthorizer/AclAuthorizer class name), or leave it empty",
                self.authorizer_class_name
            ));
        }
        for p in self
            .super_users
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            crate::security::Principal::parse(p).map_err(|e| format!("super_users: {e}"))?;
        }
        if self.quota_window_num < 2 || self.quota_window_size_seconds < 1 {
            return Err(
                "quota_window_num must be at least 2 and quota_window_size_seconds at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}
