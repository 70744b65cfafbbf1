//! Health-gated rollout, supervisor side. The stack's CreationPolicy / rolling UpdatePolicy
//! waits for one signal per instance; this crate decides, from the supervisor's own health
//! record, when to send it and which, and sends it at most once per boot (a marker under
//! `/run`, which the kernel empties at every boot), with `UniqueId` = the instance id.
//!
//! SignalResource carries no reason, so the reason for a FAILURE is the health record's
//! `last_error`, which `nitro-provision apply` prints next to the failed signal.

use std::io::ErrorKind;
use std::path::PathBuf;

use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudformation::types::ResourceSignalStatus;
use aws_sdk_cloudformation::Client;
use companion_config::health::{EnclaveState, HealthRecord};

/// Where the once-per-boot marker lives (tmpfs: gone after a reboot, kept across supervisor
/// restarts).
pub const DEFAULT_MARKER: &str = "/run/enclave-supervisor/rollout-signalled";

/// Which resource waits for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalTarget {
    /// The stack's id (ARN), as `AWS::StackId` renders it.
    pub stack_id: String,
    /// The Instance or AutoScalingGroup's logical id.
    pub logical_id: String,
    pub instance_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure(String),
}

impl Verdict {
    fn status(&self) -> ResourceSignalStatus {
        match self {
            Verdict::Success => ResourceSignalStatus::Success,
            Verdict::Failure(_) => ResourceSignalStatus::Failure,
        }
    }
}

/// What the record says about the rollout, or None while it is still undecided (starting,
/// restarting after a transient failure).
pub fn verdict(record: &HealthRecord) -> Option<Verdict> {
    if record.is_healthy() {
        return Some(Verdict::Success);
    }
    let mismatch = match (&record.measured_pcrs, record.state) {
        (Some(m), EnclaveState::Healthy) if m != &record.expected_pcrs => Some(format!(
            "enclave runs PCR0 {} but this release expects {}",
            m.pcr0, record.expected_pcrs.pcr0
        )),
        _ => None,
    };
    if let Some(why) = mismatch {
        return Some(Verdict::Failure(why));
    }
    (record.state == EnclaveState::Failed).then(|| {
        Verdict::Failure(
            record
                .last_error
                .clone()
                .unwrap_or_else(|| "the supervisor gave up on the enclave".into()),
        )
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// CloudFormation is not waiting for this signal (timed out, stack not updating, already
    /// signalled): retrying cannot help.
    #[error("CloudFormation refused the signal: {0}")]
    Refused(String),
    #[error("could not reach CloudFormation: {0}")]
    Unreachable(String),
    #[error("once-per-boot marker {path}: {source}")]
    Marker {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SignalError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SignalError::Unreachable(_))
    }
}

pub struct Signaller {
    client: Client,
    target: SignalTarget,
    marker: PathBuf,
}

impl Signaller {
    pub fn new(client: Client, target: SignalTarget, marker: impl Into<PathBuf>) -> Self {
        Signaller {
            client,
            target,
            marker: marker.into(),
        }
    }

    /// Looks at a new health record; sends the signal it calls for unless this boot already
    /// signalled. Returns what it sent.
    pub async fn observe(&self, record: &HealthRecord) -> Result<Option<Verdict>, SignalError> {
        let Some(verdict) = verdict(record) else {
            return Ok(None);
        };
        if self.already_signalled()? {
            return Ok(None);
        }
        // A refusal also ends this boot's signalling: CloudFormation was not waiting (an
        // instance launched outside a stack operation, or after the timeout).
        let sent = self.send(&verdict).await;
        if matches!(sent, Ok(()) | Err(SignalError::Refused(_))) {
            self.mark()?;
        }
        sent?;
        if let Verdict::Failure(why) = &verdict {
            tracing::error!(instance = %self.target.instance_id, "rollout FAILURE signalled: {why}");
        } else {
            tracing::info!(instance = %self.target.instance_id, "rollout SUCCESS signalled");
        }
        Ok(Some(verdict))
    }

    async fn send(&self, verdict: &Verdict) -> Result<(), SignalError> {
        let result = self
            .client
            .signal_resource()
            .stack_name(&self.target.stack_id)
            .logical_resource_id(&self.target.logical_id)
            .unique_id(&self.target.instance_id)
            .status(verdict.status())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // ValidationError: not in a state that takes signals, or the resource is unknown.
            Err(e) if e.code() == Some("ValidationError") => Err(SignalError::Refused(
                e.message().unwrap_or("ValidationError").to_string(),
            )),
            Err(e) => Err(SignalError::Unreachable(
                DisplayErrorContext(&e).to_string(),
            )),
        }
    }

    fn already_signalled(&self) -> Result<bool, SignalError> {
        match std::fs::metadata(&self.marker) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(source) => Err(self.marker_error(source)),
        }
    }

    fn mark(&self) -> Result<(), SignalError> {
        if let Some(dir) = self.marker.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.marker_error(e))?;
        }
        std::fs::write(&self.marker, &self.target.instance_id).map_err(|e| self.marker_error(e))
    }

    fn marker_error(&self, source: std::io::Error) -> SignalError {
        SignalError::Marker {
            path: self.marker.clone(),
            source,
        }
    }
}
