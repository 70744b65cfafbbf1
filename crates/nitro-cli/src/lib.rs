//! Starting, describing and stopping Nitro Enclaves behind one trait, so that everything above
//! it (the supervisor's watchdog) runs the same against the real `nitro-cli`, the in-process
//! [`FakeDriver`] of unit tests, and later a QEMU driver. The trait speaks of enclaves (run a
//! spec, list what runs, terminate one, is its process alive), not of nitro-cli's commands.

mod cli;
mod error;
mod fake;
mod json;
mod types;

use std::future::Future;
use std::pin::Pin;

pub use cli::{boot_timeout, NitroCli, Timeouts};
pub use error::{classify, CommandKind, DriverError, ErrorKind};
pub use fake::{FakeDriver, Scripted};
pub use types::{Described, Enclave, EnclaveId, EnclaveState, RunSpec, Started, Terminated};

/// A boxed future, so that drivers can be used as `dyn EnclaveDriver`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the supervisor needs from whatever runs enclaves.
pub trait EnclaveDriver: Send + Sync {
    /// Starts an enclave and returns once it booted (nitro-cli waits for the boot heartbeat).
    fn run<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<Started, DriverError>>;
    /// Lists the enclaves on this host, keeping whatever could be read when listing failed.
    fn describe(&self) -> BoxFuture<'_, Described>;
    /// Terminates one enclave; one that is already gone is not an error.
    fn terminate<'a>(&'a self, id: &'a EnclaveId)
        -> BoxFuture<'a, Result<Terminated, DriverError>>;
    /// Whether the process that owns an enclave still exists (the enclave dies with it).
    fn process_alive(&self, process_id: u32) -> bool;
}

/// `kill(pid, 0)`: the process exists (EPERM means it exists but is not ours).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission checks.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
