//! The supervisor's end of the link: the transport chosen by the config, who counts as the
//! enclave on it, and the accept loop every service runs.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use companion_config::{LinkTransport, ProxyCopy, SupervisorConfig};
use enclave_link::transport::{Tcp, Unix, VhostUser, Vsock};
use enclave_link::{Listener, Peer, Stream, Transport};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::metrics::ServiceLabels;
use super::{ServiceError, ServiceMetrics};

/// Who may use the services: the enclave, identified as precisely as the transport allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerPolicy {
    /// AF_VSOCK: the hypervisor sets the peer CID; only the enclave's is accepted (a sibling
    /// enclave on the same parent has another one).
    Cid(u32),
    /// Unix sockets (vhost-device-vsock's backend, tests): the peer process must run as this
    /// user or root (`SO_PEERCRED`); the socket files' directory should be private to it.
    SameUser(u32),
    /// TCP (tests, laptops): the peer's address must be the configured enclave address.
    Address(IpAddr),
}

impl PeerPolicy {
    pub(crate) fn admits(&self, peer: &Peer) -> bool {
        match (self, peer) {
            (PeerPolicy::Cid(cid), Peer::Vsock { cid: c, .. }) => c == cid,
            (PeerPolicy::SameUser(uid), Peer::Unix { uid: Some(u), .. }) => u == uid || *u == 0,
            (PeerPolicy::Address(ip), Peer::Tcp(addr)) => addr.ip() == *ip,
            _ => false,
        }
    }
}

/// The transport and peer policy for `config`.
pub(crate) fn host_link(
    config: &SupervisorConfig,
) -> Result<(Arc<dyn Transport>, PeerPolicy), ServiceError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    Ok(match &config.link.transport {
        LinkTransport::Vsock {} => (
            Arc::new(Vsock {
                peer_cid: config.enclave.cid,
            }),
            PeerPolicy::Cid(config.enclave.cid),
        ),
        LinkTransport::VhostUser { path } => (
            Arc::new(VhostUser { path: path.clone() }),
            PeerPolicy::SameUser(uid),
        ),
        LinkTransport::Unix {
            listen_prefix,
            connect_prefix,
        } => (
            Arc::new(Unix {
                listen_prefix: listen_prefix.clone(),
                connect_prefix: connect_prefix.clone(),
            }),
            PeerPolicy::SameUser(uid),
        ),
        LinkTransport::Tcp { listen, connect } => {
            let parse = |field: &str, v: &str| {
                v.parse::<SocketAddr>().map_err(|_| {
                    ServiceError::Config(format!(
                        "link.transport.{field} `{v}` is not an IP:PORT address"
                    ))
                })
            };
            let connect = parse("connect", connect)?;
            (
                Arc::new(Tcp {
                    listen: parse("listen", listen)?,
                    connect,
                }),
                PeerPolicy::Address(connect.ip()),
            )
        }
    })
}

/// What every service task shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) policy: PeerPolicy,
    pub(crate) metrics: Arc<ServiceMetrics>,
    /// How the ingress and egress pass-throughs move bytes.
    pub(crate) copy: ProxyCopy,
    pub(crate) tracker: TaskTracker,
    pub(crate) token: CancellationToken,
}

impl Ctx {
    /// Runs `fut` as a tracked task that ends when the services shut down.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        let token = self.token.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = fut => {}
            }
        });
    }

    /// Binds a service's port.
    pub(crate) async fn listen(
        &self,
        service: &'static str,
        port: u32,
    ) -> Result<Listener, ServiceError> {
        self.transport
            .listen(port)
            .await
            .map_err(|source| ServiceError::Bind {
                what: format!("{service} service"),
                source,
            })
    }

    /// Accepts connections from the enclave and hands each to `handler` in its own task.
    pub(crate) fn serve<F, Fut>(&self, service: &'static str, listener: Listener, handler: F)
    where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let ctx = self.clone();
        self.spawn(async move {
            let labels = ServiceLabels { service };
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: wait instead of spinning.
                        tracing::warn!(service, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if !ctx.policy.admits(&peer) {
                    ctx.metrics.link_peers_refused.get_or_create(&labels).inc();
                    tracing::warn!(service, ?peer, "connection refused: not the enclave");
                    continue;
                }
                ctx.metrics.link_connections.get_or_create(&labels).inc();
                ctx.spawn(handler(stream));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_the_enclave() {
        let cid = PeerPolicy::Cid(16);
        assert!(cid.admits(&Peer::Vsock { cid: 16, port: 1 }));
        assert!(!cid.admits(&Peer::Vsock { cid: 17, port: 1 }));
        assert!(!cid.admits(&Peer::Tcp("127.0.0.1:1".parse().unwrap())));
        let user = PeerPolicy::SameUser(1000);
        assert!(user.admits(&Peer::Unix {
            uid: Some(1000),
            pid: None
        }));
        assert!(user.admits(&Peer::Unix {
            uid: Some(0),
            pid: None
        }));
        assert!(!user.admits(&Peer::Unix {
            uid: Some(1001),
            pid: None
        }));
        assert!(!user.admits(&Peer::Unix {
            uid: None,
            pid: None
        }));
        let ip = PeerPolicy::Address("127.0.0.2".parse().unwrap());
        assert!(ip.admits(&Peer::Tcp("127.0.0.2:5".parse().unwrap())));
        assert!(!ip.admits(&Peer::Tcp("127.0.0.1:5".parse().unwrap())));
    }
}
