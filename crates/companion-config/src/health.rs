//! The supervisor's health record: written to the `<instance-id>/health` stream on every state
//! change and every minute, read by `nitro-provision status` and `apply`. It is a CloudWatch
//! Embedded Metric Format document, so CloudWatch derives `EnclaveHealthy` (0/1) and
//! `EnclaveRestarts` from it with no PutMetricData permission, and the stack's alarm watches the
//! former.

use serde::{Deserialize, Serialize};

use crate::Measurements;

/// The metric namespace the alarm and the records agree on.
pub const METRIC_NAMESPACE: &str = "NitroProvision";
/// 1 when the enclave runs, answers its health check and has the expected PCRs; else 0.
pub const METRIC_HEALTHY: &str = "EnclaveHealthy";
/// Restarts since the supervisor started.
pub const METRIC_RESTARTS: &str = "EnclaveRestarts";
/// Dimension naming the deployment (enclave.yaml's `name`).
pub const DIMENSION_DEPLOYMENT: &str = "Deployment";
/// Dimension naming the EC2 instance.
pub const DIMENSION_INSTANCE: &str = "InstanceId";
/// The supervisor writes a record at least this often, so anything older is stale.
pub const HEARTBEAT_SECS: u64 = 60;

/// What the supervisor sees the enclave doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnclaveState {
    Starting,
    Healthy,
    Unhealthy,
    Restarting,
    /// Gave up: restarts exhausted, or refuses to start (bad config, PCR mismatch).
    Failed,
    Stopped,
}

/// What the operator asked for through the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Running,
    Stopped,
}

/// What the supervisor knows; [`HealthRecord::new`] adds the metric metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub deployment: String,
    pub instance_id: String,
    pub timestamp_ms: i64,
    pub state: EnclaveState,
    pub desired_state: DesiredState,
    /// None while no enclave runs.
    pub measured_pcrs: Option<Measurements>,
    pub expected_pcrs: Measurements,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub supervisor_version: String,
}

/// One health record as it appears in the log stream. Field names in PascalCase are metric
/// values or dimensions (EMF reads them from the top level); the rest are for people and tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthRecord {
    #[serde(rename = "_aws")]
    pub aws: EmfMetadata,
    pub format_version: u32,
    #[serde(rename = "Deployment")]
    pub deployment: String,
    #[serde(rename = "InstanceId")]
    pub instance_id: String,
    #[serde(rename = "EnclaveHealthy")]
    pub healthy: u8,
    #[serde(rename = "EnclaveRestarts")]
    pub restarts: u64,
    pub state: EnclaveState,
    pub desired_state: DesiredState,
    pub measured_pcrs: Option<Measurements>,
    pub expected_pcrs: Measurements,
    pub last_error: Option<String>,
    pub supervisor_version: String,
}

