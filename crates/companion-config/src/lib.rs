//! Configuration files `nitro-provision` writes for its companion binaries. One typed definition
//! serves both sides — the provisioner renders it, `enclave-supervisor` / `enclave-runtime` load
//! it — so the contract cannot drift. Files are JSON with a `format_version`; readers reject
//! unknown fields and versions they do not know.

mod dev_secrets;
pub mod health;
mod runtime;
mod secrets;

pub use dev_secrets::{DevSecrets, DevSecretsError};
/// Which NSM the runtime uses (`nitro_nsm::Backend`, re-exported so writers of the config need
/// not depend on the NSM crate).
pub use nitro_nsm::Backend as NsmBackend;
pub use runtime::{
    Api, App, AwsTestEndpoint, Platform, Readiness, RuntimeLink, SecretsSource, Storage,
    DEFAULT_API_PORT, DEFAULT_PARENT_CID,
};
pub use secrets::{secret_encryption_context, CONTEXT_DEPLOYMENT, CONTEXT_PARAMETER};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The only file format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Where the supervisor's config lives on the parent instance.
pub const SUPERVISOR_CONFIG_PATH: &str = "/etc/nitro-provision/supervisor.json";
/// Where the runtime's config lives inside the enclave image.
pub const RUNTIME_CONFIG_PATH: &str = "/etc/nitro-provision/runtime.json";

/// `enclave-supervisor` on the parent instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    pub format_version: u32,
    pub deployment: String,
    pub region: String,
    pub eif_path: PathBuf,
    pub enclave: EnclaveResources,
    /// Management API; always a loopback address.
    pub listen: String,
    pub watchdog: Watchdog,
    /// Host TCP port → enclave vsock port, one proxy each.
    pub proxies: Vec<Proxy>,
    pub log_group: String,
    pub logging: Logging,
    /// The link to the enclave and the services offered over it (control, logs, credentials,
    /// egress, ingress limits). Defaults: AF_VSOCK, IMDS at its link-local address, an empty
    /// egress allowlist (everything refused).
    #[serde(default)]
    pub link: Link,
    // Lifecycle: what the watchdog, the management API and the nitro-cli driver need.
    /// The PCRs the EIF must measure (nitro-cli's register names), taken from the build. `None`
    /// when rendered without a built EIF: the supervisor then refuses to start any enclave.
    pub expected_measurements: Option<Measurements>,
    /// Persistent state: the operator's stop latch and the API token (`api-token`, 0600).
    pub state_dir: PathBuf,
    pub nitro_cli: NitroCli,
    /// The stack resource whose CreationPolicy / rolling update waits for this instance's
    /// signal. Absent: the supervisor does not signal (and does not ship to CloudWatch unless
    /// `log_group` is set and an instance id is found).
    #[serde(default)]
    pub rollout: Option<RolloutTarget>,
}

/// Where `SignalResource` goes: the stack (its name; the role may signal only this stack) and
/// the Instance or AutoScalingGroup logical id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutTarget {
    pub stack_name: String,
    pub logical_id: String,
}

/// Where the supervisor keeps its state on the parent instance (systemd's `StateDirectory=`).
pub const SUPERVISOR_STATE_DIR: &str = "/var/lib/enclave-supervisor";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveResources {
    pub cpu_count: u32,
    pub memory_mib: u64,
    pub cid: u32,
    pub debug: bool,
}

/// Restart policy: exponential backoff between `backoff_min_secs` and `backoff_max_secs` (±20 %
/// jitter); a started enclave has `boot_grace_secs` to report ready; the backoff resets only
/// after `stable_secs` of uninterrupted health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    pub backoff_min_secs: u32,
    pub backoff_max_secs: u32,
    pub boot_grace_secs: u32,
    /// How often `describe-enclaves` is polled (milliseconds: tests poll faster than 1 s).
    pub poll_interval_ms: u32,
    pub stable_secs: u32,
}

