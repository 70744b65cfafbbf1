//! SignalResource through the real CloudFormation client with canned responses (moto has no
//! SignalResource): which signal each health record calls for, UniqueId = instance id, once per
//! boot, and CloudFormation's refusal.

use std::sync::{Arc, Mutex};

use aws_sdk_cloudformation::error::ErrorMetadata;
use aws_sdk_cloudformation::operation::signal_resource::{
    SignalResourceError, SignalResourceOutput,
};
use aws_sdk_cloudformation::types::ResourceSignalStatus;
use aws_sdk_cloudformation::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use companion_config::health::{DesiredState, EnclaveState, HealthRecord, HealthReport};
use companion_config::Measurements;
use rollout_signal::{verdict, SignalError, SignalTarget, Signaller, Verdict};

const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/demo/1";
const INSTANCE: &str = "i-0123456789abcdef0";

fn pcrs(fill: &str) -> Measurements {
    Measurements {
        pcr0: fill.repeat(48),
        pcr1: "11".repeat(48),
        pcr2: "22".repeat(48),
        pcr8: None,
    }
}

fn record(
    state: EnclaveState,
    measured: Option<Measurements>,
    error: Option<&str>,
) -> HealthRecord {
    HealthRecord::new(HealthReport {
        deployment: "demo".into(),
        instance_id: INSTANCE.into(),
        timestamp_ms: 1_700_000_000_000,
        state,
        desired_state: DesiredState::Running,
        measured_pcrs: measured,
        expected_pcrs: pcrs("aa"),
        restarts: 0,
        last_error: error.map(str::to_string),
        supervisor_version: "0.1.0".into(),
    })
}

type Seen = Arc<Mutex<Vec<(String, String, String, ResourceSignalStatus)>>>;

fn target() -> SignalTarget {
    SignalTarget {
        stack_id: STACK.into(),
        logical_id: "EnclaveInstance".into(),
        instance_id: INSTANCE.into(),
    }
}

/// A client that records every signal; `refuse` answers as CloudFormation does when it is not
/// waiting for one.
fn client(seen: &Seen, refuse: bool) -> Client {
    let log = seen.clone();
    let rule = if refuse {
        mock!(Client::signal_resource).then_error(|| {
            SignalResourceError::generic(
                ErrorMetadata::builder()
                    .code("ValidationError")
                    .message("Stack demo is in UPDATE_COMPLETE state and cannot be signaled")
                    .build(),
            )
        })
    } else {
        mock!(Client::signal_resource)
            .match_requests(move |r| {
                log.lock().unwrap().push((
                    r.stack_name().unwrap_or_default().into(),
                    r.logical_resource_id().unwrap_or_default().into(),
                    r.unique_id().unwrap_or_default().into(),
                    r.status().cloned().unwrap(),
                ));
                true
            })
            .then_output(|| SignalResourceOutput::builder().build())
    };
    mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, &[&rule])
}

#[test]
fn verdicts() {
    assert_eq!(
        verdict(&record(EnclaveState::Healthy, Some(pcrs("aa")), None)),
        Some(Verdict::Success)
    );
    assert_eq!(verdict(&record(EnclaveState::Starting, None, None)), None);
    assert_eq!(
        verdict(&record(
            EnclaveState::Restarting,
            None,
            Some("health check timed out")
        )),
        None,
        "a transient failure is not the verdict yet"
    );
    assert_eq!(
        verdict(&record(
            EnclaveState::Failed,
            None,
            Some("E26: memory below the EIF's minimum")
        )),
        Some(Verdict::Failure(
            "E26: memory below the EIF's minimum".into()
        ))
    );
    let Some(Verdict::Failure(why)) =
        verdict(&record(EnclaveState::Healthy, Some(pcrs("bb")), None))
    else {
        panic!("a PCR mismatch is a failure")
    };
    assert!(
        why.contains(&"bb".repeat(48)) && why.contains(&"aa".repeat(48)),
        "{why}"
    );
}

#[tokio::test]
async fn success_once_per_boot_with_the_instance_id() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("run/enclave-supervisor/rollout-signalled");
    let seen = Seen::default();
    let s = Signaller::new(client(&seen, false), target(), &marker);

    assert_eq!(
        s.observe(&record(EnclaveState::Starting, None, None))
            .await
            .unwrap(),
        None
    );
    let healthy = record(EnclaveState::Healthy, Some(pcrs("aa")), None);
    assert_eq!(s.observe(&healthy).await.unwrap(), Some(Verdict::Success));
    // Later records in the same boot (even a failure) send nothing more, also after a
    // supervisor restart (a new Signaller, same marker).
    assert_eq!(s.observe(&healthy).await.unwrap(), None);
    let again = Signaller::new(client(&seen, false), target(), &marker);
    let failed = record(EnclaveState::Failed, None, Some("gave up"));
    assert_eq!(again.observe(&failed).await.unwrap(), None);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(
            STACK.to_string(),
            "EnclaveInstance".to_string(),
            INSTANCE.to_string(),
            ResourceSignalStatus::Success
        )]
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), INSTANCE);
}

#[tokio::test]
async fn failure_is_signalled_when_the_supervisor_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Seen::default();
    let s = Signaller::new(client(&seen, false), target(), dir.path().join("m"));
    let failed = record(
        EnclaveState::Failed,
        None,
        Some("E36: enclave did not boot"),
    );
    assert_eq!(
        s.observe(&failed).await.unwrap(),
        Some(Verdict::Failure("E36: enclave did not boot".into()))
    );
    assert_eq!(seen.lock().unwrap()[0].3, ResourceSignalStatus::Failure);
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_ends_this_boots_signalling() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("m");
    let s = Signaller::new(client(&Seen::default(), true), target(), &marker);
    let healthy = record(EnclaveState::Healthy, Some(pcrs("aa")), None);
    let err = s.observe(&healthy).await.unwrap_err();
    assert!(
        matches!(err, SignalError::Refused(ref m) if m.contains("cannot be signaled")),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(marker.exists());
    assert_eq!(s.observe(&healthy).await.unwrap(), None);
}
