//! The COSE_Sign1 envelope (RFC 9052) as produced by the Nitro Secure Module.
//!
//! Only the shape NSM emits is accepted: protected header exactly `{1: -35}` (ES384), an
//! empty unprotected header, an embedded payload and a 96-byte `r || s` signature. Keeping
//! the original protected and payload bytes matters because the signature covers those
//! bytes, not any re-encoding of them.

use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature, VerifyingKey};
use thiserror::Error;

use crate::cbor::{self, CborError, Value};

/// CBOR tag identifying a COSE_Sign1 structure (RFC 9052 §4.2).
const COSE_SIGN1_TAG: u64 = 18;
/// `{1: -35}`: the algorithm header set to ES384.
const PROTECTED_ES384: [u8; 4] = [0xa1, 0x01, 0x38, 0x22];
/// ES384 signatures are the raw concatenation of two 48-byte integers.
const SIGNATURE_LEN: usize = 96;
/// Upper bound on the payload from the NSM specification (`bstr .size (1..16384)`).
const MAX_PAYLOAD_LEN: usize = 16384;
/// Envelope bound: the largest payload plus ample room for headers and signature. Checked
/// before decoding so hostile inputs cannot make the decoder do unbounded work.
pub(crate) const MAX_ENVELOPE_LEN: usize = MAX_PAYLOAD_LEN + 1024;

/// Why the envelope is not an NSM COSE_Sign1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoseError {
    #[error("malformed CBOR: {0}")]
    Cbor(#[from] CborError),
    #[error("document is {0} bytes, more than the {MAX_ENVELOPE_LEN} an NSM document can be")]
    TooLarge(usize),
    #[error("not a COSE_Sign1 array of 4 items (optionally tagged 18)")]
    NotCoseSign1,
    #[error("protected header is not {{1: -35}} (ES384)")]
    UnsupportedProtectedHeader,
    #[error("unprotected header must be an empty map")]
    UnexpectedUnprotectedHeader,
    #[error("payload must be an embedded byte string of 1..={MAX_PAYLOAD_LEN} bytes")]
    BadPayload,
    #[error("signature must be a {SIGNATURE_LEN}-byte ES384 signature, got {0} bytes")]
    BadSignatureLength(usize),
}

/// The parts of a COSE_Sign1 that verification needs, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoseSign1<'a> {
    pub(crate) protected: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) signature: &'a [u8],
}

impl<'a> CoseSign1<'a> {
    /// Parses a tagged or untagged COSE_Sign1 spanning all of `input`.
    pub(crate) fn parse(input: &'a [u8]) -> Result<Self, CoseError> {
        if input.len() > MAX_ENVELOPE_LEN {
            return Err(CoseError::TooLarge(input.len()));
        }
        let value = match cbor::decode(input)? {
            Value::Tag(COSE_SIGN1_TAG, inner) => *inner,
            other => other,
        };
        let Value::Array(items) = value else {
            return Err(CoseError::NotCoseSign1);
        };
        let [protected, unprotected, payload, signature] = items.as_slice() else {
            return Err(CoseError::NotCoseSign1);
        };
        let Value::Bytes(protected) = *protected else {
            return Err(CoseError::NotCoseSign1);
        };
        if protected != PROTECTED_ES384 {
            return Err(CoseError::UnsupportedProtectedHeader);
        }
        if !matches!(unprotected, Value::Map(entries) if entries.is_empty()) {
            return Err(CoseError::UnexpectedUnprotectedHeader);
        }
        let payload = match *payload {
            Value::Bytes(p) if (1..=MAX_PAYLOAD_LEN).contains(&p.len()) => p,
            _ => return Err(CoseError::BadPayload),
        };
        let Value::Bytes(signature) = *signature else {
            return Err(CoseError::NotCoseSign1);
        };
        if signature.len() != SIGNATURE_LEN {
            return Err(CoseError::BadSignatureLength(signature.len()));
        }
        Ok(Self {
            protected,
            payload,
            signature,
        })
    }

