//! systemd's notify protocol, which is one datagram per message on `$NOTIFY_SOCKET` (a path, or
//! `@name` for the abstract namespace): `READY=1` once the API and the services are bound,
//! `STATUS=` with the watchdog's state, and `WATCHDOG=1` keepalives while the loop makes
//! progress. Without `NOTIFY_SOCKET` (not under systemd) every call is a no-op.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::status::Snapshot;
use crate::watchdog::Heartbeat;

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (systemd sets them).
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
            let addr = match bytes.strip_prefix(b"@") {
                Some(name) => SocketAddr::from_abstract_name(name).ok()?,
                None => SocketAddr::from_pathname(&path).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one message (`KEY=value` lines). Failures are logged, never fatal.
    pub fn notify(&self, message: &str) {
        if let Some((socket, addr)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
                tracing::warn!(error = %e, "sd_notify failed");
            }
        }
    }
}

/// `STATUS=` on every change of state, `WATCHDOG=1` every half watchdog period while the loop's
/// heartbeat is fresh (a wedged loop or a nitro-cli call past its bound stops them).
pub async fn keepalive(
    notifier: Arc<Notifier>,
    heartbeat: Arc<Heartbeat>,
    mut status: watch::Receiver<Snapshot>,
) {
    if !notifier.enabled() {
        return;
    }
    let period = notifier.watchdog.map(|w| w / 2);
    let mut ticker = tokio::time::interval(period.unwrap_or(Duration::from_secs(3600)));
    let mut last_line = String::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if period.is_some() {
                    if heartbeat.fresh() {
                        notifier.notify("WATCHDOG=1");
                    } else {
                        tracing::error!("the watchdog loop is past its bound; withholding the systemd keepalive");
                    }
                }
            }
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let line = status.borrow_and_update().status_line();
                if line != last_line {
                    notifier.notify(&format!("STATUS={line}"));
                    last_line = line;
                }
            }
        }
    }
}
