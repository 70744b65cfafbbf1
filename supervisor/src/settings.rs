//! The configuration checked once and turned into the types the supervisor works with: rules
//! the config's types cannot express (loopback only, hex PCRs, sane bounds) fail here, before
//! anything binds or runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use companion_config::SupervisorConfig;
use nitro_cli_driver::{RunSpec, Timeouts};
use nitro_eif::pcr::{Measurements, Pcr};

/// Watchdog timing, from `watchdog` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogParams {
    pub poll: Duration,
    pub boot_grace: Duration,
    pub stable: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The enclave to run; its name is the deployment's.
    pub spec: RunSpec,
    /// `None` when the config was rendered without a built EIF: nothing is ever started.
    pub expected: Option<Measurements>,
    pub watchdog: WatchdogParams,
    pub state_dir: PathBuf,
    pub timeouts: Timeouts,
}

impl Settings {
    pub fn from_config(c: &SupervisorConfig) -> Result<Self, String> {
        let listen: SocketAddr = c
            .listen
            .parse()
            .map_err(|_| format!("listen `{}` is not an address:port", c.listen))?;
        if !listen.ip().is_loopback() {
            return Err(format!("listen `{}` is not a loopback address", c.listen));
        }
        let w = &c.watchdog;
        if w.backoff_min_secs == 0 {
            return Err("watchdog.backoff_min_secs must be at least 1".into());
        }
        if w.backoff_max_secs < w.backoff_min_secs {
            return Err("watchdog.backoff_max_secs is below backoff_min_secs".into());
        }
        if w.poll_interval_ms < 50 {
            return Err("watchdog.poll_interval_ms must be at least 50".into());
        }
        if w.stable_secs == 0 {
            return Err("watchdog.stable_secs must be at least 1".into());
        }
        if c.enclave.cid < 4 {
            return Err(format!(
                "enclave.cid {} is reserved (CIDs start at 4)",
                c.enclave.cid
            ));
        }
        let t = &c.nitro_cli;
        if t.describe_timeout_secs == 0
            || t.terminate_timeout_secs == 0
            || t.run_timeout_secs == Some(0)
        {
            return Err("nitro_cli timeouts must be at least 1 second".into());
        }
        Ok(Settings {
            listen,
            spec: RunSpec {
                name: c.deployment.clone(),
                eif_path: c.eif_path.clone(),
                cpu_count: c.enclave.cpu_count,
                memory_mib: c.enclave.memory_mib,
                cid: c.enclave.cid,
                debug: c.enclave.debug,
            },
            expected: c.expected_measurements.as_ref().map(expected).transpose()?,
            watchdog: WatchdogParams {
                poll: Duration::from_millis(w.poll_interval_ms.into()),
                boot_grace: Duration::from_secs(w.boot_grace_secs.into()),
                stable: Duration::from_secs(w.stable_secs.into()),
                backoff_min: Duration::from_secs(w.backoff_min_secs.into()),
                backoff_max: Duration::from_secs(w.backoff_max_secs.into()),
            },
            state_dir: c.state_dir.clone(),
            timeouts: Timeouts {
                describe: Duration::from_secs(t.describe_timeout_secs.into()),
                terminate: Duration::from_secs(t.terminate_timeout_secs.into()),
                run: t.run_timeout_secs.map(|s| Duration::from_secs(s.into())),
            },
        })
    }
}

fn expected(m: &companion_config::Measurements) -> Result<Measurements, String> {
    let pcr = |name: &str, v: &str| -> Result<Pcr, String> {
        let p = Pcr::from_hex(v)
            .filter(|_| v.len() == 96)
            .ok_or_else(|| format!("expected_measurements.{name} is not 96 hex digits"))?;
        if p.0 == [0u8; 48] {
            return Err(format!(
                "expected_measurements.{name} is all zeros (what a debug enclave attests, never an image's measurement)"
            ));
        }
        Ok(p)
    };
    Ok(Measurements {
        hash_algorithm: nitro_eif::pcr::HASH_ALGORITHM.into(),
        pcr0: pcr("PCR0", &m.pcr0)?,
        pcr1: pcr("PCR1", &m.pcr1)?,
        pcr2: pcr("PCR2", &m.pcr2)?,
        pcr8: m.pcr8.as_deref().map(|v| pcr("PCR8", v)).transpose()?,
    })
}
