//! Ingress: each configured host TCP port is copied to the enclave's vsock port of the same
//! number (`proxies`). Per port, at most `max_connections` at once (more are closed at once and
//! counted), an idle timeout, half-close and backpressure (see [`super::pump`]). TLS, if any, is
//! the enclave's business.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use companion_config::{IngressService, Proxy};
use enclave_link::Transport;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::link::Ctx;
use super::metrics::ProxyLabels;
use super::pump::{pump, Counters};
use super::ServiceError;

/// One bound ingress port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngressPort {
    /// The enclave's vsock port.
    pub vsock_port: u32,
    /// Where the host listens (port 0 in the config binds an ephemeral port, for tests).
    pub local_addr: SocketAddr,
}

struct Port {
    name: String,
    vsock_port: u32,
    slots: Arc<Semaphore>,
    connect_timeout: Duration,
    idle: Duration,
}

/// Checks the ingress list before anything is bound.
pub(crate) fn check(proxies: &[Proxy], config: &IngressService) -> Result<IpAddr, ServiceError> {
    for p in proxies {
        if p.protocol != "tcp" {
            return Err(ServiceError::Config(format!(
                "ingress port {}/{}: only TCP is carried over vsock",
                p.host_port, p.protocol
            )));
        }
        if p.vsock_port == 0 || p.vsock_port > enclave_link::ports::MAX_INGRESS_PORT {
            return Err(ServiceError::Config(format!(
                "ingress port {}: vsock port {} is outside 1–65535",
                p.host_port, p.vsock_port
            )));
        }
    }
    if config.max_connections == 0 || config.idle_timeout_secs == 0 {
        return Err(ServiceError::Config(
            "link.ingress.max_connections and idle_timeout_secs must be positive".into(),
        ));
    }
    config.listen.parse().map_err(|_| {
        ServiceError::Config(format!(
            "link.ingress.listen `{}` is not an IP address",
            config.listen
        ))
    })
}

pub(crate) async fn start(
    ctx: &Ctx,
    proxies: &[Proxy],
    config: &IngressService,
) -> Result<Vec<IngressPort>, ServiceError> {
    let ip = check(proxies, config)?;
    let mut bound = Vec::new();
    for p in proxies {
        let addr = SocketAddr::new(ip, p.host_port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServiceError::Bind {
                what: format!("ingress tcp {addr}"),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServiceError::Bind {
            what: format!("ingress tcp {addr}"),
            source,
        })?;
        let port = Arc::new(Port {
            name: format!("ingress:{}", p.host_port),
            vsock_port: p.vsock_port,
            slots: Arc::new(Semaphore::new(config.max_connections as usize)),
            connect_timeout: Duration::from_secs(config.connect_timeout_secs.into()),
            idle: Duration::from_secs(config.idle_timeout_secs.into()),
        });
        ctx.spawn(accept(ctx.clone(), listener, port));
        bound.push(IngressPort {
            vsock_port: p.vsock_port,
            local_addr,
        });
    }
    Ok(bound)
}

async fn accept(ctx: Ctx, listener: TcpListener, port: Arc<Port>) {
    loop {
        let client = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(proxy = %port.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = port.slots.clone().try_acquire_owned() else {
            ctx.metrics.proxy_result(&port.name, "limit");
            drop(client);
            continue;
        };
        let (ctx2, port) = (ctx.clone(), port.clone());
        ctx.spawn(async move {
            proxy(&ctx2, &port, client).await;
            drop(slot);
        });
    }
}

async fn proxy(ctx: &Ctx, port: &Port, client: TcpStream) {
    let _ = client.set_nodelay(true);
    let m = &ctx.metrics;
    let dial = connect(&*ctx.transport, port.vsock_port, port.connect_timeout).await;
    let enclave = match dial {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(proxy = %port.name, error = %e, "cannot reach the enclave");
            return m.proxy_result(&port.name, "dial_failed");
        }
    };
    let active = m.proxy_active.get_or_create_owned(&ProxyLabels {
        proxy: port.name.clone(),
    });
    active.inc();
    let counters = Counters::new(m, &port.name);
    let end = pump(client, enclave, ctx.copy, port.idle, counters).await;
    active.dec();
    end.report(m, &port.name);
}

async fn connect(
    transport: &dyn Transport,
    port: u32,
    timeout: Duration,
) -> std::io::Result<enclave_link::Stream> {
    tokio::time::timeout(timeout, transport.connect(port))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{} did not answer in time", transport.describe(port)),
            )
        })?
}
