//! AWS SDK clients for the enclave: every connection goes through a caller-supplied
//! [`Dialer`] (the runtime's: the supervisor's egress service; tests': [`TcpDialer`]) and TLS
//! terminates **in this process** (rustls + graviola, Mozilla roots compiled in), so the host
//! relays bytes it cannot read. Requests are signed with SigV4 by the SDK itself, with
//! credentials from a caller-supplied provider (the runtime's: the supervisor's credentials
//! service).
//!
//! [`sdk_config`] gives an `aws_types::SdkConfig`; build any SDK client from it, e.g.
//! `aws_sdk_kms::Client::new(&config)`, `aws_sdk_ssm::Client::new(&config)`,
//! `aws_sdk_s3::Client::new(&config)` (add `force_path_style(true)` for a local endpoint).
//!
//! The only non-production knobs — an endpoint override and an extra trusted root for a local
//! test endpoint — live in [`EgressConfig`], and [`EgressConfig::check_production`] refuses both.

mod dialer;
mod http;
mod tls;

use std::sync::Arc;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_types::region::Region;
use aws_types::SdkConfig;
use thiserror::Error;

pub use aws_credential_types::{provider, Credentials};
pub use dialer::{BoxStream, DialFuture, Dialer, Stream, TcpDialer};
pub use http::EgressHttpClient;

/// Where and how the SDK clients connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressConfig {
    pub region: String,
    /// Tests only: e.g. `https://localhost:PORT` for the local KMS front. In production the SDK
    /// resolves AWS's endpoints itself.
    pub endpoint_url: Option<String>,
    /// Tests only: one more trusted root (PEM) for that endpoint's certificate.
    pub extra_test_root_pem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EgressError {
    #[error("extra test root: {0}")]
    TestRoot(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("{0} is a test-only setting, refused with `production: true`")]
    NotForProduction(&'static str),
    #[error("endpoint {0}: only https endpoints are allowed")]
    PlainEndpoint(String),
}

impl EgressConfig {
    /// Production runtimes call this: AWS's own endpoints and the compiled-in roots only.
    pub fn check_production(&self) -> Result<(), EgressError> {
        if self.endpoint_url.is_some() {
            return Err(EgressError::NotForProduction("endpoint_url"));
        }
        if self.extra_test_root_pem.is_some() {
            return Err(EgressError::NotForProduction("extra_test_root_pem"));
        }
        Ok(())
    }
}

/// An SDK config whose HTTP goes through `dialer` with in-process TLS, signed with credentials
/// from `credentials` (refreshed by the SDK's identity cache as they near expiry).
pub fn sdk_config(
    config: &EgressConfig,
    dialer: Arc<dyn Dialer>,
    credentials: impl ProvideCredentials + 'static,
) -> Result<SdkConfig, EgressError> {
    if let Some(url) = &config.endpoint_url {
        if !url.starts_with("https://") {
            return Err(EgressError::PlainEndpoint(url.clone()));
        }
    }
    let tls = tls::client_config(config.extra_test_root_pem.as_deref())?;
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(EgressHttpClient::new(dialer, tls))
        .sleep_impl(TokioSleep::new());
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EgressConfig {
        EgressConfig {
            region: "us-east-1".into(),
            endpoint_url: None,
            extra_test_root_pem: None,
        }
    }

    #[test]
    fn production_refuses_test_knobs() {
        assert_eq!(config().check_production(), Ok(()));
        let endpoint = EgressConfig {
            endpoint_url: Some("https://localhost:1".into()),
            ..config()
        };
        assert_eq!(
            endpoint.check_production(),
            Err(EgressError::NotForProduction("endpoint_url"))
        );
        let root = EgressConfig {
            extra_test_root_pem: Some(String::new()),
            ..config()
        };
        assert_eq!(
            root.check_production(),
            Err(EgressError::NotForProduction("extra_test_root_pem"))
        );
    }

    #[test]
    fn plain_http_endpoints_and_bad_roots_are_refused() {
        let creds = Credentials::new("a", "b", None, None, "test");
        let plain = EgressConfig {
            endpoint_url: Some("http://127.0.0.1:4566".into()),
            ..config()
        };
        assert!(matches!(
            sdk_config(&plain, Arc::new(TcpDialer), creds.clone()),
            Err(EgressError::PlainEndpoint(_))
        ));
        let bad_root = EgressConfig {
            extra_test_root_pem: Some("not a pem".into()),
            ..config()
        };
        assert!(matches!(
            sdk_config(&bad_root, Arc::new(TcpDialer), creds),
            Err(EgressError::TestRoot(_))
        ));
    }
}
