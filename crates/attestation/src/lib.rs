//! Verification of AWS Nitro Enclaves attestation documents in pure Rust (no AWS SDK, no
//! OpenSSL), for clients that must check what enclave they talk to.
//!
//! [`verify`] runs every check in order: strict parsing of the COSE_Sign1 envelope and its
//! payload, the certificate path to the pinned AWS Nitro Enclaves Root-G1, the ES384
//! document signature, then the caller's [`Policy`] (PCRs, nonce, age, debug mode). [`parse`]
//! stops after parsing so that invalid documents can still be reported on.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::time::{Duration, SystemTime};
//! use nitro_attestation::{verify, Policy, Report};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let doc = std::fs::read("attestation.cose")?;
//! let policy = Policy {
//!     expected_pcrs: BTreeMap::from([(0, vec![0x5f; 48])]),
//!     nonce: Some(b"challenge chosen by the verifier".to_vec()),
//!     max_age: Some(Duration::from_secs(300)),
//!     ..Policy::default()
//! };
//! let verified = verify(&doc, &policy, SystemTime::now())?;
//! println!("{}", serde_json::to_string_pretty(&Report::new(&verified.document))?);
//! # Ok(())
//! # }
//! ```

mod anchor;
mod cbor;
mod chain;
mod cose;
mod document;
mod policy;
#[cfg(feature = "qemu-unsigned")]
mod qemu_unsigned;
mod report;

use std::time::SystemTime;

use thiserror::Error;

pub use anchor::{verify_with_anchor, AnchorError, TrustAnchor};
pub use cbor::CborError;
pub use chain::{CertPosition, ChainError, AWS_NITRO_ROOT_G1_SHA256};
pub use cose::CoseError;
pub use document::{AttestationDocument, DocumentError, MAX_PCR_INDEX};
pub use policy::{Policy, PolicyError, MAX_CLOCK_SKEW};
#[cfg(feature = "qemu-unsigned")]
pub use qemu_unsigned::{
    verify_qemu_unsigned, QemuUnsignedError, UnsignedQemuDocument, UNSIGNED_QEMU_VERDICT,
};
pub use report::{CertSummary, Report};

use cose::CoseSign1;

/// Why a document could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("invalid COSE_Sign1 envelope: {0}")]
    Cose(#[from] CoseError),
    #[error("invalid attestation document: {0}")]
    Document(#[from] DocumentError),
}

/// Which verification step failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("certificate chain: {0}")]
    Chain(#[from] ChainError),
    #[error("document signature does not verify with the leaf certificate's key")]
    Signature,
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
}

/// A document that passed every check of [`verify`]; [`Report::new`] renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDocument {
    pub document: AttestationDocument,
    /// The check time the chain and policy were evaluated at.
    pub checked_at: SystemTime,
}

/// Parses a COSE_Sign1 attestation document WITHOUT verifying its chain, signature or any
/// policy: for reporting on documents, never for trusting them.
pub fn parse(doc: &[u8]) -> Result<AttestationDocument, ParseError> {
    parse_parts(doc).map(|(_, document)| document)
}

fn parse_parts(doc: &[u8]) -> Result<(CoseSign1<'_>, AttestationDocument), ParseError> {
    let cose = CoseSign1::parse(doc)?;
    let document = AttestationDocument::parse(cose.payload)?;
    Ok((cose, document))
}

/// Verifies a document at check time `at` (normally `SystemTime::now()`; a fixed time
/// reproduces an earlier verdict): chain to the pinned root, ES384 signature, then `policy`.
pub fn verify(
    doc: &[u8],
    policy: &Policy,
    at: SystemTime,
) -> Result<VerifiedDocument, VerifyError> {
    verify_with_anchor(doc, &TrustAnchor::AWS_NITRO_ROOT_G1, policy, at)
}
