//! A faithful NSM stand-in for tests (cargo feature `simulator`): documents of the real shape
//! signed by a [`TestPki`], PCRs from a build's measurements, the NSM's size limits, locked
//! PCR0–15 as on a booted enclave. Never compiled into a production runtime (see the crate docs).

mod document;
mod pki;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::{AttestationRequest, Description, Nsm, NsmError, PcrState};
pub use pki::{TestPki, LEAF_LIFETIME};

/// SHA-384 registers.
pub const PCR_LEN: usize = 48;
/// Registers a Nitro NSM exposes; 0–15 are locked once the enclave has booted.
const MAX_PCRS: u16 = 32;
const LOCKED_PCRS: u16 = 16;
const MODULE_ID: &str = "i-0000000000000000a-enc0000000000000a";

/// PCR values by index; those not set are zero, as on a real enclave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pcrs(BTreeMap<u16, [u8; PCR_LEN]>);

impl Pcrs {
    /// Reads a nitro-cli-shaped `measurements.json` (`{"Measurements": {"PCR0": hex, …}}`, or the
    /// inner object alone): PCR0, PCR1, PCR2 and, for signed EIFs, PCR8.
    pub fn from_measurements_json(text: &str) -> Result<Self, NsmError> {
        let bad = |why: String| NsmError::Simulator(format!("measurements: {why}"));
        let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let object = value
            .get("Measurements")
            .unwrap_or(&value)
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let mut pcrs = Self::default();
        for (key, value) in object {
            let Some(index) = key.strip_prefix("PCR") else {
                continue; // HashAlgorithm
            };
            let index: u16 = index.parse().map_err(|_| bad(format!("key {key}")))?;
            let hex = value
                .as_str()
                .ok_or_else(|| bad(format!("{key} is not text")))?;
            let bytes = hex::decode(hex).map_err(|e| bad(format!("{key}: {e}")))?;
            pcrs.set(index, &bytes)?;
        }
        for required in 0..=2 {
            if !pcrs.0.contains_key(&required) {
                return Err(bad(format!("PCR{required} is missing")));
            }
        }
        Ok(pcrs)
    }

    pub fn from_measurements_file(path: &Path) -> Result<Self, NsmError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NsmError::Simulator(format!("{}: {e}", path.display())))?;
        Self::from_measurements_json(&text)
    }

    /// Sets one register (e.g. PCR3/PCR4, which describe the parent instance).
    pub fn set(&mut self, index: u16, value: &[u8]) -> Result<(), NsmError> {
        if index >= MAX_PCRS {
            return Err(NsmError::NoSuchPcr(index));
        }
        let value: [u8; PCR_LEN] = value
            .try_into()
            .map_err(|_| NsmError::Simulator(format!("PCR{index} must be {PCR_LEN} bytes")))?;
        self.0.insert(index, value);
        Ok(())
    }

    fn get(&self, index: u16) -> [u8; PCR_LEN] {
        self.0.get(&index).copied().unwrap_or([0; PCR_LEN])
    }
}

/// The simulated NSM.
#[derive(Debug)]
pub struct Simulator {
    pki: TestPki,
    pcrs: Pcrs,
}

impl Simulator {
    pub fn new(pki: TestPki, pcrs: Pcrs) -> Self {
        Self { pki, pcrs }
    }

    /// A document as of `now` (tests of expiry pass another time).
    pub fn attest_at(
        &self,
        request: &AttestationRequest,
        now: SystemTime,
    ) -> Result<Vec<u8>, NsmError> {
        let leaf = self.pki.issue_leaf(MODULE_ID, now)?;
        // A booted enclave reports PCR0–15; the rest exist but are not in the document.
        let pcrs: BTreeMap<u16, Vec<u8>> = (0..LOCKED_PCRS)
            .map(|i| (i, self.pcrs.get(i).to_vec()))
            .collect();
        let timestamp_ms = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| NsmError::Simulator("clock before 1970".into()))?
            .as_millis();
        let payload = document::Payload {
            module_id: MODULE_ID,
            timestamp_ms: u64::try_from(timestamp_ms).unwrap_or(u64::MAX),
            pcrs: &pcrs,
            certificate: &leaf.der,
            cabundle: self.pki.chain(),
            public_key: request.public_key(),
            user_data: request.user_data(),
            nonce: request.nonce(),
        };
        Ok(document::sign(&payload, &leaf.key))
    }
}

impl Nsm for Simulator {
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        self.attest_at(request, SystemTime::now())
    }

    fn random(&self) -> Result<Vec<u8>, NsmError> {
        let mut out = vec![0u8; 256];
        getrandom::getrandom(&mut out).map_err(|e| NsmError::Simulator(e.to_string()))?;
        Ok(out)
    }

    fn describe(&self) -> Result<Description, NsmError> {
        Ok(Description {
            module_id: MODULE_ID.into(),
            version: (1, 0, 0),
            max_pcrs: MAX_PCRS,
            locked_pcrs: (0..LOCKED_PCRS).collect::<BTreeSet<_>>(),
            digest: "SHA384".into(),
        })
    }

    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError> {
        if index >= MAX_PCRS {
            return Err(NsmError::NoSuchPcr(index));
        }
        Ok(PcrState {
            locked: index < LOCKED_PCRS,
            value: self.pcrs.get(index).to_vec(),
        })
    }

    fn is_simulated(&self) -> bool {
        true
    }
}
