//! AWS clients of the runtime: connections through the supervisor's egress service (TLS
//! terminates here, in aws-egress), credentials from the supervisor's credentials service, SigV4
//! by the SDK.

use std::sync::Arc;
use std::time::Duration;

use aws_egress::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_egress::{BoxStream, DialFuture, Dialer, EgressConfig};
use aws_smithy_types::timeout::TimeoutConfig;
use companion_config::RuntimeConfig;
use enclave_link::credentials::CredentialsClient;
use enclave_link::Transport;

/// How long the egress handshake (parent dials the endpoint) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Ask for fresh credentials this long before the cached ones expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// Egress handshake plus TLS handshake (see [`sdk_config`]).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Dials through the parent's egress service: it sees `host:port` and then only TLS records.
#[derive(Debug)]
pub struct LinkDialer(pub Arc<dyn Transport>);

impl Dialer for LinkDialer {
    fn dial<'a>(&'a self, host: &'a str, port: u16) -> DialFuture<'a> {
        Box::pin(async move {
            let stream = enclave_link::egress::connect(&*self.0, host, port, DIAL_TIMEOUT)
                .await
                .map_err(std::io::Error::other)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// The instance role's credentials as the supervisor relays them (cached by the link client).
#[derive(Clone)]
pub struct LinkCredentials(pub Arc<CredentialsClient>);

impl std::fmt::Debug for LinkCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkCredentials")
    }
}

impl ProvideCredentials for LinkCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let c = self
                .0
                .get()
                .await
                .map_err(CredentialsError::provider_error)?;
            let expiry = c.expires_at().map_err(CredentialsError::provider_error)?;
            Ok(aws_egress::Credentials::new(
                &c.access_key_id,
                c.secret_access_key.as_str(),
                Some(c.session_token.to_string()),
                Some(expiry),
                "enclave-link",
            ))
        })
    }
}

/// The SDK clients the runtime uses.
#[derive(Debug, Clone)]
pub struct Clients {
    pub kms: aws_sdk_kms::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub s3: aws_sdk_s3::Client,
}

/// Why the clients could not be built.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ClientsError(#[from] aws_egress::EgressError);

impl Clients {
    pub fn new(
        config: &RuntimeConfig,
        transport: Arc<dyn Transport>,
        credentials: Arc<CredentialsClient>,
    ) -> Result<Clients, ClientsError> {
        let egress = EgressConfig {
            region: config.region.clone(),
            endpoint_url: config
                .aws_test_endpoint
                .as_ref()
                .map(|t| t.endpoint_url.clone()),
            extra_test_root_pem: config
                .aws_test_endpoint
                .as_ref()
                .map(|t| t.root_pem.clone()),
        };
        if config.production {
            egress.check_production()?;
        }
        let sdk = sdk_config(&egress, transport, credentials)?;
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(egress.endpoint_url.is_some())
            .build();
        Ok(Clients {
            kms: aws_sdk_kms::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
        })
    }
}

/// An SDK config over the link. The connect timeout covers the egress handshake (the parent
/// resolves and dials) and the TLS handshake; the SDK's 3.1 s default failed a third of 100
/// concurrent attested calls in the benchmark, so it is longer here.
pub fn sdk_config(
    egress: &EgressConfig,
    transport: Arc<dyn Transport>,
    credentials: Arc<CredentialsClient>,
) -> Result<aws_types::SdkConfig, ClientsError> {
    let sdk = aws_egress::sdk_config(
        egress,
        Arc::new(LinkDialer(transport)),
        LinkCredentials(credentials),
    )?;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build();
    Ok(sdk.to_builder().timeout_config(timeouts).build())
}

/// A new credentials client over the link.
pub fn credentials_client(transport: Arc<dyn Transport>) -> Arc<CredentialsClient> {
    Arc::new(CredentialsClient::new(transport, REFRESH_BEFORE))
}