/// Expected measurements in nitro-cli's shape: 96 lowercase hex digits each, PCR8 only for
/// signed EIFs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurements {
    #[serde(rename = "PCR0")]
    pub pcr0: String,
    #[serde(rename = "PCR1")]
    pub pcr1: String,
    #[serde(rename = "PCR2")]
    pub pcr2: String,
    #[serde(rename = "PCR8", default, skip_serializing_if = "Option::is_none")]
    pub pcr8: Option<String>,
}

/// Bounds on each `nitro-cli` call; a call past its bound is killed and counts as transient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NitroCli {
    pub describe_timeout_secs: u32,
    pub terminate_timeout_secs: u32,
    /// `None`: nitro-cli's own boot timeout for the EIF and memory size, plus 30 s.
    pub run_timeout_secs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    pub protocol: String,
    pub host_port: u16,
    pub vsock_port: u32,
}

/// The supervisor's side of the link (`enclave_link`) and its services.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    #[serde(default)]
    pub transport: LinkTransport,
    #[serde(default)]
    pub logs: LogService,
    #[serde(default)]
    pub credentials: CredentialService,
    #[serde(default)]
    pub egress: EgressService,
    #[serde(default)]
    pub ingress: IngressService,
    /// How the ingress and egress pass-throughs move bytes.
    #[serde(default)]
    pub proxy_copy: ProxyCopy,
    /// Local runs only (`nitro-provision run --local`): plain secret values served to a runtime
    /// whose measured config asks for them. Absent (always, on an instance): the service is not
    /// offered at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_secrets: Option<DevSecretsService>,
}

/// The dev secrets service of a local run: the file is read again for every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSecretsService {
    /// A [`DevSecrets`] file.
    pub file: PathBuf,
}

/// How a pass-through moves bytes between its two sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyCopy {
    /// Linux `splice(2)` through a pipe: the bytes never enter user space (the buffered copy
    /// elsewhere, or when no pipe can be made).
    #[default]
    Splice,
    /// A user-space buffer per direction: the escape hatch for a kernel whose splice misbehaves.
    Buffered,
}

/// How the supervisor reaches the enclave; service ports are fixed (`enclave_link::ports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LinkTransport {
    /// AF_VSOCK: listen on the services' ports, connect to `enclave.cid` (production). A struct
    /// variant so that unknown fields are refused.
    Vsock {},
    /// vhost-device-vsock's unix-socket backend (QEMU): listen on `PATH_PORT`, connect through
    /// `PATH` with `CONNECT PORT`.
    VhostUser { path: PathBuf },
    /// Unix sockets `listen_prefix_PORT` / `connect_prefix_PORT` (tests).
    Unix {
        listen_prefix: PathBuf,
        connect_prefix: PathBuf,
    },
    /// TCP (tests, laptops): vsock port P is TCP port `base + P mod 65536`; `listen` and
    /// `connect` are `IP:BASE` of this side and of the enclave's.
    Tcp { listen: String, connect: String },
}

/// Enclave log records, re-logged by the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogService {
    /// Records waiting to be re-logged; beyond it they are dropped and counted.
    #[serde(default = "default_log_buffer")]
    pub buffer_records: u32,
}

/// The instance role's credentials, from IMDSv2, served to the enclave's CID only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialService {
    /// `http://HOST[:PORT]` of the instance metadata service.
    #[serde(default = "default_imds_endpoint")]
    pub imds_endpoint: String,
    /// TTL asked for an IMDSv2 session token (1–21600).
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u32,
    /// Credentials expiring within this are fetched again.
    #[serde(default = "default_refresh_before")]
    pub refresh_before_secs: u32,
    /// Per IMDS request.
    #[serde(default = "default_imds_timeout")]
    pub timeout_ms: u32,
}

/// TCP pass-through from the enclave to allowlisted endpoints (TLS stays end to end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressService {
    /// Exact host names (case-insensitive) or IP literals with their port; anything else is
    /// refused and counted.
    #[serde(default)]
    pub allowlist: Vec<EgressTarget>,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u32,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressTarget {
    pub host: String,
    pub port: u16,
}

/// Host TCP → enclave vsock proxies (`proxies`): where they listen and their limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressService {
    /// Address the host ports are bound on.
    #[serde(default = "default_ingress_listen")]
    pub listen: String,
    /// Concurrent connections per port; more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// A connection with no byte in either direction for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u32,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u32,
}

