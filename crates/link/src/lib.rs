//! The link between `enclave-runtime` (inside the enclave) and `enclave-supervisor` (on the
//! parent instance): transports, the fixed service [`ports`], the versioned [`frame`] format, the
//! message types of every service and the enclave-side clients. The parent's servers live in the
//! supervisor, so the runtime compiles none of them.
//!
//! Services (each on its own port, each connection speaks one service):
//! - [`control`]: boot stages, ready, fatal errors, counters, the app's exit status (acknowledged);
//! - [`logs`]: log records pushed from a bounded, never-blocking queue with a drop counter;
//! - [`credentials`]: the instance role's credentials, cached and refreshed before expiry;
//! - [`egress`]: a handshake naming `host:port`, then raw bytes to the allowlisted endpoint;
//! - [`dev_secrets`]: plain values for a local run's runtime (never offered on an instance).
//!
//! Ingress needs no protocol: the parent connects to the enclave's vsock port N for host TCP
//! port N and copies bytes.

mod backoff;
pub mod control;
pub mod credentials;
pub mod dev_secrets;
pub mod egress;
pub mod frame;
pub mod logs;
pub mod ports;
pub mod transport;

pub use backoff::Backoff;
pub use frame::FrameError;
pub use transport::{Listener, Peer, Stream, Transport};

/// Why an enclave-side call failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Frame(FrameError),
    #[error("the parent closed the connection")]
    Closed,
    #[error("no {0} from the parent in time")]
    Timeout(&'static str),
    #[error("unexpected frame from the parent: {0}")]
    Unexpected(String),
    #[error("refused by the parent: {0}")]
    Refused(String),
    #[error("the parent could not reach the target: {0}")]
    DialFailed(String),
}

impl From<FrameError> for LinkError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => LinkError::Io(e),
            e => LinkError::Frame(e),
        }
    }
}
