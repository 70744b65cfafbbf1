//! Host side of the egress service: a TCP pass-through to allowlisted endpoints only. Names are
//! resolved per connection (AWS rotates endpoint addresses); the parent never sees plaintext,
//! because TLS runs inside the enclave over the raw bytes that follow the handshake.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use companion_config::{EgressService, ProxyCopy};
use enclave_link::egress::{Connect, EgressMsg, Outcome, Reply};
use enclave_link::frame::{read_one, write_one, Message};
use enclave_link::{FrameError, Stream};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::link::Ctx;
use super::metrics::ProxyLabels;
use super::pump::{pump, Counters};
use super::{ServiceError, ServiceMetrics};

pub(crate) const SERVICE: &str = "egress";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `host:port` pairs the enclave may reach; host names compare case-insensitively, without a
/// trailing dot.
#[derive(Debug, Clone)]
pub(crate) struct Allowlist(Vec<(String, u16)>);

impl Allowlist {
    pub(crate) fn new(config: &EgressService) -> Result<Self, ServiceError> {
        config
            .allowlist
            .iter()
            .map(|t| {
                let host = normalize(&t.host);
                if host.is_empty() || t.port == 0 || host.contains(['/', ' ', '*']) {
                    return Err(ServiceError::Config(format!(
                        "link.egress.allowlist: `{}:{}` is not a host name or IP and a port",
                        t.host, t.port
                    )));
                }
                Ok((host, t.port))
            })
            .collect::<Result<_, _>>()
            .map(Allowlist)
    }

