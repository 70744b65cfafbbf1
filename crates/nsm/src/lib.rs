//! The Nitro Secure Module (NSM) behind one trait, so that the runtime's attestation, entropy and
//! PCR reads run unchanged on hardware and in tests.
//!
//! - [`Device`]: the real `/dev/nsm`, through AWS's `aws-nitro-enclaves-nsm-api` driver.
//! - `Simulator` (cargo feature `simulator`, off by default): signs documents of the real shape
//!   (COSE_Sign1 ES384, the NSM payload map) with a test CA chain, with PCRs taken from a build's
//!   measurements, so `nitro-provision attest verify --root` and the test KMS front accept them.
//!
//! **Keeping the simulator out of production** takes two independent locks:
//! 1. a production runtime is built without the `simulator` feature, so [`open`] cannot return a
//!    simulator whatever the (measured) config says: [`OpenError::SimulatorNotBuilt`];
//! 2. [`open`] refuses [`Backend::Simulator`] when the config says `production: true`
//!    ([`OpenError::SimulatorInProduction`]), even in a build that has the feature.
//!
//! The config that names the backend is part of the image and therefore measured in PCR2, and a
//! binary built with the feature has a different PCR2 from the reproducible production build, so
//! neither lock can be switched without changing the enclave's measurements.

mod device;
mod request;
#[cfg(feature = "simulator")]
pub mod simulator;

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use device::Device;
pub use request::{AttestationRequest, MAX_NONCE_LEN, MAX_PUBLIC_KEY_LEN, MAX_USER_DATA_LEN};

/// What the NSM answered, or why it could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NsmError {
    #[error("attestation {field} is {len} bytes; the NSM accepts at most {max}")]
    TooLarge {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("cannot open /dev/nsm: {0} (is this an enclave with the nsm driver loaded?)")]
    Unavailable(String),
    #[error("the NSM refused the request: {0}")]
    Refused(String),
    #[error("the NSM answered with an unexpected response: {0}")]
    UnexpectedResponse(String),
    #[error("PCR{0} does not exist on this NSM")]
    NoSuchPcr(u16),
    #[error("simulator: {0}")]
    Simulator(String),
}

/// The NSM's self-description (`DescribeNSM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Description {
    pub module_id: String,
    pub version: (u16, u16, u16),
    pub max_pcrs: u16,
    pub locked_pcrs: BTreeSet<u16>,
    /// PCR bank digest, `SHA384` on Nitro.
    pub digest: String,
}

/// One PCR as `DescribePCR` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PcrState {
    pub locked: bool,
    pub value: Vec<u8>,
}

/// The operations of the Nitro Secure Module the runtime uses.
pub trait Nsm: Send + Sync + fmt::Debug {
    /// A signed attestation document (raw COSE_Sign1 bytes) carrying the request's fields.
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError>;
    /// Entropy from the NSM's hardware RNG (one `GetRandom`: up to 256 bytes).
    fn random(&self) -> Result<Vec<u8>, NsmError>;
    fn describe(&self) -> Result<Description, NsmError>;
    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError>;
    /// True for the simulator; the runtime reports it at boot so no one mistakes a test enclave
    /// for a real one.
    fn is_simulated(&self) -> bool;
}

/// Which NSM the runtime uses: a field of the measured runtime config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Backend {
    /// `/dev/nsm`: the only choice for `production: true`.
    Device {},
    /// Test documents signed by the PKI in `pki_dir` (see `simulator::TestPki::write`), PCRs
    /// from a nitro-cli-shaped `measurements.json`.
    Simulator {
        pki_dir: PathBuf,
        measurements: PathBuf,
    },
}

/// Why [`open`] gave no NSM.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error("the NSM simulator is refused with `production: true`")]
    SimulatorInProduction,
    #[error("this build has no NSM simulator (built without the `simulator` feature)")]
    SimulatorNotBuilt,
    #[error(transparent)]
    Nsm(#[from] NsmError),
}

/// Opens the configured NSM, enforcing the production rules of the crate docs.
pub fn open(backend: &Backend, production: bool) -> Result<Box<dyn Nsm>, OpenError> {
    match backend {
        Backend::Device {} => Ok(Box::new(Device::open()?)),
        Backend::Simulator { .. } if production => Err(OpenError::SimulatorInProduction),
        #[cfg(feature = "simulator")]
        Backend::Simulator {
            pki_dir,
            measurements,
        } => {
            let pki = simulator::TestPki::load(pki_dir)?;
            let pcrs = simulator::Pcrs::from_measurements_file(measurements)?;
            Ok(Box::new(simulator::Simulator::new(pki, pcrs)))
        }
        #[cfg(not(feature = "simulator"))]
        Backend::Simulator { .. } => Err(OpenError::SimulatorNotBuilt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_the_simulator_before_reading_anything() {
        let backend = Backend::Simulator {
            pki_dir: "/nonexistent".into(),
            measurements: "/nonexistent".into(),
        };
        assert!(matches!(
            open(&backend, true),
            Err(OpenError::SimulatorInProduction)
        ));
    }

    #[test]
    fn backend_config_is_strict() {
        let device: Backend = serde_json::from_str(r#"{"kind":"device"}"#).unwrap();
        assert_eq!(device, Backend::Device {});
        let unknown = serde_json::from_str::<Backend>(r#"{"kind":"device","x":1}"#);
        assert!(unknown.is_err());
        let other = serde_json::from_str::<Backend>(r#"{"kind":"qemu"}"#);
        assert!(other.is_err());
    }

    #[test]
    fn device_outside_an_enclave_is_a_clear_error() {
        if std::path::Path::new("/dev/nsm").exists() {
            return; // a real enclave: nothing to assert about absence
        }
        let err = open(&Backend::Device {}, true).unwrap_err();
        assert!(err.to_string().contains("/dev/nsm"), "{err}");
    }
}
