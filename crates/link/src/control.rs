//! The control service: what the runtime reports about the enclave's life. Boot stages, readiness,
//! fatal errors and counters flow enclave → parent; the application's final exit status and a
//! fatal error are acknowledged by the parent, because AWS's init reboots the enclave as soon as
//! the runtime exits and drops that status otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::codec::Framed;

use crate::frame::{messages, Codec, Limits};
use crate::transport::{Stream, Transport};
use crate::{ports, LinkError};

/// Longest stage name and counter name.
pub const MAX_NAME: usize = 64;
/// Longest stage detail or fatal message.
pub const MAX_TEXT: usize = 4096;
/// Most counters in one report.
pub const MAX_COUNTERS: usize = 64;

messages! {
    /// Frames of the control service (kinds 0x10–0x1f).
    ControlMsg {
        /// A boot stage began or finished.
        0x11 => Stage(Stage),
        /// The runtime and the application are ready.
        0x12 => Ready(Ready),
        /// A fatal error; acknowledged by the parent.
        0x13 => Fatal(Fatal),
        /// Counters since the runtime started.
        0x14 => Counters(Counters),
        /// The application's final exit status; acknowledged by the parent.
        0x15 => AppExited(AppExited),
        /// Parent → enclave: the preceding fatal error or exit status was recorded.
        0x1f => Ack(Ack),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fatal {
    pub stage: String,
    pub message: String,
}

/// Monotonic counters keyed by Simple Enclave's names (`http_requests`, `kms_operations`, …).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    pub values: BTreeMap<String, u64>,
}

/// Exit code, or the signal that ended the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppExited {
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {}

fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_NAME {
        return Err(format!("{what} must be 1–{MAX_NAME} bytes"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(format!("{what} `{s}` may hold only a-z, 0-9, `_` and `-`"));
    }
    Ok(())
}

fn check_text(what: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_TEXT {
        return Err(format!("{what} is longer than {MAX_TEXT} bytes"));
    }
    Ok(())
}

impl Limits for Stage {
    fn check(&self) -> Result<(), String> {
        check_name("stage", &self.stage)?;
        self.detail
            .as_deref()
            .map_or(Ok(()), |d| check_text("detail", d))
    }
}
impl Limits for Ready {}
impl Limits for Ack {}
impl Limits for Fatal {
    fn check(&self) -> Result<(), String> {
        check_name("stage", &self.stage)?;
        check_text("message", &self.message)
    }
}
impl Limits for Counters {
    fn check(&self) -> Result<(), String> {
        if self.values.len() > MAX_COUNTERS {
            return Err(format!("more than {MAX_COUNTERS} counters"));
        }
        self.values
            .keys()
            .try_for_each(|k| check_name("counter", k))
    }
}
impl Limits for AppExited {
    fn check(&self) -> Result<(), String> {
        match (self.code, self.signal) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err("exactly one of code and signal must be set".into()),
        }
    }
}

/// Enclave side of the control service: one connection, reports in order.
pub struct ControlClient {
    framed: Framed<Stream, Codec<ControlMsg>>,
}

impl ControlClient {
    /// Connects to the parent's control port.
    pub async fn connect(transport: &dyn Transport) -> Result<Self, LinkError> {
        let stream = transport.connect(ports::CONTROL).await?;
        Ok(ControlClient {
            framed: Framed::new(stream, Codec::default()),
        })
    }

    async fn send(&mut self, msg: ControlMsg) -> Result<(), LinkError> {
        self.framed.send(msg).await?;
        Ok(())
    }

    /// Reports that a boot stage began or finished.
    pub async fn stage(&mut self, stage: &str, detail: Option<&str>) -> Result<(), LinkError> {
        self.send(ControlMsg::Stage(Stage {
            stage: stage.into(),
            detail: detail.map(Into::into),
        }))
        .await
    }

    /// Reports readiness (the application's readiness probe passed).
    pub async fn ready(&mut self) -> Result<(), LinkError> {
        self.send(ControlMsg::Ready(Ready {})).await
    }

    /// Reports the runtime's counters (monotonic since it started).
    pub async fn counters(&mut self, values: BTreeMap<String, u64>) -> Result<(), LinkError> {
        self.send(ControlMsg::Counters(Counters { values })).await
    }

    /// Reports a fatal error and waits up to `ack_timeout` for the parent to record it.
    pub async fn fatal(
        &mut self,
        stage: &str,
        message: &str,
        ack_timeout: Duration,
    ) -> Result<(), LinkError> {
        let message: String = truncate(message, MAX_TEXT).into();
        self.send(ControlMsg::Fatal(Fatal {
            stage: stage.into(),
            message,
        }))
        .await?;
        self.wait_ack(ack_timeout).await
    }

    /// Reports the application's exit status and waits up to `ack_timeout` for the parent to
    /// record it (the runtime exits right after, and init reboots the enclave).
    pub async fn app_exited(
        &mut self,
        code: Option<i32>,
        signal: Option<i32>,
        ack_timeout: Duration,
    ) -> Result<(), LinkError> {
        self.send(ControlMsg::AppExited(AppExited { code, signal }))
            .await?;
        self.wait_ack(ack_timeout).await
    }

    async fn wait_ack(&mut self, timeout: Duration) -> Result<(), LinkError> {
        match tokio::time::timeout(timeout, self.framed.next()).await {
            Err(_) => Err(LinkError::Timeout("acknowledgement")),
            Ok(None) => Err(LinkError::Closed),
            Ok(Some(Ok(ControlMsg::Ack(_)))) => Ok(()),
            Ok(Some(Ok(other))) => Err(LinkError::Unexpected(format!("{other:?}"))),
            Ok(Some(Err(e))) => Err(e.into()),
        }
    }
}

/// The longest prefix of `s` within `max` bytes that ends on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(Stage {
            stage: "App Start".into(),
            detail: None
        }
        .check()
        .is_err());
        assert!(AppExited {
            code: Some(1),
            signal: Some(9)
        }
        .check()
        .is_err());
        assert!(AppExited {
            code: None,
            signal: None
        }
        .check()
        .is_err());
        let many = (0..=MAX_COUNTERS).map(|i| (format!("c{i}"), 1)).collect();
        assert!(Counters { values: many }.check().is_err());
        assert_eq!(truncate("héllo", 2), "h");
    }
}
