//! The watchdog: a pure state machine ([`machine`]) and the loop that performs its actions
//! through an [`nitro_cli_driver::EnclaveDriver`] ([`runner`]).

pub mod machine;
pub mod runner;

pub use machine::{Action, Command, Watchdog};
pub use runner::{EifCheck, Heartbeat, Inputs, Runner};
