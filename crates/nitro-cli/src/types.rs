//! The driver's vocabulary: what to run, what runs, and what came back.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::DriverError;

/// nitro-cli's enclave id (`i-…-enc…`); opaque to everything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EnclaveId(pub String);

impl fmt::Display for EnclaveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One enclave to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub name: String,
    pub eif_path: PathBuf,
    pub cpu_count: u32,
    pub memory_mib: u64,
    pub cid: u32,
    /// Debug enclaves attest all-zero PCRs and expose a console: only when configured.
    pub debug: bool,
}

/// What `run` reports about the started enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    pub name: String,
    pub id: EnclaveId,
    /// The process that owns the enclave (it dies with it).
    pub process_id: u32,
    pub cid: u64,
    pub cpu_count: u64,
    pub cpu_ids: Vec<u32>,
    pub memory_mib: u64,
}

/// nitro-cli's `State`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnclaveState {
    Running,
    Terminating,
    Empty,
    Other(String),
}

impl EnclaveState {
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "RUNNING" => EnclaveState::Running,
            "TERMINATING" => EnclaveState::Terminating,
            "EMPTY" => EnclaveState::Empty,
            _ => EnclaveState::Other(s.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            EnclaveState::Running => "RUNNING",
            EnclaveState::Terminating => "TERMINATING",
            EnclaveState::Empty => "EMPTY",
            EnclaveState::Other(s) => s,
        }
    }
}

impl Serialize for EnclaveState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One entry of `describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enclave {
    pub name: Option<String>,
    pub id: EnclaveId,
    pub process_id: u32,
    pub cid: u64,
    pub cpu_count: u64,
    pub cpu_ids: Vec<u32>,
    pub memory_mib: u64,
    pub state: EnclaveState,
    pub debug: bool,
    /// Register name (`PCR0`, …) → hex, as measured when the EIF was loaded; empty if not
    /// reported. `HashAlgorithm` is left out.
    pub measurements: BTreeMap<String, String>,
}

impl Enclave {
    /// The part of the entry that `run` also reports.
    pub fn started(&self) -> Started {
        Started {
            name: self.name.clone().unwrap_or_default(),
            id: self.id.clone(),
            process_id: self.process_id,
            cid: self.cid,
            cpu_count: self.cpu_count,
            cpu_ids: self.cpu_ids.clone(),
            memory_mib: self.memory_mib,
        }
    }
}

/// The outcome of listing enclaves. nitro-cli prints the enclaves it could reach and then fails
/// (E39) when one enclave process did not answer, so a listing can be partial.
#[derive(Debug, Clone)]
pub enum Described {
    Complete(Vec<Enclave>),
    Partial(Vec<Enclave>, DriverError),
    Failed(DriverError),
}

impl Described {
    /// The enclaves that could be read, if any listing came back.
    pub fn enclaves(&self) -> Option<&[Enclave]> {
        match self {
            Described::Complete(v) | Described::Partial(v, _) => Some(v),
            Described::Failed(_) => None,
        }
    }

    pub fn error(&self) -> Option<&DriverError> {
        match self {
            Described::Complete(_) => None,
            Described::Partial(_, e) | Described::Failed(e) => Some(e),
        }
    }
}

/// What `terminate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminated {
    Terminated,
    /// There was no such enclave (any more).
    AlreadyGone,
}
