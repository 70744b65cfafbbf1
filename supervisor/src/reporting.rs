//! What the supervisor tells AWS about itself: log shipping to the stack's log group, a health
//! record (Embedded Metric Format) on every change and every minute, and the rollout signal.
//! All of it runs in background tasks that start only for a deployment rendered with a rollout
//! target, and only once the instance id is known (IMDSv2); nothing here can hold up the
//! watchdog or the management API.

use std::sync::Arc;
use std::time::Duration;

use aws_egress::provider::{self, error::CredentialsError, ProvideCredentials};
use aws_egress::{EgressConfig, TcpDialer};
use cloudwatch_log_shipping::{Buffer, Record, Shipper, ShipperConfig, Source, TokioClock};
use companion_config::health::{
    DesiredState, EnclaveState, HealthRecord, HealthReport, HEARTBEAT_SECS,
};
use companion_config::{Measurements, RolloutTarget, SupervisorConfig};
use rollout_signal::{SignalTarget, Signaller, DEFAULT_MARKER};
use tokio::sync::watch;

use crate::log_layer::now_ms;
use crate::persist::Desired;
use crate::services::Imds;
use crate::status::Snapshot;

/// Starts shipping and health reporting in the background.
pub fn start(config: &SupervisorConfig, buffer: Arc<Buffer>, status: watch::Receiver<Snapshot>) {
    let Some(target) = config.rollout.clone() else {
        buffer.close();
        return;
    };
    let region = config.region.clone();
    let group = config.log_group.clone();
    let deployment = config.deployment.clone();
    let c = &config.link.credentials;
    let imds = Imds::new(
        &c.imds_endpoint,
        c.token_ttl_secs,
        Duration::from_millis(c.timeout_ms.into()),
    );
    tokio::spawn(async move {
        let clients = match imds {
            Ok(imds) => clients(imds, region).await,
            Err(e) => Err(e.to_string()),
        };
        let Clients {
            logs,
            cfn,
            instance_id,
        } = match clients {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "not shipping logs, health records or the rollout signal");
                buffer.close();
                return;
            }
        };
        let shipper = Shipper::new(
            logs,
            buffer.clone(),
            ShipperConfig::new(group, &instance_id),
            Arc::new(TokioClock),
        );
        tokio::spawn(shipper.run());
        let signaller = signaller(cfn, target, &instance_id);
        health_loop(status, buffer, deployment, instance_id, signaller).await;
    });
}

/// The instance id and an SDK config: AWS's endpoints over in-process TLS (aws-egress, direct
/// TCP from the host), signed with the instance role's credentials from IMDSv2.
struct Clients {
    logs: aws_sdk_cloudwatchlogs::Client,
    cfn: aws_sdk_cloudformation::Client,
    instance_id: String,
}

async fn clients(imds: Imds, region: String) -> Result<Clients, String> {
    let instance_id = imds.instance_id().await.map_err(|e| e.to_string())?;
    let egress = EgressConfig {
        region,
        endpoint_url: None,
        extra_test_root_pem: None,
    };
    let shared = aws_egress::sdk_config(
        &egress,
        Arc::new(TcpDialer),
        RoleCredentials(Arc::new(imds)),
    )
    .map_err(|e| e.to_string())?;
    // Retries are the shipper's (it keeps the batch); the SDK's would only hold it longer.
    let logs = aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::config::Builder::from(&shared)
            .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled())
            .build(),
    );
    Ok(Clients {
        logs,
        cfn: aws_sdk_cloudformation::Client::new(&shared),
        instance_id,
    })
}

/// The instance role's credentials, from the same IMDS client the credentials service uses.
#[derive(Clone)]
struct RoleCredentials(Arc<Imds>);

impl std::fmt::Debug for RoleCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoleCredentials(IMDS)")
    }
}

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            let c = self
                .0
                .credentials()
                .await
                .map_err(CredentialsError::provider_error)?;
            let expiry = c.expires_at().map_err(CredentialsError::provider_error)?;
            Ok(aws_egress::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.to_string(),
                Some(c.session_token.to_string()),
                Some(expiry),
                "imds",
            ))
        })
    }
}

