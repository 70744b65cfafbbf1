//! The fleet's health as its supervisors report it: the newest health record of each instance,
//! judged against the release the plan expects. `status` prints it, a rotation waits for it
//! before it drops the old release, and a failed rollout is explained with it.

use std::time::Duration;

use companion_config::health::HealthRecord;
use serde::Serialize;

use crate::aws::logs::{self, Source};
use crate::aws::{stack, Aws};

/// What one instance's newest health record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Healthy, with the planned PCR0.
    Healthy,
    /// The supervisor reports the enclave is not healthy.
    Unhealthy { state: String },
    /// Healthy, but running another release than the planned one.
    PcrMismatch { running: String, planned: String },
    /// The newest record is older than two heartbeats: supervisor or shipping stopped.
    Stale { age_secs: u64 },
    /// No record at all (the supervisor never shipped one, or the stream is gone).
    NoRecord,
    /// A line in the health stream that is not a health record of this format.
    Unreadable { error: String },
}

impl Verdict {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Verdict::Healthy)
    }
}

/// One instance: its id, its newest record (when readable) and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceHealth {
    pub instance_id: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub record: Option<HealthRecord>,
    /// Age of the newest record in seconds.
    pub age_secs: Option<u64>,
}

/// Judges one instance's newest line. `planned_pcr0` is the release the plan expects to run
/// (None: only the supervisor's own expectation counts).
pub fn judge(
    line: Option<&str>,
    planned_pcr0: Option<&str>,
    now_ms: i64,
) -> (Verdict, Option<HealthRecord>) {
    let Some(line) = line else {
        return (Verdict::NoRecord, None);
    };
    let record = match HealthRecord::parse(line) {
        Ok(r) => r,
        Err(e) => {
            return (
                Verdict::Unreadable {
                    error: e.to_string(),
                },
                None,
            )
        }
    };
    let verdict = if record.is_stale(now_ms) {
        Verdict::Stale {
            age_secs: age_secs(&record, now_ms),
        }
    } else if let Some(planned) = planned_pcr0.filter(|p| !record.runs_pcr0(p)) {
        Verdict::PcrMismatch {
            running: record
                .measured_pcrs
                .as_ref()
                .map_or_else(|| "(none)".into(), |m| m.pcr0.clone()),
            planned: planned.to_string(),
        }
    } else if !record.is_healthy() {
        Verdict::Unhealthy {
            state: serde_json::to_value(record.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        }
    } else {
        Verdict::Healthy
    };
    (verdict, Some(record))
}

fn age_secs(record: &HealthRecord, now_ms: i64) -> u64 {
    (now_ms - record.timestamp_ms()).max(0) as u64 / 1000
}

/// The instances of the deployment: the stack's instance, or (for an Auto Scaling group, whose
/// members the stack does not list) every instance whose health stream had an event within
/// two heartbeats.
pub async fn instances(
    aws: &Aws,
    stack_id: &str,
    group: &str,
    now_ms: i64,
) -> anyhow::Result<Vec<String>> {
    let resources = stack::resources(aws, stack_id).await?;
    let mut ids: Vec<String> = resources
        .values()
        .filter(|(ty, _)| ty == "AWS::EC2::Instance")
        .map(|(_, physical)| physical.clone())
        .collect();
    let has_group = resources
        .values()
        .any(|(ty, _)| ty == "AWS::AutoScaling::AutoScalingGroup");
    if has_group {
        let window = 2 * companion_config::health::HEARTBEAT_SECS as i64 * 1000;
        for s in logs::streams(aws, group).await? {
            let recent = s.last_event_ms.is_some_and(|t| now_ms - t <= window);
            if s.source == Source::Health && recent && !ids.contains(&s.instance_id) {
                ids.push(s.instance_id);
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// The newest record of each instance, judged.
pub async fn fleet(
    aws: &Aws,
    group: &str,
    instance_ids: &[String],
    planned_pcr0: Option<&str>,
    now_ms: i64,
) -> anyhow::Result<Vec<InstanceHealth>> {
    let mut out = Vec::new();
    for id in instance_ids {
        let line = logs::latest_line(aws, group, &Source::Health.stream_name(id)).await?;
        let (verdict, record) = judge(line.as_ref().map(|(_, l)| l.as_str()), planned_pcr0, now_ms);
        let age_secs = record.as_ref().map(|r| age_secs(r, now_ms));
        out.push(InstanceHealth {
            instance_id: id.clone(),
            verdict,
            record,
            age_secs,
        });
    }
    Ok(out)
}

/// Why the fleet does not (yet) run `pcr0` healthy on at least `min_instances`; None when it
/// does.
pub fn missing(fleet: &[InstanceHealth], min_instances: usize) -> Option<String> {
    let mut problems: Vec<String> = fleet
        .iter()
        .filter(|i| !i.verdict.is_healthy())
        .map(|i| {
            format!(
                "{}: {}",
                i.instance_id,
                describe(&i.verdict, i.record.as_ref())
            )
        })
        .collect();
    let healthy = fleet.iter().filter(|i| i.verdict.is_healthy()).count();
    if healthy < min_instances {
        problems.push(format!(
            "{healthy} of {min_instances} instance(s) report the new release healthy"
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Polls the fleet's health until every instance runs `pcr0` healthy (at least `min`), for
/// at most `polls` rounds `poll` apart; the last answer of `missing` when it never does.
pub async fn wait_for_release(
    aws: &Aws,
    stack_id: &str,
    group: &str,
    pcr0: &str,
    min: usize,
    poll: Duration,
    polls: u32,
) -> anyhow::Result<Result<(), String>> {
    let mut last = String::new();
    for round in 0..polls.max(1) {
        if round > 0 {
            tokio::time::sleep(poll).await;
        }
        let now = super::unix_now_ms();
        let ids = instances(aws, stack_id, group, now).await?;
        let fleet = fleet(aws, group, &ids, Some(pcr0), now).await?;
        match missing(&fleet, min) {
            None => return Ok(Ok(())),
            Some(why) => last = why,
        }
    }
    Ok(Err(last))
}

/// One line for people: the verdict and, when there is one, the supervisor's last error.
pub fn describe(verdict: &Verdict, record: Option<&HealthRecord>) -> String {
    let base = match verdict {
        Verdict::Healthy => "healthy".to_string(),
        Verdict::Unhealthy { state } => format!("enclave {state}"),
        Verdict::PcrMismatch { running, planned } => format!(
            "runs PCR0 {}…, the plan expects {}…",
            short(running),
            short(planned)
        ),
        Verdict::Stale { age_secs } => format!("no health record for {age_secs} s (stale)"),
        Verdict::NoRecord => "no health record".to_string(),
        Verdict::Unreadable { error } => format!("unreadable health record: {error}"),
    };
    match record.and_then(|r| r.last_error.as_deref()) {
        Some(e) if !verdict.is_healthy() => format!("{base}; last error: {e}"),
        _ => base,
    }
}

fn short(pcr: &str) -> &str {
    &pcr[..pcr.len().min(16)]
}

/// For a failed rollout: the supervisors' own account. CloudFormation's reason names the
/// instance for a FAILURE signal ("… with UniqueId i-…"); a timeout names none, and then every
/// instance with a record is asked.
pub async fn explain_failure(
    aws: &Aws,
    group: &str,
    reason: &str,
    stack_id: &str,
) -> Option<String> {
    let named = instance_ids_in(reason);
    let now = super::unix_now_ms();
    let ids = if named.is_empty() {
        instances(aws, stack_id, group, now).await.ok()?
    } else {
        named
    };
    let fleet = fleet(aws, group, &ids, None, now).await.ok()?;
    let lines: Vec<String> = fleet
        .iter()
        .filter(|i| !i.verdict.is_healthy())
        .map(|i| {
            format!(
                "supervisor on {}: {}",
                i.instance_id,
                describe(&i.verdict, i.record.as_ref())
            )
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `i-` followed by 8 or 17 hex digits, wherever they appear.
fn instance_ids_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("i-") {
        let hex: String = text[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        let boundary = at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric();
        if boundary && (hex.len() == 8 || hex.len() == 17) {
            let id = format!("i-{hex}");
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use companion_config::health::{DesiredState, EnclaveState, HealthReport};
    use companion_config::Measurements;

    const NOW: i64 = 1_800_000_000_000;

    fn line(state: EnclaveState, pcr0: &str, age_ms: i64, error: Option<&str>) -> String {
        let pcrs = |p: &str| Measurements {
            pcr0: p.into(),
            pcr1: "1".repeat(96),
            pcr2: "2".repeat(96),
            pcr8: None,
        };
        HealthRecord::new(HealthReport {
            deployment: "demo".into(),
            instance_id: "i-0123456789abcdef0".into(),
            timestamp_ms: NOW - age_ms,
            state,
            desired_state: DesiredState::Running,
            measured_pcrs: Some(pcrs(pcr0)),
            expected_pcrs: pcrs(&"a".repeat(96)),
            restarts: 1,
            last_error: error.map(str::to_string),
            supervisor_version: "0.1.0".into(),
        })
        .to_line()
    }

    #[test]
    fn verdicts() {
        let a = "a".repeat(96);
        let b = "b".repeat(96);
        let ok = line(EnclaveState::Healthy, &a, 5_000, None);
        assert_eq!(judge(Some(&ok), Some(&a), NOW).0, Verdict::Healthy);
        assert_eq!(judge(Some(&ok), None, NOW).0, Verdict::Healthy);
        assert!(matches!(
            judge(Some(&ok), Some(&b), NOW).0,
            Verdict::PcrMismatch { .. }
        ));
        let sick = line(
            EnclaveState::Unhealthy,
            &a,
            5_000,
            Some("health check timed out"),
        );
        let (v, r) = judge(Some(&sick), Some(&a), NOW);
        assert_eq!(
            v,
            Verdict::Unhealthy {
                state: "unhealthy".into()
            }
        );
        assert_eq!(
            describe(&v, r.as_ref()),
            "enclave unhealthy; last error: health check timed out"
        );
        let old = line(EnclaveState::Healthy, &a, 121_000, None);
        assert_eq!(
            judge(Some(&old), Some(&a), NOW).0,
            Verdict::Stale { age_secs: 121 }
        );
        assert_eq!(judge(None, Some(&a), NOW).0, Verdict::NoRecord);
        assert!(matches!(
            judge(Some("plain text"), Some(&a), NOW).0,
            Verdict::Unreadable { .. }
        ));
    }

    #[test]
    fn missing_names_every_instance_and_the_count() {
        let a = "a".repeat(96);
        let mk = |id: &str, l: &str| {
            let (verdict, record) = judge(Some(l), Some(&a), NOW);
            InstanceHealth {
                instance_id: id.into(),
                verdict,
                record,
                age_secs: None,
            }
        };
        let ok = mk("i-1", &line(EnclaveState::Healthy, &a, 0, None));
        let old = mk(
            "i-2",
            &line(EnclaveState::Healthy, &"c".repeat(96), 0, None),
        );
        assert_eq!(missing(std::slice::from_ref(&ok), 1), None);
        let why = missing(&[ok.clone(), old], 2).unwrap();
        assert!(why.starts_with("i-2: runs PCR0 cccccccccccccccc…"), "{why}");
        assert!(
            why.ends_with("1 of 2 instance(s) report the new release healthy"),
            "{why}"
        );
        assert!(missing(&[ok], 2).is_some());
    }

    #[test]
    fn finds_instance_ids_in_cloudformation_reasons() {
        assert_eq!(
            instance_ids_in("Received FAILURE signal with UniqueId i-0123456789abcdef0"),
            ["i-0123456789abcdef0"]
        );
        assert_eq!(
            instance_ids_in("i-1234abcd and xi-12345678 and i-12"),
            ["i-1234abcd"]
        );
        assert!(instance_ids_in("Failed to receive 1 resource signal(s)").is_empty());
    }
}
