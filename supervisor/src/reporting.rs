//! What the supervisor tells AWS about itself: log shipping to the stack's log group, a health
//! record (Embedded Metric Format) on every change and every minute, and the rollout signal.
//! All of it runs in background tasks that start only for a deployment rendered with a rollout
//! target, and only once the instance id is known (IMDSv2); nothing here can hold up the
//! watchdog or the management API.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use cloudwatch_log_shipping::{Buffer, Record, Shipper, ShipperConfig, Source, TokioClock};
use companion_config::health::{
    DesiredState, EnclaveState, HealthRecord, HealthReport, HEARTBEAT_SECS,
};
use companion_config::{Measurements, RolloutTarget, SupervisorConfig};
use rollout_signal::{SignalTarget, Signaller, DEFAULT_MARKER};
use tokio::sync::watch;

use crate::log_layer::now_ms;
use crate::persist::Desired;
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
    let imds = config.link.credentials.imds_endpoint.clone();
    tokio::spawn(async move {
        let instance_id = match instance_id(&imds).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "no instance id from IMDS: not shipping logs, health records or the rollout signal");
                buffer.close();
                return;
            }
        };
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region))
            .retry_config(RetryConfig::disabled())
            .load()
            .await;
        let logs = aws_sdk_cloudwatchlogs::Client::new(&shared);
        let shipper = Shipper::new(
            logs,
            buffer.clone(),
            ShipperConfig::new(group, &instance_id),
            Arc::new(TokioClock),
        );
        tokio::spawn(shipper.run());
        let signaller = signaller(&shared, target, &instance_id);
        health_loop(status, buffer, deployment, instance_id, signaller).await;
    });
}

async fn instance_id(endpoint: &str) -> Result<String, String> {
    let client = aws_config::imds::Client::builder()
        .endpoint(endpoint)
        .map_err(|e| e.to_string())?
        .build();
    client
        .get("/latest/meta-data/instance-id")
        .await
        .map(String::from)
        .map_err(|e| e.to_string())
}

fn signaller(shared: &aws_config::SdkConfig, t: RolloutTarget, instance_id: &str) -> Signaller {
    Signaller::new(
        aws_sdk_cloudformation::Client::new(shared),
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
