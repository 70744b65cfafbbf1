//! Runs an Enclave Image File in QEMU's `nitro-enclave` machine, the closest emulation of a
//! Nitro Enclave available without Nitro hardware: QEMU loads the EIF itself, emulates the NSM
//! (unsigned documents, real PCRs) and attaches a vhost-user vsock device.
//!
//! One boot is a [`Launch`] (the vsock backend is up, the heartbeat listener bound, host ports
//! can still be bound) turned into a running [`Vm`] by [`Launch::boot`]; [`Vm::wait`] returns
//! a [`VmExit`] with the console and the first failure marker it printed. The host side of the
//! enclave's vsock is a directory of unix sockets ([`VsockHost`]), as in Firecracker's hybrid
//! vsock: the enclave's `connect(3, PORT)` reaches a listener on `<uds>_PORT`.
//!
//! The stack (QEMU built with the machine, patched vhost-device-vsock, kernel blobs) is what
//! `scripts/test-tools/vm-*.sh` installs; [`VmStack::locate`] finds it.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use qemu_enclave::{Launch, VmConfig, VmStack};
//!
//! let stack = VmStack::locate()?;
//! let launch = Launch::new(&stack, VmConfig::new("app.eif", "/tmp/vm"))?;
//! let results = launch.vsock().listen(7000)?; // the enclave dials (3, 7000)
//! let vm = launch.boot()?;
//! let exit = vm.wait(Duration::from_secs(60))?;
//! exit.ensure_clean()?;
//! # drop(results);
//! # Ok(())
//! # }
//! ```

mod accel;
mod console;
mod stack;
mod vm;
mod vsock;

pub use accel::Accel;
pub use console::{Console, ConsoleFailure};
pub use stack::{Blobs, StackError, VmStack};
pub use vm::{Launch, Vm, VmConfig, VmError, VmExit, DEFAULT_MODULE_ID, TEST_KNOBS};
pub use vsock::{VsockHost, HEARTBEAT_BYTE, HEARTBEAT_PORT, PARENT_CID};