fn signaller(
    cfn: aws_sdk_cloudformation::Client,
    t: RolloutTarget,
    instance_id: &str,
) -> Signaller {
    Signaller::new(
        cfn,
        SignalTarget {
            stack_id: t.stack_name,
            logical_id: t.logical_id,
            instance_id: instance_id.to_string(),
        },
        marker(),
    )
}

/// systemd's `RuntimeDirectory=` (tmpfs, emptied at boot) when set, else the default.
fn marker() -> std::path::PathBuf {
    match std::env::var_os("RUNTIME_DIRECTORY") {
        Some(dir) => std::path::Path::new(&dir).join("rollout-signalled"),
        None => DEFAULT_MARKER.into(),
    }
}

/// A record on every change of what the record says, and every heartbeat regardless.
async fn health_loop(
    mut status: watch::Receiver<Snapshot>,
    buffer: Arc<Buffer>,
    deployment: String,
    instance_id: String,
    signaller: Signaller,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(HEARTBEAT_SECS));
    let mut last: Option<HealthRecord> = None;
    loop {
        let heartbeat = tokio::select! {
            _ = tick.tick() => true,
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
        };
        let snapshot = status.borrow_and_update().clone();
        let record = HealthRecord::new(report(&snapshot, &deployment, &instance_id));
        let changed = last.as_ref().is_none_or(|l| !same_content(l, &record));
        if !heartbeat && !changed {
            continue;
        }
        buffer.push(Record {
            timestamp_ms: record.timestamp_ms(),
            source: Source::Health,
            message: record.to_line(),
        });
        match signaller.observe(&record).await {
            Ok(_) => {}
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "rollout signal not sent yet; retrying with the next record")
            }
            Err(e) => tracing::warn!(error = %e, "rollout signal"),
        }
        last = Some(record);
    }
}

/// Equal but for the time.
fn same_content(a: &HealthRecord, b: &HealthRecord) -> bool {
    let mut b = b.clone();
    b.aws.timestamp_ms = a.aws.timestamp_ms;
    *a == b
}

fn report(s: &Snapshot, deployment: &str, instance_id: &str) -> HealthReport {
    let expected = s.measurements.expected.as_ref().and_then(measurements);
    HealthReport {
        deployment: deployment.to_string(),
        instance_id: instance_id.to_string(),
        timestamp_ms: now_ms(),
        state: state(s),
        desired_state: match s.desired_state {
            Desired::Running => DesiredState::Running,
            Desired::Stopped => DesiredState::Stopped,
        },
        measured_pcrs: s.measurements.measured.as_ref().and_then(measurements),
        // Without expected measurements the supervisor refuses to start: report that as the
        // empty expectation, which nothing matches.
        expected_pcrs: expected.unwrap_or_else(|| Measurements {
            pcr0: String::new(),
            pcr1: String::new(),
            pcr2: String::new(),
            pcr8: None,
        }),
        restarts: s.restarts,
        last_error: s
            .last_error
            .as_ref()
            .map(|e| e.inner.message.clone())
            .or_else(|| s.reason.clone().filter(|_| !s.healthy)),
        supervisor_version: s.supervisor_version.to_string(),
    }
}

fn state(s: &Snapshot) -> EnclaveState {
    match s.state {
        "ready" if s.healthy => EnclaveState::Healthy,
        "ready" | "unready" => EnclaveState::Unhealthy,
        "backoff" => EnclaveState::Restarting,
        "stopping" | "stopped" => EnclaveState::Stopped,
        "failed" => EnclaveState::Failed,
        _ => EnclaveState::Starting,
    }
}

fn measurements(m: &std::collections::BTreeMap<String, String>) -> Option<Measurements> {
    Some(Measurements {
        pcr0: m.get("PCR0")?.clone(),
        pcr1: m.get("PCR1")?.clone(),
        pcr2: m.get("PCR2")?.clone(),
        pcr8: m.get("PCR8").cloned(),
    })
}
