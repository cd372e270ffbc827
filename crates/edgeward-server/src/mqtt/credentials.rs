//! The server's own MQTT client identity: a certificate from the device CA (the broker
//! trusts nothing else) named [`SERVER_IDENTITY`], which no device id can be (device ids
//! have no `:`), so no device can ever hold the rights the broker's ACL grants that name.
//! It is issued afresh, to a fresh key kept only in memory, at every start.

use std::sync::Arc;

use rcgen::KeyPair;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::app::App;

/// The MQTT user name (certificate common name) of the server.
pub const SERVER_IDENTITY: &str = "edgeward:server";

/// Days the server's MQTT certificate is valid (it is re-issued at each start).
const DAYS: i64 = 30;

/// TLS for the server's broker connection: the broker must present a certificate from the
/// server CA (see [`super::broker_config`]); the server presents a fresh certificate named
/// [`SERVER_IDENTITY`] from the device CA.
pub fn client_tls(app: &App) -> Result<Arc<ClientConfig>, String> {
    let now = time::OffsetDateTime::from_unix_timestamp(app.now()).map_err(|e| e.to_string())?;
    let key = KeyPair::generate().map_err(|e| format!("MQTT client key: {e}"))?;
    let cert = app
        .identity
        .device_ca
        .issue_service(SERVER_IDENTITY, &key, DAYS, now)?;
    let mut roots = RootCertStore::empty();
    let ca =
        edgeward_core::pem::parse_labelled(app.identity.server_ca_pem.as_bytes(), "CERTIFICATE")
            .map_err(|e| format!("server CA: {e}"))?;
    for der in ca {
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| format!("server CA: {e}"))?;
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![CertificateDer::from(cert)], key)
            .map_err(|e| format!("MQTT client certificate: {e}"))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_device_can_be_named_like_the_server() {
        assert!(edgeward_proto::device_id::validate(super::SERVER_IDENTITY).is_err());
    }
}