impl Default for LinkTransport {
    fn default() -> Self {
        LinkTransport::Vsock {}
    }
}

fn default_log_buffer() -> u32 {
    4096
}
fn default_imds_endpoint() -> String {
    "http://169.254.169.254".into()
}
fn default_token_ttl() -> u32 {
    21_600
}
fn default_refresh_before() -> u32 {
    300
}
fn default_imds_timeout() -> u32 {
    2000
}
fn default_max_connections() -> u32 {
    1024
}
fn default_connect_timeout() -> u32 {
    5
}
fn default_idle_timeout() -> u32 {
    300
}
fn default_ingress_listen() -> String {
    "0.0.0.0".into()
}

impl Default for LogService {
    fn default() -> Self {
        LogService {
            buffer_records: default_log_buffer(),
        }
    }
}

impl Default for CredentialService {
    fn default() -> Self {
        CredentialService {
            imds_endpoint: default_imds_endpoint(),
            token_ttl_secs: default_token_ttl(),
            refresh_before_secs: default_refresh_before(),
            timeout_ms: default_imds_timeout(),
        }
    }
}

impl Default for EgressService {
    fn default() -> Self {
        EgressService {
            allowlist: Vec::new(),
            max_connections: default_max_connections(),
            connect_timeout_secs: default_connect_timeout(),
            idle_timeout_secs: default_idle_timeout(),
        }
    }
}

