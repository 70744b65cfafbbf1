//! The supervisor's link services in-process, on the unix link of [`super::config`], with the
//! events the watchdog would receive and the services' own metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use companion_config::SupervisorConfig;
use enclave_supervisor::services::{EnclaveEvent, ServiceMetrics, Services};
use tokio::sync::mpsc;

use super::openmetrics;

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

    /// The services' metrics in the text format the supervisor serves.
    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        self.metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode metrics");
        out
    }

    /// The value of one sample (`name{labels}` as exposed), 0 when absent; the whole exposition
    /// must parse as OpenMetrics.
    pub fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics_text();
        let families = openmetrics::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        openmetrics::sample_value(&families, sample).unwrap_or(0.0)
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
