//! What the measured config may ask for: production images get the real NSM, the real platform,
//! AF_VSOCK, AWS's own endpoints and KMS-sealed secrets, whatever else the file says.

use std::net::SocketAddr;
use std::sync::Arc;

use companion_config::{LinkTransport, Platform, RuntimeConfig, SecretsSource};
use enclave_link::transport::{Tcp, Unix, Vsock};
use enclave_link::Transport;

/// Every production rule the config breaks (empty: none).
pub fn production_violations(config: &RuntimeConfig) -> Vec<&'static str> {
    if !config.production {
        return Vec::new();
    }
    let mut v = Vec::new();
    if !matches!(config.nsm, nitro_nsm::Backend::Device {}) {
        v.push("nsm: the simulator");
    }
    if config.platform != Platform::Nitro {
        v.push("platform: simulated checks");
    }
    if !matches!(config.link.transport, LinkTransport::Vsock {}) {
        v.push("link.transport: anything but vsock");
    }
    if config.aws_test_endpoint.is_some() {
        v.push("aws_test_endpoint");
    }
    if config.secrets_source != SecretsSource::Kms {
        v.push("secrets_source: local dev secrets");
    }
    v
}

/// The enclave's end of the link.
pub fn transport(config: &RuntimeConfig) -> Result<Arc<dyn Transport>, String> {
    let parse = |field: &str, v: &str| {
        v.parse::<SocketAddr>()
            .map_err(|_| format!("link.transport.{field} `{v}` is not IP:PORT"))
    };
    Ok(match &config.link.transport {
        LinkTransport::Vsock {} => Arc::new(Vsock {
            peer_cid: config.link.parent_cid,
        }),
        LinkTransport::Unix {
            listen_prefix,
            connect_prefix,
        } => Arc::new(Unix {
            listen_prefix: listen_prefix.clone(),
            connect_prefix: connect_prefix.clone(),
        }),
        LinkTransport::Tcp { listen, connect } => Arc::new(Tcp {
            listen: parse("listen", listen)?,
            connect: parse("connect", connect)?,
        }),
        LinkTransport::VhostUser { .. } => {
            return Err("link.transport vhost_user is the host side of QEMU's vsock; inside the enclave use vsock".into())
        }
    })
}
