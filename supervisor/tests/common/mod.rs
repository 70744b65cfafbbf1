//! A fake enclave peer for the services' tests: the supervisor's services on the unix transport
//! in a private directory, and the enclave's side of the same link through `enclave_link`'s own
//! clients.
#![allow(dead_code)] // each test binary uses a part

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use companion_config::*;
use enclave_link::transport::Unix;
use enclave_link::Transport;
use enclave_supervisor::services::{EnclaveEvent, ServiceMetrics, Services};
use tokio::sync::mpsc;

/// A config whose link runs over unix sockets in `dir` (`parent_PORT` / `enclave_PORT`).
pub fn config(dir: &Path) -> SupervisorConfig {
    SupervisorConfig {
        format_version: FORMAT_VERSION,
        deployment: "demo".into(),
        region: "us-east-1".into(),
        eif_path: "/nonexistent.eif".into(),
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
    }
}

/// The enclave's view of the unix link in `dir`.
pub fn enclave_side(dir: &Path) -> Arc<dyn Transport> {
    Arc::new(Unix {
        listen_prefix: dir.join("enclave"),
        connect_prefix: dir.join("parent"),
    })
}

pub struct Running {
    pub services: Services,
    pub events: mpsc::Receiver<EnclaveEvent>,
    pub metrics: Arc<ServiceMetrics>,
}

pub async fn start(config: &SupervisorConfig) -> Running {
    let (tx, events) = mpsc::channel(1024);
    let metrics = Arc::new(ServiceMetrics::new());
    let services = Services::start(config, tx, metrics.clone())
        .await
        .expect("services start");
    Running {
        services,
        events,
        metrics,
    }
}

impl Running {
    /// The next event, or a panic after 10 s.
    pub async fn next_event(&mut self) -> EnclaveEvent {
        tokio::time::timeout(Duration::from_secs(10), self.events.recv())
            .await
            .expect("an event within 10 s")
            .expect("events channel open")
    }

    /// The services' metrics in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        self.metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode metrics");
        out
    }

    /// The value of one sample (`name{labels}` exactly as exposed), 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        self.metrics_text()
            .lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(name, _)| *name == sample)
            .map_or(0.0, |(_, v)| v.parse().expect("numeric sample"))
    }

    /// Waits (up to 10 s) until `sample` reaches `value`.
    pub async fn wait_metric(&self, sample: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.metric(sample) < value {
            assert!(
                Instant::now() < deadline,
                "{sample} stayed at {} (want {value})\n{}",
                self.metric(sample),
                self.metrics_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
