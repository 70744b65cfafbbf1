//! Ingress: each configured enclave vsock port N is copied to the application's 127.0.0.1:N (the
//! supervisor maps host TCP port N to vsock port N). TLS, if any, is the application's.

use std::sync::Arc;

use enclave_link::{Listener, Transport};

/// Binds every port first (a failure names it), then serves in background tasks.
pub async fn start(transport: &Arc<dyn Transport>, ports: &[u16]) -> std::io::Result<()> {
    let mut listeners = Vec::new();
    for &port in ports {
        listeners.push((port, transport.listen(port.into()).await?));
    }
    for (port, listener) in listeners {
        tokio::spawn(serve(port, listener));
    }
    Ok(())
}

async fn serve(port: u16, listener: Listener) {
    loop {
        let mut outside = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(port, error = %e, "ingress accept failed");
                // EMFILE and friends: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                Ok(mut app) => {
                    let _ = tokio::io::copy_bidirectional(&mut outside, &mut app).await;
                }
                Err(e) => {
                    tracing::warn!(port, error = %e, "ingress: the application is not listening")
                }
            }
        });
    }
}
