//! Configuration files `nitro-provision` writes for its companion binaries. One typed definition
//! serves both sides — the provisioner renders it, `enclave-supervisor` / `enclave-runtime` load
//! it — so the contract cannot drift. Files are JSON with a `format_version`; readers reject
//! unknown fields and versions they do not know.

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
    // Lifecycle: what the watchdog, the management API and the nitro-cli driver need.
    /// The PCRs the EIF must measure (nitro-cli's register names), taken from the build. `None`
    /// when rendered without a built EIF: the supervisor then refuses to start any enclave.
    pub expected_measurements: Option<Measurements>,
    /// Persistent state: the operator's stop latch and the API token (`api-token`, 0600).
    pub state_dir: PathBuf,
    pub nitro_cli: NitroCli,
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
