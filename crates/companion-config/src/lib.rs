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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveResources {
    pub cpu_count: u32,
    pub memory_mib: u64,
    pub cid: u32,
    pub debug: bool,
}

/// Restart policy: exponential backoff between `backoff_min_secs` and `backoff_max_secs`; health
/// failures within `boot_grace_secs` of a start do not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    pub backoff_min_secs: u32,
    pub backoff_max_secs: u32,
    pub boot_grace_secs: u32,
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
    /// The image config's `User` (`name`, `uid`, `name:group`, `uid:gid`): the application
    /// runs as it, as under `docker run`. Absent: root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The image config's `WorkingDir`: the application starts there. Absent: `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
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
}