/// EMF's `_aws` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmfMetadata {
    #[serde(rename = "Timestamp")]
    pub timestamp_ms: i64,
    #[serde(rename = "CloudWatchMetrics")]
    pub metrics: Vec<MetricDirective>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDirective {
    #[serde(rename = "Namespace")]
    pub namespace: String,
    #[serde(rename = "Dimensions")]
    pub dimensions: Vec<Vec<String>>,
    #[serde(rename = "Metrics")]
    pub metrics: Vec<MetricDefinition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDefinition {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Unit")]
    pub unit: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("not a health record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("health record format_version {0} is not supported (this build reads {v})", v = FORMAT_VERSION)]
    Version(u32),
    #[error("health record's metric metadata is not nitro-provision's")]
    Metadata,
    #[error("health record says EnclaveHealthy={0}, which is neither 0 nor 1")]
    HealthyValue(u8),
}

/// The health record format's version (independent of the config files').
pub const FORMAT_VERSION: u32 = 1;

impl HealthRecord {
    pub fn new(r: HealthReport) -> Self {
        let healthy =
            r.state == EnclaveState::Healthy && r.measured_pcrs.as_ref() == Some(&r.expected_pcrs);
        HealthRecord {
            aws: metadata(r.timestamp_ms),
            format_version: FORMAT_VERSION,
            deployment: r.deployment,
            instance_id: r.instance_id,
            healthy: healthy.into(),
            restarts: r.restarts,
            state: r.state,
            desired_state: r.desired_state,
            measured_pcrs: r.measured_pcrs,
            expected_pcrs: r.expected_pcrs,
            last_error: r.last_error,
            supervisor_version: r.supervisor_version,
        }
    }

    /// One log line (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    /// Reads a record back, rejecting anything that is not exactly this format.
    pub fn parse(line: &str) -> Result<Self, HealthError> {
        let r: HealthRecord = serde_json::from_str(line)?;
        if r.format_version != FORMAT_VERSION {
            return Err(HealthError::Version(r.format_version));
        }
        if r.aws != metadata(r.aws.timestamp_ms) {
            return Err(HealthError::Metadata);
        }
        if r.healthy > 1 {
            return Err(HealthError::HealthyValue(r.healthy));
        }
        Ok(r)
    }

    pub fn timestamp_ms(&self) -> i64 {
        self.aws.timestamp_ms
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy == 1
    }

    /// Whether the running enclave's PCR0 is `pcr0` (the planned release's).
    pub fn runs_pcr0(&self, pcr0: &str) -> bool {
        self.measured_pcrs
            .as_ref()
            .is_some_and(|m| m.pcr0.eq_ignore_ascii_case(pcr0))
    }

    /// Older than two heartbeats: the supervisor (or its shipping) has stopped.
    pub fn is_stale(&self, now_ms: i64) -> bool {
        now_ms - self.timestamp_ms() > 2 * HEARTBEAT_SECS as i64 * 1000
    }
}

fn metadata(timestamp_ms: i64) -> EmfMetadata {
    let metric = |name: &str| MetricDefinition {
        name: name.into(),
        unit: "Count".into(),
    };
    EmfMetadata {
        timestamp_ms,
        metrics: vec![MetricDirective {
            namespace: METRIC_NAMESPACE.into(),
            // Per deployment (the alarm: no healthy enclave anywhere) and per instance.
            dimensions: vec![
                vec![DIMENSION_DEPLOYMENT.into()],
                vec![DIMENSION_DEPLOYMENT.into(), DIMENSION_INSTANCE.into()],
            ],
            metrics: vec![metric(METRIC_HEALTHY), metric(METRIC_RESTARTS)],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcrs(fill: char) -> Measurements {
        Measurements {
            pcr0: fill.to_string().repeat(96),
            pcr1: "1".repeat(96),
            pcr2: "2".repeat(96),
            pcr8: None,
        }
    }

    fn report(state: EnclaveState, measured: Option<Measurements>) -> HealthReport {
        HealthReport {
            deployment: "demo".into(),
            instance_id: "i-0123456789abcdef0".into(),
            timestamp_ms: 1_700_000_000_000,
            state,
            desired_state: DesiredState::Running,
            measured_pcrs: measured,
            expected_pcrs: pcrs('a'),
            restarts: 2,
            last_error: None,
            supervisor_version: "0.1.0".into(),
        }
    }

    #[test]
    fn healthy_means_healthy_state_and_the_expected_pcrs() {
        assert!(HealthRecord::new(report(EnclaveState::Healthy, Some(pcrs('a')))).is_healthy());
        assert!(!HealthRecord::new(report(EnclaveState::Healthy, Some(pcrs('b')))).is_healthy());
        assert!(!HealthRecord::new(report(EnclaveState::Healthy, None)).is_healthy());
        assert!(!HealthRecord::new(report(EnclaveState::Failed, Some(pcrs('a')))).is_healthy());
    }

    #[test]
    fn the_line_is_embedded_metric_format() {
        let line = HealthRecord::new(report(EnclaveState::Healthy, Some(pcrs('a')))).to_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], METRIC_NAMESPACE);
        // Every dimension and metric EMF is told about is a top-level member of the right type.
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                assert!(v[d.as_str().unwrap()].is_string(), "{d}");
            }
        }
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(v[m["Name"].as_str().unwrap()].is_number(), "{m}");
        }
        assert_eq!(v["EnclaveHealthy"], 1);
        assert_eq!(v["EnclaveRestarts"], 2);
    }

    #[test]
    fn parse_round_trips_and_rejects_what_is_not_ours() {
        let r = HealthRecord::new(report(EnclaveState::Unhealthy, Some(pcrs('a'))));
        let line = r.to_line();
        assert_eq!(HealthRecord::parse(&line).unwrap(), r);

        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["surprise"] = 1.into();
        assert!(matches!(
            HealthRecord::parse(&v.to_string()),
            Err(HealthError::Json(_))
        ));
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["format_version"] = 9.into();
        assert!(matches!(
            HealthRecord::parse(&v.to_string()),
            Err(HealthError::Version(9))
        ));
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["_aws"]["CloudWatchMetrics"][0]["Namespace"] = "Other".into();
        assert!(matches!(
            HealthRecord::parse(&v.to_string()),
            Err(HealthError::Metadata)
        ));
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["EnclaveHealthy"] = 7.into();
        assert!(matches!(
            HealthRecord::parse(&v.to_string()),
            Err(HealthError::HealthyValue(7))
        ));
        for junk in ["", "{", "null", "[]", "{\"_aws\":1}", "\u{0}"] {
            assert!(HealthRecord::parse(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn stale_after_two_heartbeats_and_pcr0_compare_ignores_case() {
        let r = HealthRecord::new(report(EnclaveState::Healthy, Some(pcrs('a'))));
        let t = r.timestamp_ms();
        assert!(!r.is_stale(t + 120_000));
        assert!(r.is_stale(t + 120_001));
        assert!(r.runs_pcr0(&"A".repeat(96)));
        assert!(!r.runs_pcr0(&"b".repeat(96)));
    }
}