impl Default for IngressService {
    fn default() -> Self {
        IngressService {
            listen: default_ingress_listen(),
            max_connections: default_max_connections(),
            idle_timeout_secs: default_idle_timeout(),
            connect_timeout_secs: default_connect_timeout(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    pub level: String,
    pub format: String,
}

/// `enclave-runtime` inside the enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    pub format_version: u32,
    pub deployment: String,
    pub region: String,
    /// SSM parameter → environment variable of the application.
    pub secrets: Vec<Secret>,
    pub storage_prefix: String,
    pub logging: Logging,
    /// Refuses debug-mode (all-zero PCR0) attestation, the NSM simulator, simulated platform
    /// checks, non-vsock links and test AWS endpoints. Omitted means `true`.
    #[serde(default = "runtime::default_true")]
    pub production: bool,
    /// The deployment's KMS key (ARN, id or `alias/NAME`): secrets must decrypt under it and
    /// sealed storage's data keys come from it.
    pub kms_key: String,
    #[serde(default = "device_nsm")]
    pub nsm: nitro_nsm::Backend,
    #[serde(default)]
    pub platform: Platform,
    #[serde(default)]
    pub link: RuntimeLink,
    #[serde(default)]
    pub app: App,
    #[serde(default)]
    pub api: Api,
    /// None: the storage and dynamic-secret endpoints answer 503.
    #[serde(default)]
    pub storage: Option<Storage>,
    /// Enclave vsock port N is copied to 127.0.0.1:N.
    #[serde(default)]
    pub ingress_ports: Vec<u16>,
    /// Application and runtime lines go to the supervisor's log service; off, they stay on the
    /// enclave console (readable only in debug mode).
    #[serde(default = "runtime::default_true")]
    pub log_forwarding: bool,
    #[serde(default)]
    pub aws_test_endpoint: Option<AwsTestEndpoint>,
    /// Where `secrets` come from: KMS (always in production), or the local supervisor's dev
    /// secrets file in a local run.
    #[serde(default, skip_serializing_if = "SecretsSource::is_kms")]
    pub secrets_source: SecretsSource,
}

fn device_nsm() -> nitro_nsm::Backend {
    nitro_nsm::Backend::Device {}
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub parameter: String,
    pub env: String,
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}, column {column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: format_version {found} is not supported (this build reads {FORMAT_VERSION}); upgrade the binary", path.display())]
    Version { path: PathBuf, found: u32 },
}

/// Implemented by the config files above: they share loading and version checks.
pub trait ConfigFile: Serialize + for<'de> Deserialize<'de> {
    fn format_version(&self) -> u32;

    /// Reads and checks a config file.
    fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parsed: Self = serde_json::from_str(&text).map_err(|e| LoadError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        match parsed.format_version() {
            FORMAT_VERSION => Ok(parsed),
            found => Err(LoadError::Version {
                path: path.to_path_buf(),
                found,
            }),
        }
    }

    /// Pretty JSON, as written to disk.
    fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string keys, no floats.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl ConfigFile for SupervisorConfig {
    fn format_version(&self) -> u32 {
        self.format_version
    }
}

impl ConfigFile for RuntimeConfig {
    fn format_version(&self) -> u32 {
        self.format_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SupervisorConfig {
        SupervisorConfig {
            format_version: FORMAT_VERSION,
            deployment: "demo".into(),
            region: "us-east-1".into(),
            eif_path: "/var/lib/nitro-provision/enclave.eif".into(),
            enclave: EnclaveResources {
                cpu_count: 2,
                memory_mib: 1024,
                cid: 16,
                debug: false,
            },
            listen: "127.0.0.1:8443".into(),
            watchdog: Watchdog {
                backoff_min_secs: 1,
                backoff_max_secs: 60,
                boot_grace_secs: 30,
                poll_interval_ms: 5000,
                stable_secs: 120,
            },
            proxies: vec![Proxy {
                protocol: "tcp".into(),
                host_port: 443,
                vsock_port: 443,
            }],
            log_group: "/nitro-provision/demo".into(),
            logging: Logging {
                level: "info".into(),
                format: "json".into(),
            },
            link: Link {
                transport: LinkTransport::VhostUser {
                    path: "/run/vm4.vsock".into(),
                },
                egress: EgressService {
                    allowlist: vec![EgressTarget {
                        host: "kms.us-east-1.amazonaws.com".into(),
                        port: 443,
                    }],
                    ..EgressService::default()
                },
                ..Link::default()
            },
            expected_measurements: Some(Measurements {
                pcr0: "a".repeat(96),
                pcr1: "b".repeat(96),
                pcr2: "c".repeat(96),
                pcr8: None,
            }),
            state_dir: SUPERVISOR_STATE_DIR.into(),
            nitro_cli: NitroCli {
                describe_timeout_secs: 10,
                terminate_timeout_secs: 30,
                run_timeout_secs: None,
            },
            rollout: None,
        }
    }

    fn parse(text: &str) -> Result<SupervisorConfig, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn link_defaults_and_transports() {
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        v.as_object_mut().unwrap().remove("link");
        let c = parse(&v.to_string()).unwrap();
        assert_eq!(c.link, Link::default());
        assert_eq!(c.link.transport, LinkTransport::Vsock {});
        assert_eq!(c.link.credentials.imds_endpoint, "http://169.254.169.254");
        assert!(c.link.egress.allowlist.is_empty());
        assert_eq!(c.link.dev_secrets, None);
        assert!(!sample().to_json().contains("dev_secrets"));
        v["link"] = serde_json::json!({"transport": {"type": "tcp", "listen": "127.0.0.1:40000", "connect": "127.0.0.1:41000"}});
        let c = parse(&v.to_string()).unwrap();
        assert_eq!(
            c.link.transport,
            LinkTransport::Tcp {
                listen: "127.0.0.1:40000".into(),
                connect: "127.0.0.1:41000".into()
            }
        );
    }

    #[test]
    fn link_rejects_unknown_fields_and_transports() {
        let base: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        let cases = [
            (
                serde_json::json!({"surprise": 1}),
                "unknown field `surprise`",
            ),
            (
                serde_json::json!({"transport": {"type": "vsock", "cid": 3}}),
                "unknown field `cid`",
            ),
            (
                serde_json::json!({"transport": {"type": "vhost_user", "path": "/x", "port": 1}}),
                "unknown field `port`",
            ),
            (
                serde_json::json!({"transport": {"type": "vhost_user"}}),
                "missing field `path`",
            ),
            (
                serde_json::json!({"transport": {"type": "carrier_pigeon"}}),
                "unknown variant `carrier_pigeon`",
            ),
            (
                serde_json::json!({"egress": {"allowlist": [{"host": "a", "port": 443, "tls": true}]}}),
                "unknown field `tls`",
            ),
            (
                serde_json::json!({"egress": {"allowlist": [{"host": "a", "port": 70000}]}}),
                "invalid value",
            ),
            (
                serde_json::json!({"ingress": {"idle_timeout": 5}}),
                "unknown field `idle_timeout`",
            ),
            (
                serde_json::json!({"credentials": {"imds": "http://x"}}),
                "unknown field `imds`",
            ),
            (
                serde_json::json!({"logs": {"buffer": 1}}),
                "unknown field `buffer`",
            ),
            (
                serde_json::json!({"dev_secrets": {"file": "/x", "values": {"A": "1"}}}),
                "unknown field `values`",
            ),
        ];
        for (link, expected) in cases {
            let mut v = base.clone();
            v["link"] = link.clone();
            let err = parse(&v.to_string()).unwrap_err();
            assert!(err.contains(expected), "{link}: {err}");
        }
    }

    #[test]
    fn round_trips_and_rejects_other_versions_and_fields() {
        let dir = std::env::temp_dir().join(format!("companion-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        std::fs::write(&path, sample().to_json()).unwrap();
        assert_eq!(SupervisorConfig::load(&path).unwrap(), sample());

        let mut v2 = sample();
        v2.format_version = 2;
        std::fs::write(&path, v2.to_json()).unwrap();
        assert!(matches!(
            SupervisorConfig::load(&path),
            Err(LoadError::Version { found: 2, .. })
        ));

        let extra = sample().to_json().replacen('{', "{\"surprise\": 1,", 1);
        std::fs::write(&path, extra).unwrap();
        let err = SupervisorConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("unknown field `surprise`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_source_defaults_to_kms_and_is_written_only_for_local_dev() {
        let minimal = serde_json::json!({"format_version": 1, "deployment": "demo",
            "region": "us-east-1", "secrets": [], "storage_prefix": "state/",
            "logging": {"level": "info", "format": "json"}, "kms_key": "alias/demo"});
        let mut c: RuntimeConfig = serde_json::from_value(minimal.clone()).unwrap();
        assert_eq!(c.secrets_source, SecretsSource::Kms);
        assert!(c.production);
        assert!(!c.to_json().contains("secrets_source"));
        c.secrets_source = SecretsSource::LocalDev;
        assert!(c.to_json().contains(r#""secrets_source": "local_dev""#));
        let mut v = minimal;
        v["secrets_source"] = serde_json::json!("plain");
        let err = serde_json::from_value::<RuntimeConfig>(v).unwrap_err();
        assert!(err.to_string().contains("unknown variant `plain`"), "{err}");
    }

    /// A field unknown to a nested section is rejected with its name, wherever it sits.
    #[test]
    fn rejects_unknown_fields_in_lifecycle_sections() {
        let base: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        for (section, field) in [
            ("watchdog", "restart_always"),
            ("nitro_cli", "path"),
            ("expected_measurements", "PCR9"),
        ] {
            let mut v = base.clone();
            v[section][field] = serde_json::json!(1);
            let err = serde_json::from_value::<SupervisorConfig>(v).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("unknown field `{field}`")),
                "{section}.{field}: {err}"
            );
        }
        let mut v = base.clone();
        v["watchdog"]
            .as_object_mut()
            .unwrap()
            .remove("poll_interval_ms");
        let err = serde_json::from_value::<SupervisorConfig>(v).unwrap_err();
        assert!(
            err.to_string().contains("missing field `poll_interval_ms`"),
            "{err}"
        );
        // Rendered without a built EIF: null measurements load (the supervisor refuses later).
        let mut v = base;
        v["expected_measurements"] = serde_json::Value::Null;
        let parsed = serde_json::from_value::<SupervisorConfig>(v.clone()).unwrap();
        assert_eq!(parsed.expected_measurements, None);
        v.as_object_mut().unwrap().remove("state_dir");
        assert!(serde_json::from_value::<SupervisorConfig>(v).is_err());
    }
}
