//! The TLS client configuration: rustls with the graviola provider and the Mozilla root store
//! compiled into the binary. An extra root exists only for tests (a local AWS endpoint with a
//! test CA) and [`crate::EgressConfig::check_production`] refuses it.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::EgressError;

/// Builds the client config: webpki roots, plus `extra_root_pem` when given (tests only).
pub(crate) fn client_config(
    extra_root_pem: Option<&str>,
) -> Result<Arc<ClientConfig>, EgressError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_root_pem {
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| EgressError::TestRoot(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| EgressError::TestRoot(e.to_string()))?;
            found = true;
        }
        if !found {
            return Err(EgressError::TestRoot("no PEM certificate".into()));
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls_graviola::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| EgressError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
