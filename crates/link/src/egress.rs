//! The egress service: TCP pass-through from the enclave to an allowlisted endpoint. The enclave
//! names `host:port` in one handshake frame; the parent checks its allowlist, resolves the name
//! (per connection) and dials, answers with one [`Reply`] frame, and from then on the connection
//! carries raw bytes — the enclave's TLS session, which the parent cannot read.

use std::time::Duration;

use crate::frame::{messages, read_one, write_one, Limits};
use crate::transport::{Stream, Transport};
use crate::{ports, LinkError};
use serde::{Deserialize, Serialize};

/// Longest host name (DNS limit).
pub const MAX_HOST: usize = 253;

messages! {
    /// Frames of the egress handshake (kinds 0x40–0x4f).
    EgressMsg {
        /// Enclave → parent: dial this target.
        0x41 => Connect(Connect),
        /// Parent → enclave: the outcome; raw bytes follow when allowed.
        0x42 => Reply(Reply),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub outcome: Outcome,
}

/// The parent's answer to a [`Connect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Connected: raw bytes follow.
    Allowed,
    /// Not in the allowlist (or over the connection limit).
    Refused { reason: String },
    /// Allowed, but resolving or dialing failed.
    DialFailed { message: String },
}

impl Limits for Connect {
    fn check(&self) -> Result<(), String> {
        if self.host.is_empty() || self.host.len() > MAX_HOST {
            return Err(format!("host must be 1–{MAX_HOST} bytes"));
        }
        if self.port == 0 {
            return Err("port 0".into());
        }
        Ok(())
    }
}
impl Limits for Reply {}

/// Enclave side: opens a pass-through connection to `host:port` through the parent. Returns the
/// raw stream to run TLS over.
pub async fn connect(
    transport: &dyn Transport,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Stream, LinkError> {
    tokio::time::timeout(timeout, async {
        let mut s = transport.connect(ports::EGRESS).await?;
        let hello = EgressMsg::Connect(Connect {
            host: host.into(),
            port,
        });
        write_one(&mut s, &hello).await?;
        match read_one::<EgressMsg, _>(&mut s).await? {
            EgressMsg::Reply(Reply { outcome }) => match outcome {
                Outcome::Allowed => Ok(s),
                Outcome::Refused { reason } => Err(LinkError::Refused(reason)),
                Outcome::DialFailed { message } => Err(LinkError::DialFailed(message)),
            },
            other => Err(LinkError::Unexpected(format!("{other:?}"))),
        }
    })
    .await
    .map_err(|_| LinkError::Timeout("egress handshake"))?
}
