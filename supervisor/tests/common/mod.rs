//! Test support for the supervisor, shared by every test binary: one config whose link runs over
//! unix sockets in a private directory, the enclave's view of that link, and (submodules) the
//! in-process services, the real binary against the stand-in `nitro-cli`, the fake runtime that
//! reports over the real control service, an HTTP client and a strict OpenMetrics parser.
//! Waiting is always for a condition, with a deadline.
#![allow(dead_code, unused_imports)] // each test binary uses a part (and its re-exports)

pub mod binary;
pub mod http;
pub mod openmetrics;
pub mod runtime;
pub mod services;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use companion_config::*;
use enclave_link::transport::Unix;
use enclave_link::Transport;

pub use binary::{build_eif, pid_alive, Env, Supervisor};
pub use http::{http, Response};
pub use runtime::Runtime;
pub use services::{start, Running};

/// Generous: the machine running the tests may be loaded. Never a timing assertion.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A complete config for tests in `dir`: the link over unix sockets (`parent_PORT` /
/// `enclave_PORT`), ingress on loopback, IMDS "down", the API on a free loopback port, a fast
/// watchdog (100 ms polls, 1–4 s backoff, 2 s of health resets it), short nitro-cli bounds, state
/// in `dir/state`. No expected measurements: [`Env`] sets those from the EIF it builds.
pub fn config(dir: &Path) -> SupervisorConfig {
    SupervisorConfig {
        format_version: FORMAT_VERSION,
        deployment: "demo".into(),
        region: "us-east-1".into(),
        eif_path: dir.join("demo.eif"),
        enclave: EnclaveResources {
            cpu_count: 2,
            memory_mib: 512,
            cid: 16,
            debug: false,
        },
        listen: "127.0.0.1:0".into(),
        watchdog: Watchdog {
            backoff_min_secs: 1,
            backoff_max_secs: 4,
            boot_grace_secs: 120,
            poll_interval_ms: 100,
            stable_secs: 2,
        },
        proxies: vec![],
        log_group: "/nitro-provision/demo".into(),
        logging: Logging {
            level: "info".into(),
            format: "json".into(),
        },
        link: Link {
            transport: LinkTransport::Unix {
                listen_prefix: dir.join("parent"),
                connect_prefix: dir.join("enclave"),
            },
            ingress: IngressService {
                listen: "127.0.0.1".into(),
                ..IngressService::default()
            },
            credentials: CredentialService {
                // Nothing listens on the discard port: IMDS is "down" unless a test starts one.
                imds_endpoint: "http://127.0.0.1:9".into(),
                ..CredentialService::default()
            },
            ..Link::default()
        },
        expected_measurements: None,
        state_dir: dir.join("state"),
        nitro_cli: NitroCli {
            describe_timeout_secs: 2,
            terminate_timeout_secs: 10,
            run_timeout_secs: Some(10),
        },
        rollout: None,
    }
}

/// The enclave's view of the unix link in `dir`.
pub fn enclave_side(dir: &Path) -> Arc<dyn Transport> {
    Arc::new(Unix {
        listen_prefix: dir.join("enclave"),
        connect_prefix: dir.join("parent"),
    })
}
