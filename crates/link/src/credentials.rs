//! The credentials service: the instance role's temporary credentials, which the parent gets from
//! IMDSv2. They give availability, not trust (the parent holds them anyway): secrets still need
//! the enclave's attestation. The enclave side caches them and asks again before they expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::codec::Framed;
use zeroize::Zeroizing;

use crate::frame::{messages, Codec, Limits};
use crate::transport::Transport;
use crate::{ports, LinkError};

messages! {
    /// Frames of the credentials service (kinds 0x30–0x3f).
    CredentialsMsg {
        /// Enclave → parent: send the current credentials.
        0x31 => Request(Request),
        0x32 => Credentials(Credentials),
        /// The parent could not get credentials (IMDS down, no role attached…).
        0x33 => Error(CredentialsError),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {}

/// Temporary credentials of the instance role; secret parts are zeroized when dropped and never
/// printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Zeroizing<String>,
    /// RFC 3339 (`2026-11-20T18:30:00Z`), as IMDS writes it.
    pub expiration: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl Credentials {
    /// When they stop working.
    pub fn expires_at(&self) -> Result<SystemTime, String> {
        humantime::parse_rfc3339_weak(&self.expiration)
            .map_err(|e| format!("expiration `{}`: {e}", self.expiration))
    }

    /// True when they expire within `margin` of `now` (or already did).
    pub fn expires_within(&self, now: SystemTime, margin: Duration) -> bool {
        self.expires_at().map_or(true, |at| {
            at.duration_since(now).map_or(true, |left| left <= margin)
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsError {
    pub message: String,
}

impl Limits for Request {}
impl Limits for CredentialsError {}
impl Limits for Credentials {
    fn check(&self) -> Result<(), String> {
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err("credentials without a key".into());
        }
        self.expires_at().map(|_| ())
    }
}

/// The time, behind a trait so that expiry decisions are testable without waiting.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Enclave side of the credentials service: one short connection per request, cached until
/// `refresh_before` ahead of the expiration.
pub struct CredentialsClient {
    transport: Arc<dyn Transport>,
    refresh_before: Duration,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    cache: tokio::sync::Mutex<Option<Arc<Credentials>>>,
}

impl CredentialsClient {
    pub fn new(transport: Arc<dyn Transport>, refresh_before: Duration) -> Self {
        Self::with_clock(transport, refresh_before, Arc::new(SystemClock))
    }

    pub fn with_clock(
        transport: Arc<dyn Transport>,
        refresh_before: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        CredentialsClient {
            transport,
            refresh_before,
            timeout: Duration::from_secs(10),
            clock,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Cached credentials, or fresh ones when they expire within `refresh_before`. When asking
    /// fails, still-valid cached credentials are returned.
    pub async fn get(&self) -> Result<Arc<Credentials>, LinkError> {
        let mut cache = self.cache.lock().await;
        let now = self.clock.now();
        if let Some(c) = cache.as_ref() {
            if !c.expires_within(now, self.refresh_before) {
                return Ok(c.clone());
            }
        }
        match self.fetch().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *cache = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match cache.as_ref() {
                Some(c) if !c.expires_within(now, Duration::ZERO) => Ok(c.clone()),
                _ => Err(e),
            },
        }
    }

    /// Asks the parent, bypassing the cache.
    pub async fn fetch(&self) -> Result<Credentials, LinkError> {
        tokio::time::timeout(self.timeout, self.request())
            .await
            .map_err(|_| LinkError::Timeout("credentials"))?
    }

    async fn request(&self) -> Result<Credentials, LinkError> {
        let stream = self.transport.connect(ports::CREDENTIALS).await?;
        let mut framed = Framed::new(stream, Codec::<CredentialsMsg>::default());
        framed.send(CredentialsMsg::Request(Request {})).await?;
        match framed.next().await {
            None => Err(LinkError::Closed),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(CredentialsMsg::Credentials(c))) => Ok(c),
            Some(Ok(CredentialsMsg::Error(e))) => Err(LinkError::Refused(e.message)),
            Some(Ok(other)) => Err(LinkError::Unexpected(format!("{other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(expiration: &str) -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Zeroizing::new("SeCrEtKeY".into()),
            session_token: Zeroizing::new("SeSsIoNtOkEn".into()),
            expiration: expiration.into(),
        }
    }

    #[test]
    fn expiry_margin_and_redacted_debug() {
        let c = creds("2030-01-01T00:10:00Z");
        let at = humantime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        assert!(!c.expires_within(at, Duration::from_secs(300)));
        assert!(c.expires_within(at, Duration::from_secs(600)));
        assert!(c.expires_within(at + Duration::from_secs(3600), Duration::ZERO));
        assert!(creds("soon").check().is_err());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SeCrEt") && !dbg.contains("SeSsIoN"), "{dbg}");
    }
}
