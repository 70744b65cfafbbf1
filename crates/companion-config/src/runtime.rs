//! The runtime's measured choices beyond the deployment's identity: which NSM and platform checks
//! run, how the link is reached, the application's process settings, the internal API, ingress
//! and test-only AWS endpoints. Every default is the production one, so an omitted field never
//! weakens a production image.

use serde::{Deserialize, Serialize};

use crate::LinkTransport;

/// The parent instance's CID as a Nitro Enclave sees it.
pub const DEFAULT_PARENT_CID: u32 = 3;
/// The internal API's port on 127.0.0.1 (documented in the README; the app finds it in
/// `NITRO_API_URL`).
pub const DEFAULT_API_PORT: u16 = 7070;

/// Hardware checks of the boot sequence.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Platform {
    /// The enclave's kernel: `lo` brought up by ioctl, hwrng and clocksource read from sysfs,
    /// the clock compared with `/dev/ptp0` (ptp_kvm).
    #[default]
    Nitro,
    /// Tests outside an enclave: the values below stand in for sysfs, `lo` is left alone.
    /// Refused with `production: true`.
    Simulated {
        hwrng: String,
        clocksource: String,
        #[serde(default)]
        clock_offset_ms: i64,
    },
}

/// The link as the runtime sees it: the transport, and the parent's CID for vsock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeLink {
    #[serde(default)]
    pub transport: LinkTransport,
    /// 3 on Nitro, 2 under QEMU with vhost-device-vsock.
    #[serde(default = "default_parent_cid")]
    pub parent_cid: u32,
    /// How long `fatal` and `app_exited` wait for the supervisor's acknowledgement.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_ms: u32,
}

/// How the application runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// The image's `User`: `name`, `uid`, `name:group` or `uid:gid`; none keeps the runtime's.
    #[serde(default)]
    pub user: Option<String>,
    /// The image's `WorkingDir`; none is `/`.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Between forwarding SIGTERM/SIGINT and SIGKILL.
    #[serde(default = "default_stop_grace")]
    pub stop_grace_secs: u32,
    /// Checked before `ready` is reported; none reports ready once the app started.
    #[serde(default)]
    pub readiness: Option<Readiness>,
}

/// The application's readiness probe, on 127.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Readiness {
    /// A TCP connect succeeds.
    Tcp {
        port: u16,
        #[serde(default = "default_probe_timeout")]
        timeout_secs: u32,
    },
    /// `GET path` answers 2xx.
    Http {
        port: u16,
        path: String,
        #[serde(default = "default_probe_timeout")]
        timeout_secs: u32,
    },
}

/// The internal API for the application (attestation, sealed storage, dynamic secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    #[serde(default = "default_api_port")]
    pub port: u16,
}

/// Where sealed storage and dynamic secrets live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub bucket: String,
}

/// Where the runtime gets the values of `secrets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretsSource {
    /// SSM ciphertexts decrypted by KMS with the enclave's attestation.
    #[default]
    Kms,
    /// Plain values from the local supervisor's dev secrets file (`nitro-provision run --local`).
    /// Refused with `production: true`; the supervisor serves them only when its config has a
    /// dev secrets file, which only a local run writes.
    LocalDev,
}

impl SecretsSource {
    pub fn is_kms(&self) -> bool {
        *self == SecretsSource::Kms
    }
}

/// Tests only: a local AWS endpoint and the root of its TLS certificate. Refused with
/// `production: true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsTestEndpoint {
    /// `https://localhost:PORT`.
    pub endpoint_url: String,
    pub root_pem: String,
}

impl Default for RuntimeLink {
    fn default() -> Self {
        RuntimeLink {
            transport: LinkTransport::default(),
            parent_cid: default_parent_cid(),
            ack_timeout_ms: default_ack_timeout(),
        }
    }
}

impl Default for App {
    fn default() -> Self {
        App {
            user: None,
            working_dir: None,
            stop_grace_secs: default_stop_grace(),
            readiness: None,
        }
    }
}

impl Default for Api {
    fn default() -> Self {
        Api {
            port: default_api_port(),
        }
    }
}

pub(crate) fn default_true() -> bool {
    true
}
fn default_parent_cid() -> u32 {
    DEFAULT_PARENT_CID
}
fn default_ack_timeout() -> u32 {
    5000
}
fn default_stop_grace() -> u32 {
    10
}
fn default_probe_timeout() -> u32 {
    60
}
fn default_api_port() -> u16 {
    DEFAULT_API_PORT
}
