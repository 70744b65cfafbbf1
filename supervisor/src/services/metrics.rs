//! Metric handles of the services. The registry belongs to the supervisor's metrics module, which
//! calls [`ServiceMetrics::register`] on its root registry (names carry their `nitro_` prefix;
//! prometheus-client appends `_total` to counters).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameLabels {
    pub service: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyLabels {
    /// `egress` or `ingress:PORT`.
    pub proxy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyResultLabels {
    pub proxy: String,
    /// `ok`, `refused`, `dial_failed`, `limit`, `idle_timeout`, `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyBytesLabels {
    pub proxy: String,
    /// `to_enclave` or `from_enclave`.
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SideLabels {
    /// `host` (the supervisor's buffer was full) or `enclave` (reported by the runtime).
    pub side: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Everything the services count.
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    /// Accepted link connections by service.
    pub link_connections: Family<ServiceLabels, Counter>,
    /// Link connections refused because the peer is not the enclave.
    pub link_peers_refused: Family<ServiceLabels, Counter>,
    /// Frames that closed their connection, by service and reason.
    pub frames_rejected: Family<FrameLabels, Counter>,
    pub proxy_connections: Family<ProxyResultLabels, Counter>,
    pub proxy_active: Family<ProxyLabels, Gauge>,
    pub proxy_bytes: Family<ProxyBytesLabels, Counter>,
    /// Egress targets outside the allowlist.
    pub proxy_denied: Family<ProxyLabels, Counter>,
    pub log_forwarded: Counter,
    pub log_dropped: Family<SideLabels, Counter>,
    /// IMDS credential fetches by result (`ok`, `error`).
    pub credential_refreshes: Family<ResultLabels, Counter>,
    /// Credential requests from the enclave by result (`served`, `error`).
    pub credential_requests: Family<ResultLabels, Counter>,
}

impl ServiceMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every handle (a clone shares the same values).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "nitro_link_connections",
            "Link connections accepted from the enclave, by service",
            self.link_connections.clone(),
        );
        registry.register(
            "nitro_link_peers_refused",
            "Link connections refused because the peer is not the enclave",
            self.link_peers_refused.clone(),
        );
        registry.register(
            "nitro_link_frames_rejected",
            "Malformed, oversized or unknown frames; each closed its connection",
            self.frames_rejected.clone(),
        );
        registry.register(
            "nitro_proxy_connections",
            "Proxied connections by proxy and result",
            self.proxy_connections.clone(),
        );
        registry.register(
            "nitro_proxy_active_connections",
            "Proxied connections open now",
            self.proxy_active.clone(),
        );
        registry.register(
            "nitro_proxy_bytes",
            "Bytes copied by proxy and direction",
            self.proxy_bytes.clone(),
        );
        registry.register(
            "nitro_proxy_denied",
            "Egress connections refused: target not in the allowlist",
            self.proxy_denied.clone(),
        );
        registry.register(
            "nitro_enclave_log_events_forwarded",
            "Enclave log records re-logged by the supervisor",
            self.log_forwarded.clone(),
        );
        registry.register(
            "nitro_enclave_log_events_dropped",
            "Enclave log records dropped, by the side whose buffer was full",
            self.log_dropped.clone(),
        );
        registry.register(
            "nitro_credentials_refreshes",
            "Instance-role credential fetches from IMDS by result",
            self.credential_refreshes.clone(),
        );
        registry.register(
            "nitro_credentials_requests",
            "Credential requests from the enclave by result",
            self.credential_requests.clone(),
        );
    }

    /// For /v1/enclave-info: log records forwarded so far.
    pub fn log_forwarded(&self) -> u64 {
        self.log_forwarded.get()
    }

    /// For /v1/enclave-info: log records dropped so far, on either side.
    pub fn log_dropped(&self) -> u64 {
        ["host", "enclave"]
            .iter()
            .map(|side| self.log_dropped.get_or_create(&SideLabels { side }).get())
            .sum()
    }

    pub(crate) fn frame_rejected(&self, service: &'static str, e: &enclave_link::FrameError) {
        self.frames_rejected
            .get_or_create(&FrameLabels {
                service,
                reason: e.label(),
            })
            .inc();
    }

    pub(crate) fn proxy_result(&self, proxy: &str, result: &'static str) {
        self.proxy_connections
            .get_or_create(&ProxyResultLabels {
                proxy: proxy.to_string(),
                result,
            })
            .inc();
    }

    pub(crate) fn bytes(&self, proxy: &str, direction: &'static str) -> Counter {
        self.proxy_bytes.get_or_create_owned(&ProxyBytesLabels {
            proxy: proxy.to_string(),
            direction,
        })
    }
}
