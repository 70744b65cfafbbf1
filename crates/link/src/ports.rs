//! Fixed vsock ports of the link's services. They sit above 65535 (vsock ports are 32-bit) so they
//! can never collide with an ingress port — ingress maps enclave vsock port N to host TCP port N,
//! N ≤ 65535 — nor with port 9000, where AWS's init sends its boot heartbeat to the parent.
//! The supervisor listens on them on the parent; the runtime connects to them.

/// The parent instance's CID as seen from a Nitro Enclave (AWS's init dials it for the heartbeat).
pub const PARENT_CID_NITRO: u32 = 3;
/// The host's CID under QEMU with vhost-device-vsock (`VMADDR_CID_HOST`).
pub const HOST_CID_QEMU: u32 = 2;
/// AWS's init connects here on the parent and expects its `0xB7` byte echoed.
pub const INIT_HEARTBEAT: u32 = 9000;

/// Boot stages, readiness, fatal errors, counters and the app's exit status (enclave → parent).
pub const CONTROL: u32 = 0x1_0001;
/// Log records of the runtime and the application (enclave → parent).
pub const LOGS: u32 = 0x1_0002;
/// The instance role's temporary credentials (request/response).
pub const CREDENTIALS: u32 = 0x1_0003;
/// TCP pass-through to allowlisted AWS endpoints: a handshake frame, then raw bytes.
pub const EGRESS: u32 = 0x1_0004;
/// Plain secret values for a local run (`nitro-provision run --local`) only: never bound on an
/// instance.
pub const DEV_SECRETS: u32 = 0x1_0005;

/// Every service port with its name, for documentation, diagnostics and metrics labels.
pub const SERVICES: [(u32, &str); 5] = [
    (CONTROL, "control"),
    (LOGS, "logs"),
    (CREDENTIALS, "credentials"),
    (EGRESS, "egress"),
    (DEV_SECRETS, "dev_secrets"),
];

/// The largest port an ingress mapping may use (TCP N ↔ vsock N).
pub const MAX_INGRESS_PORT: u32 = 65_535;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ports_cannot_collide_with_ingress_or_heartbeat() {
        for (port, _) in SERVICES {
            assert!(port > MAX_INGRESS_PORT);
            assert_ne!(port, INIT_HEARTBEAT);
        }
    }
}
