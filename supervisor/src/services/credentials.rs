//! Host side of the credentials service: the instance role's credentials from IMDSv2, cached and
//! fetched again when they expire within `refresh_before_secs`, served to the enclave only (the
//! accept loop checks the peer).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use companion_config::CredentialService;
use enclave_link::credentials::{Credentials, CredentialsError, CredentialsMsg};
use enclave_link::frame::{read_one, write_one, Message};
use enclave_link::Stream;
use tokio::sync::Mutex;

use super::imds::Imds;
use super::link::Ctx;
use super::metrics::ResultLabels;
use super::{ServiceError, ServiceMetrics};

pub(crate) const SERVICE: &str = "credentials";
/// How long the enclave has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Cache {
    imds: Imds,
    refresh_before: Duration,
    current: Mutex<Option<Credentials>>,
    metrics: Arc<ServiceMetrics>,
}

impl Cache {
    pub(crate) fn new(
        config: &CredentialService,
        metrics: Arc<ServiceMetrics>,
    ) -> Result<Self, ServiceError> {
        let imds = Imds::new(
            &config.imds_endpoint,
            config.token_ttl_secs,
            Duration::from_millis(config.timeout_ms.into()),
        )
        .map_err(|e| ServiceError::Config(e.to_string()))?;
        Ok(Cache {
            imds,
            refresh_before: Duration::from_secs(config.refresh_before_secs.into()),
            current: Mutex::new(None),
            metrics,
        })
    }

    /// Current credentials; fetched again when they expire within `refresh_before`. When IMDS
    /// fails, cached credentials that still work are served.
    pub(crate) async fn get(&self) -> Result<Credentials, String> {
        let mut current = self.current.lock().await;
        let now = SystemTime::now();
        if let Some(c) = current.as_ref() {
            if !c.expires_within(now, self.refresh_before) {
                return Ok(c.clone());
            }
        }
        let result = |r| ResultLabels { result: r };
        match self.imds.credentials().await {
            Ok(fresh) => {
                self.metrics
                    .credential_refreshes
                    .get_or_create(&result("ok"))
                    .inc();
                *current = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => {
                self.metrics
                    .credential_refreshes
                    .get_or_create(&result("error"))
                    .inc();
                tracing::warn!(error = %e, "cannot refresh the instance role's credentials");
                match current.as_ref() {
                    Some(c) if !c.expires_within(now, Duration::ZERO) => Ok(c.clone()),
                    _ => Err(e.to_string()),
                }
            }
        }
    }
}

pub(crate) async fn start(ctx: &Ctx, cache: Arc<Cache>) -> Result<(), ServiceError> {
    let listener = ctx
        .listen(SERVICE, enclave_link::ports::CREDENTIALS)
        .await?;
    let metrics = ctx.metrics.clone();
    ctx.serve(SERVICE, listener, move |stream| {
        serve(stream, cache.clone(), metrics.clone())
    });
    Ok(())
}

async fn serve(mut stream: Stream, cache: Arc<Cache>, metrics: Arc<ServiceMetrics>) {
    match tokio::time::timeout(REQUEST_TIMEOUT, read_one::<CredentialsMsg, _>(&mut stream)).await {
        Ok(Ok(CredentialsMsg::Request(_))) => {}
        Ok(Ok(other)) => {
            let e = enclave_link::FrameError::UnknownKind(other.kind());
            return metrics.frame_rejected(SERVICE, &e);
        }
        Ok(Err(enclave_link::FrameError::Io(_))) | Err(_) => return,
        Ok(Err(e)) => return metrics.frame_rejected(SERVICE, &e),
    }
    let (reply, result) = match cache.get().await {
        Ok(c) => (CredentialsMsg::Credentials(c), "served"),
        Err(message) => (CredentialsMsg::Error(CredentialsError { message }), "error"),
    };
    metrics
        .credential_requests
        .get_or_create(&ResultLabels { result })
        .inc();
    let _ = write_one(&mut stream, &reply).await;
}
