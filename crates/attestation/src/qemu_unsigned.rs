//! QEMU's emulated NSM signs nothing: its documents carry a zero signature, a zero
//! "certificate" and a single zero CA-bundle entry under the protected header `{1: -1}`. This
//! module accepts exactly that shape, so local VM tests can still check everything QEMU does
//! prove (the PCRs we computed, nonce, user data, age, module id) without ever calling such a
//! document valid. It is compiled only with the non-default `qemu-unsigned` feature, which no
//! shipped binary enables (`tests/feature_gate.rs` checks the release dependency graph).
//!
//! Any deviation from QEMU's shape is rejected, so a real or forged signed-looking document can
//! never take this path instead of [`crate::verify`].

use std::fmt;
use std::time::SystemTime;

use thiserror::Error;

use crate::cbor::{self, Value};
use crate::cose::MAX_ENVELOPE_LEN;
use crate::document::AttestationDocument;
use crate::policy::{Policy, PolicyError};
use crate::ParseError;

/// What reports print for a document accepted here: never "valid".
pub const UNSIGNED_QEMU_VERDICT: &str = "UNSIGNED TEST DOCUMENT (QEMU)";

/// `{1: -1}`: QEMU's protected header (an algorithm id no signature scheme has).
const QEMU_PROTECTED: [u8; 3] = [0xa1, 0x01, 0x20];
/// QEMU fills the signature, the certificate and the single CA-bundle entry with this many zeros.
const QEMU_ZERO_LEN: usize = 64;

/// How a document differs from what QEMU's NSM emits, or why it fails the policy.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QemuUnsignedError {
    #[error("not QEMU's unsigned document shape: {0}")]
    NotQemuShape(&'static str),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("module_id is {actual:?}, expected {expected:?} (QEMU's `-M nitro-enclave,id=`)")]
    ModuleId { expected: String, actual: String },
}

/// A document in QEMU's unsigned shape that passed the whole policy. It proves what the
/// emulator measured and echoed, nothing about who produced it: display it as
/// [`UNSIGNED_QEMU_VERDICT`], never as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedQemuDocument {
    pub document: AttestationDocument,
    /// The check time the policy was evaluated at.
    pub checked_at: SystemTime,
}

impl UnsignedQemuDocument {
    /// Always [`UNSIGNED_QEMU_VERDICT`].
    pub fn verdict(&self) -> &'static str {
        UNSIGNED_QEMU_VERDICT
    }
}

impl fmt::Display for UnsignedQemuDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{UNSIGNED_QEMU_VERDICT}: module {}",
            self.document.module_id
        )
    }
}

/// Accepts a document only in QEMU's exact unsigned shape, then runs `policy` and requires
/// `module_id` (the `id=` QEMU was started with) at check time `at`.
pub fn verify_qemu_unsigned(
    doc: &[u8],
    policy: &Policy,
    module_id: &str,
    at: SystemTime,
) -> Result<UnsignedQemuDocument, QemuUnsignedError> {
    let payload = qemu_envelope_payload(doc)?;
    let document = AttestationDocument::parse(payload).map_err(ParseError::from)?;
    if document.certificate != [0; QEMU_ZERO_LEN] {
        return Err(QemuUnsignedError::NotQemuShape(
            "certificate is not 64 zero bytes",
        ));
    }
    if !matches!(document.cabundle.as_slice(), [only] if only[..] == [0; QEMU_ZERO_LEN]) {
        return Err(QemuUnsignedError::NotQemuShape(
            "cabundle is not a single entry of 64 zero bytes",
        ));
    }
    policy.check(&document, at)?;
    if document.module_id != module_id {
        return Err(QemuUnsignedError::ModuleId {
            expected: module_id.to_owned(),
            actual: document.module_id,
        });
    }
    Ok(UnsignedQemuDocument {
        document,
        checked_at: at,
    })
}

/// The payload of an untagged `[h'a10120', {}, payload, h'00…00' (64)]`, or why it is not one.
fn qemu_envelope_payload(doc: &[u8]) -> Result<&[u8], QemuUnsignedError> {
    let shape = QemuUnsignedError::NotQemuShape;
    if doc.len() > MAX_ENVELOPE_LEN {
        return Err(shape("larger than any NSM document"));
    }
    let value = cbor::decode(doc).map_err(|e| ParseError::Cose(e.into()))?;
    let Value::Array(items) = value else {
        return Err(shape("not an untagged 4-item COSE_Sign1 array"));
    };
    let [Value::Bytes(protected), Value::Map(unprotected), Value::Bytes(payload), Value::Bytes(signature)] =
        items.as_slice()
    else {
        return Err(shape("not an untagged 4-item COSE_Sign1 array"));
    };
    if *protected != QEMU_PROTECTED {
        return Err(shape("protected header is not {1: -1}"));
    }
    if !unprotected.is_empty() {
        return Err(shape("unprotected header is not empty"));
    }
    if *signature != [0; QEMU_ZERO_LEN] {
        return Err(shape("signature is not 64 zero bytes"));
    }
    Ok(payload)
}