    /// Checks the ES384 signature over `Sig_structure = ["Signature1", protected, h'', payload]`.
    pub(crate) fn verify(&self, key: &VerifyingKey) -> bool {
        Signature::from_slice(self.signature)
            .and_then(|signature| key.verify(&self.sig_structure(), &signature))
            .is_ok()
    }

    /// The exact bytes the signature covers (RFC 9052 §4.4).
    fn sig_structure(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 32);
        out.push(0x84); // array(4)
        out.push(0x6a); // text(10)
        out.extend_from_slice(b"Signature1");
        encode_bytes(&mut out, self.protected);
        encode_bytes(&mut out, &[]); // external_aad
        encode_bytes(&mut out, self.payload);
        out
    }
}

/// Appends a definite-length CBOR byte string (major type 2).
fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len() as u64;
    match len {
        0..=23 => out.push(0x40 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x58, len as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0x5a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        _ => {
            out.push(0x5b);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntactically valid envelope around `payload` with an all-zero signature.
    fn envelope(prefix: &[u8], payload: &[u8], signature_len: usize) -> Vec<u8> {
        let mut out = prefix.to_vec();
        out.push(0x84);
        encode_bytes(&mut out, &PROTECTED_ES384);
        out.push(0xa0);
        encode_bytes(&mut out, payload);
        encode_bytes(&mut out, &vec![0; signature_len]);
        out
    }

    #[test]
    fn accepts_tagged_and_untagged_envelopes() {
        for prefix in [&[][..], &[0xd2]] {
            let bytes = envelope(prefix, b"\xa0", 96);
            let cose = CoseSign1::parse(&bytes).expect("valid envelope");
            assert_eq!(cose.protected, PROTECTED_ES384);
            assert_eq!(cose.payload, b"\xa0");
        }
    }

    #[test]
    fn rejects_other_tags_lengths_and_headers() {
        let other_tag = envelope(&[0xd1], b"\xa0", 96);
        assert_eq!(CoseSign1::parse(&other_tag), Err(CoseError::NotCoseSign1));
        let short = envelope(&[], b"\xa0", 64);
        assert_eq!(
            CoseSign1::parse(&short),
            Err(CoseError::BadSignatureLength(64))
        );
        let huge = envelope(&[], &vec![0xa0; MAX_ENVELOPE_LEN], 96);
        assert_eq!(
            CoseSign1::parse(&huge),
            Err(CoseError::TooLarge(huge.len()))
        );
        let empty_payload = envelope(&[], b"", 96);
        assert_eq!(CoseSign1::parse(&empty_payload), Err(CoseError::BadPayload));
        let mut es256 = envelope(&[], b"\xa0", 96);
        es256[5] = 0x26; // {1: -7}
        assert_eq!(
            CoseSign1::parse(&es256),
            Err(CoseError::UnsupportedProtectedHeader)
        );
        let mut unprotected = envelope(&[], b"\xa0", 96);
        unprotected.splice(6..7, [0xa1, 0x04, 0x40]); // {4: h''}
        assert_eq!(
            CoseSign1::parse(&unprotected),
            Err(CoseError::UnexpectedUnprotectedHeader)
        );
    }

    #[test]
    fn sig_structure_matches_rfc_layout() {
        let bytes = envelope(&[], b"\xa0", 96);
        let cose = CoseSign1::parse(&bytes).expect("valid envelope");
        let expected = hex::decode("846a5369676e61747572653144a101382240")
            .expect("hex")
            .into_iter()
            .chain([0x41, 0xa0])
            .collect::<Vec<_>>();
        assert_eq!(cose.sig_structure(), expected);
    }

    #[test]
    fn encodes_byte_string_lengths_minimally() {
        for (len, header) in [
            (0usize, vec![0x40]),
            (23, vec![0x57]),
            (24, vec![0x58, 24]),
            (256, vec![0x59, 1, 0]),
            (65536, vec![0x5a, 0, 1, 0, 0]),
        ] {
            let mut out = Vec::new();
            encode_bytes(&mut out, &vec![0; len]);
            assert_eq!(out[..header.len()], header[..], "length {len}");
            assert_eq!(out.len(), header.len() + len);
        }
    }
}
