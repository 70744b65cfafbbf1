//! The enclave's runtime as the real binary sees it: `enclave_link`'s own [`ControlClient`] on the
//! enclave's side of the link, one connection for its life. Blocking methods, for the tests that
//! drive the binary from plain threads; dropping it closes the connection, as an enclave's death
//! does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use enclave_link::control::ControlClient;
use enclave_link::Transport;

/// How long a fatal error or exit status waits for the supervisor's acknowledgement.
const ACK: Duration = Duration::from_secs(10);

pub struct Runtime {
    // Dropped before the runtime that drives it.
    client: ControlClient,
    rt: tokio::runtime::Runtime,
}

impl Runtime {
    /// Connects to the supervisor's control port (which is bound before the API listens).
    pub fn connect(enclave: Arc<dyn Transport>) -> Runtime {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(ControlClient::connect(&*enclave))
            .unwrap_or_else(|e| panic!("connecting to the control service: {e}"));
        Runtime { client, rt }
    }

    pub fn ready(&mut self) {
        self.rt.block_on(self.client.ready()).unwrap();
    }

    pub fn stage(&mut self, stage: &str, detail: Option<&str>) {
        self.rt.block_on(self.client.stage(stage, detail)).unwrap();
    }

    pub fn counters(&mut self, values: &[(&str, u64)]) {
        let values: BTreeMap<String, u64> =
            values.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        self.rt.block_on(self.client.counters(values)).unwrap();
    }

    /// Reports a fatal error and waits for the acknowledgement.
    pub fn fatal(&mut self, stage: &str, message: &str) {
        self.rt
            .block_on(self.client.fatal(stage, message, ACK))
            .unwrap();
    }

    /// Reports the application's exit status and waits for the acknowledgement.
    pub fn app_exited(&mut self, code: Option<i32>, signal: Option<i32>) {
        self.rt
            .block_on(self.client.app_exited(code, signal, ACK))
            .unwrap();
    }
}