    pub(crate) fn admits(&self, host: &str, port: u16) -> bool {
        let host = normalize(host);
        self.0.iter().any(|(h, p)| *h == host && *p == port)
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Addresses the pass-through never dials, whatever a name resolves to: link-local (IMDS is
/// reached through the credentials service instead), unspecified, multicast; loopback only
/// when the allowlisted name itself is a loopback one (tests).
fn forbidden(addr: IpAddr, host: &str) -> bool {
    let loopback_name =
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let link_local = match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    };
    link_local
        || addr.is_unspecified()
        || addr.is_multicast()
        || (addr.is_loopback() && !loopback_name)
}

struct Egress {
    allowlist: Allowlist,
    slots: Semaphore,
    connect_timeout: Duration,
    idle: Duration,
    copy: ProxyCopy,
    metrics: Arc<ServiceMetrics>,
}

pub(crate) async fn start(ctx: &Ctx, config: &EgressService) -> Result<(), ServiceError> {
    let egress = Arc::new(Egress {
        allowlist: Allowlist::new(config)?,
        slots: Semaphore::new(config.max_connections as usize),
        connect_timeout: Duration::from_secs(config.connect_timeout_secs.into()),
        idle: Duration::from_secs(config.idle_timeout_secs.into()),
        copy: ctx.copy,
        metrics: ctx.metrics.clone(),
    });
    let listener = ctx.listen(SERVICE, enclave_link::ports::EGRESS).await?;
    ctx.serve(SERVICE, listener, move |stream| {
        egress.clone().serve(stream)
    });
    Ok(())
}

impl Egress {
    async fn serve(self: Arc<Self>, mut stream: Stream) {
        let target = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_one(&mut stream)).await {
            Ok(Ok(EgressMsg::Connect(c))) => c,
            Ok(Ok(other)) => {
                let e = FrameError::UnknownKind(other.kind());
                return self.metrics.frame_rejected(SERVICE, &e);
            }
            Ok(Err(FrameError::Io(_))) | Err(_) => return,
            Ok(Err(e)) => return self.metrics.frame_rejected(SERVICE, &e),
        };
        let Connect { host, port } = target;
        if !self.allowlist.admits(&host, port) {
            self.metrics
                .proxy_denied
                .get_or_create(&ProxyLabels {
                    proxy: SERVICE.into(),
                })
                .inc();
            tracing::warn!(service = SERVICE, %host, port, "egress refused: not in the allowlist");
            let reason = format!("{host}:{port} is not in the egress allowlist");
            return self
                .finish(&mut stream, Outcome::Refused { reason }, "refused")
                .await;
        }
        let Ok(_slot) = self.slots.try_acquire() else {
            let reason = "too many egress connections".to_string();
            return self
                .finish(&mut stream, Outcome::Refused { reason }, "limit")
                .await;
        };
        let upstream = match self.dial(&host, port).await {
            Ok(s) => s,
            Err(message) => {
                tracing::warn!(service = SERVICE, %host, port, %message, "egress dial failed");
                return self
                    .finish(&mut stream, Outcome::DialFailed { message }, "dial_failed")
                    .await;
            }
        };
        if write_one(
            &mut stream,
            &EgressMsg::Reply(Reply {
                outcome: Outcome::Allowed,
            }),
        )
        .await
        .is_err()
        {
            return self.metrics.proxy_result(SERVICE, "error");
        }
        let active = self.metrics.proxy_active.get_or_create_owned(&ProxyLabels {
            proxy: SERVICE.into(),
        });
        active.inc();
        let counters = Counters::new(&self.metrics, SERVICE);
        let end = pump(upstream, stream, self.copy, self.idle, counters).await;
        active.dec();
        end.report(&self.metrics, SERVICE);
    }

    async fn finish(&self, stream: &mut Stream, outcome: Outcome, result: &'static str) {
        self.metrics.proxy_result(SERVICE, result);
        let _ = write_one(stream, &EgressMsg::Reply(Reply { outcome })).await;
    }

    /// Resolves `host` now and tries its addresses in order within the connect timeout.
    async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, String> {
        let deadline = Instant::now() + self.connect_timeout;
        let addrs: Vec<SocketAddr> =
            tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| format!("resolving {host} timed out"))?
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect();
        let mut last = format!("{host} resolved to no address");
        for addr in addrs {
            if forbidden(addr.ip(), &normalize(host)) {
                last = format!("{host} resolved to {} which egress never dials", addr.ip());
                continue;
            }
            match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => last = format!("cannot connect to {addr}: {e}"),
                Err(_) => return Err(format!("connecting to {host}:{port} timed out")),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use companion_config::EgressTarget;

    fn list(entries: &[(&str, u16)]) -> Result<Allowlist, ServiceError> {
        Allowlist::new(&EgressService {
            allowlist: entries
                .iter()
                .map(|(h, p)| EgressTarget {
                    host: h.to_string(),
                    port: *p,
                })
                .collect(),
            ..EgressService::default()
        })
    }

    #[test]
    fn allowlist_matches_exact_names_and_ports() {
        let l = list(&[("KMS.us-east-1.amazonaws.com", 443), ("127.0.0.1", 8080)]).unwrap();
        assert!(l.admits("kms.us-east-1.amazonaws.com", 443));
        assert!(l.admits("kms.us-east-1.amazonaws.com.", 443));
        assert!(!l.admits("kms.us-east-1.amazonaws.com", 80));
        assert!(!l.admits("evil.kms.us-east-1.amazonaws.com", 443));
        assert!(!l.admits("kms.us-east-1.amazonaws.com.evil", 443));
        assert!(l.admits("127.0.0.1", 8080));
        assert!(list(&[("*.amazonaws.com", 443)]).is_err());
        assert!(list(&[("", 443)]).is_err());
        assert!(list(&[("a", 0)]).is_err());
    }

    #[test]
    fn never_dials_link_local_or_hidden_loopback() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(forbidden(
            ip("169.254.169.254"),
            "kms.us-east-1.amazonaws.com"
        ));
        assert!(forbidden(ip("fe80::1"), "x"));
        assert!(forbidden(ip("0.0.0.0"), "x"));
        assert!(forbidden(ip("127.0.0.1"), "kms.us-east-1.amazonaws.com"));
        assert!(!forbidden(ip("127.0.0.1"), "localhost"));
        assert!(!forbidden(ip("127.0.0.1"), "127.0.0.1"));
        assert!(!forbidden(ip("52.94.0.1"), "kms.us-east-1.amazonaws.com"));
    }
}
