//! The attestation document carried as the COSE payload, with the field types and size
//! limits of AWS's specification (nsm-api `docs/attestation_process.md` §2.2 and §3.2.2).
//!
//! Unknown keys are rejected: the specification defines a closed map, and silently ignoring
//! fields would let a document say more than the verifier reports.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::cbor::{self, CborError, Value};

/// Highest PCR index the NSM defines (indices are `0..32`).
pub const MAX_PCR_INDEX: u8 = 31;
const PCR_LENGTHS: [usize; 3] = [32, 48, 64];
const MAX_CERT_LEN: usize = 1024;
/// Limit for `public_key`, `user_data` and `nonce` from the specification's CDDL
/// (`bytes .size (0..1024)`). Its prose says 512 for `user_data`/`nonce`, but real NSM
/// documents carry 1024-byte values (see the `nitrite-*` test fixtures), so the CDDL wins.
const MAX_OPTIONAL_LEN: usize = 1024;

/// The signed fields of an NSM attestation document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationDocument {
    /// Issuing NSM module, e.g. `i-0123…-enc0123…`.
    pub module_id: String,
    /// Creation time in milliseconds since the Unix epoch (the NSM's clock).
    pub timestamp_ms: u64,
    /// Locked PCR values by index; the digest is always SHA-384.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// DER leaf certificate whose key signed the document.
    pub certificate: Vec<u8>,
    /// DER CA certificates, root first (`[ROOT, INTERM_1, …, INTERM_N]`).
    pub cabundle: Vec<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
    pub user_data: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
}

/// Which field of the payload broke the specification, and how.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    #[error("malformed payload CBOR: {0}")]
    Cbor(#[from] CborError),
    #[error("payload is not a CBOR map")]
    NotAMap,
    #[error("payload has a non-text key")]
    NonTextKey,
    #[error("payload has unknown field `{0}`")]
    UnknownField(String),
    #[error("payload lacks mandatory field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
    #[error("digest `{0}` is not SHA384")]
    UnsupportedDigest(String),
    #[error("PCR index {0} is outside 0..={MAX_PCR_INDEX}")]
    PcrIndex(u64),
    #[error("PCR{index} is {len} bytes (expected 32, 48 or 64)")]
    PcrLength { index: u8, len: usize },
}

impl AttestationDocument {
    /// Parses and validates a payload; the input must be exactly one CBOR map.
    pub(crate) fn parse(payload: &[u8]) -> Result<Self, DocumentError> {
        let Value::Map(entries) = cbor::decode(payload)? else {
            return Err(DocumentError::NotAMap);
        };
        let mut fields = Fields::default();
        for (key, value) in entries {
            let Value::Text(key) = key else {
                return Err(DocumentError::NonTextKey);
            };
            // The CBOR decoder already rejected duplicate keys.
            match key {
                "module_id" => fields.module_id = Some(value),
                "digest" => fields.digest = Some(value),
                "timestamp" => fields.timestamp = Some(value),
                "pcrs" => fields.pcrs = Some(value),
                "certificate" => fields.certificate = Some(value),
                "cabundle" => fields.cabundle = Some(value),
                "public_key" => fields.public_key = Some(value),
                "user_data" => fields.user_data = Some(value),
                "nonce" => fields.nonce = Some(value),
                other => return Err(DocumentError::UnknownField(other.to_owned())),
            }
        }
        fields.validate()
    }

    /// True when PCR0, PCR1 and PCR2 are all zero: the NSM reports that for enclaves
    /// started with `--debug-mode`, whose memory the parent instance can read.
    pub fn is_debug(&self) -> bool {
        (0..=2).all(|index| {
            self.pcrs
                .get(&index)
                .is_some_and(|value| value.iter().all(|&b| b == 0))
        })
    }
}

/// Raw values collected by key before validation.
#[derive(Default)]
struct Fields<'a> {
    module_id: Option<Value<'a>>,
    digest: Option<Value<'a>>,
    timestamp: Option<Value<'a>>,
    pcrs: Option<Value<'a>>,
    certificate: Option<Value<'a>>,
    cabundle: Option<Value<'a>>,
    public_key: Option<Value<'a>>,
    user_data: Option<Value<'a>>,
    nonce: Option<Value<'a>>,
}

impl Fields<'_> {
    fn validate(self) -> Result<AttestationDocument, DocumentError> {
        let module_id = match required("module_id", self.module_id)? {
            Value::Text(s) if !s.is_empty() => s.to_owned(),
            _ => return Err(invalid("module_id", "must be non-empty text")),
        };
        match required("digest", self.digest)? {
            Value::Text("SHA384") => {}
            Value::Text(other) => return Err(DocumentError::UnsupportedDigest(other.to_owned())),
            _ => return Err(invalid("digest", "must be text")),
        }
        let timestamp_ms = match required("timestamp", self.timestamp)? {
            Value::Unsigned(t) if t > 0 => t,
            _ => return Err(invalid("timestamp", "must be a positive integer")),
        };
        let pcrs = parse_pcrs(required("pcrs", self.pcrs)?)?;
        let certificate = cert_bytes("certificate", required("certificate", self.certificate)?)?;
        let cabundle = match required("cabundle", self.cabundle)? {
            Value::Array(items) if !items.is_empty() => items
                .into_iter()
                .map(|item| cert_bytes("cabundle", item))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(invalid("cabundle", "must be a non-empty array")),
        };
        Ok(AttestationDocument {
            module_id,
            timestamp_ms,
            pcrs,
            certificate,
            cabundle,
            public_key: optional_bytes("public_key", self.public_key, 1, MAX_OPTIONAL_LEN)?,
            user_data: optional_bytes("user_data", self.user_data, 0, MAX_OPTIONAL_LEN)?,
            nonce: optional_bytes("nonce", self.nonce, 0, MAX_OPTIONAL_LEN)?,
        })
    }
}

fn invalid(field: &'static str, reason: &'static str) -> DocumentError {
    DocumentError::InvalidField { field, reason }
}

/// A mandatory field; CBOR null counts as missing ("no field content can be null").
fn required<'a>(field: &'static str, value: Option<Value<'a>>) -> Result<Value<'a>, DocumentError> {
    match value {
        None | Some(Value::Null) => Err(DocumentError::MissingField(field)),
        Some(value) => Ok(value),
    }
}

fn cert_bytes(field: &'static str, value: Value<'_>) -> Result<Vec<u8>, DocumentError> {
    match value {
        Value::Bytes(b) if (1..=MAX_CERT_LEN).contains(&b.len()) => Ok(b.to_vec()),
        _ => Err(invalid(
            field,
            "must be a DER certificate of 1..=1024 bytes",
        )),
    }
}

/// An optional byte string. Real NSM documents encode absent values as CBOR null, so null
/// is accepted as "absent" here although the specification's prose forbids it.
fn optional_bytes(
    field: &'static str,
    value: Option<Value<'_>>,
    min: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, DocumentError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bytes(b)) if (min..=max).contains(&b.len()) => Ok(Some(b.to_vec())),
        Some(_) => Err(invalid(
            field,
            "must be a byte string within the size limit",
        )),
    }
}

fn parse_pcrs(value: Value<'_>) -> Result<BTreeMap<u8, Vec<u8>>, DocumentError> {
    let Value::Map(entries) = value else {
        return Err(invalid("pcrs", "must be a map"));
    };
    if !(1..=usize::from(MAX_PCR_INDEX) + 1).contains(&entries.len()) {
        return Err(invalid("pcrs", "must hold 1 to 32 entries"));
    }
    let mut pcrs = BTreeMap::new();
    for (key, value) in entries {
        let index = match key {
            Value::Unsigned(i) => u8::try_from(i)
                .ok()
                .filter(|&i| i <= MAX_PCR_INDEX)
                .ok_or(DocumentError::PcrIndex(i))?,
            _ => return Err(invalid("pcrs", "keys must be unsigned integers")),
        };
        let Value::Bytes(bytes) = value else {
            return Err(invalid("pcrs", "values must be byte strings"));
        };
        if !PCR_LENGTHS.contains(&bytes.len()) {
            return Err(DocumentError::PcrLength {
                index,
                len: bytes.len(),
            });
        }
        pcrs.insert(index, bytes.to_vec());
    }
    Ok(pcrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends a CBOR text string (short lengths only; enough for field names).
    fn text(out: &mut Vec<u8>, s: &str) {
        out.push(0x60 | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }

    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&[0x59, (b.len() >> 8) as u8, b.len() as u8]);
        out.extend_from_slice(b);
    }

    /// A minimal valid payload with `extra` raw key/value bytes appended as `extra_entries`
    /// additional map entries.
    fn payload(extra_entries: u8, extra: &[u8]) -> Vec<u8> {
        let mut out = vec![0xa6 + extra_entries];
        text(&mut out, "module_id");
        text(&mut out, "i-1");
        text(&mut out, "digest");
        text(&mut out, "SHA384");
        text(&mut out, "timestamp");
        out.extend_from_slice(&[0x1a, 0, 0, 0, 1]);
        text(&mut out, "pcrs");
        out.extend_from_slice(&[0xa1, 0x00]);
        bytes(&mut out, &[0; 48]);
        text(&mut out, "certificate");
        bytes(&mut out, &[0x30]);
        text(&mut out, "cabundle");
        out.push(0x81);
        bytes(&mut out, &[0x30]);
        out.extend_from_slice(extra);
        out
    }

    #[test]
    fn parses_minimal_document_and_null_optionals() {
        let mut extra = Vec::new();
        text(&mut extra, "nonce");
        extra.push(0xf6);
        let doc = AttestationDocument::parse(&payload(1, &extra)).expect("valid");
        assert_eq!(doc.module_id, "i-1");
        assert_eq!(doc.timestamp_ms, 1);
        assert_eq!(doc.pcrs.get(&0).map(Vec::len), Some(48));
        assert_eq!(doc.nonce, None);
        assert!(!doc.is_debug(), "PCR1 and PCR2 are absent");
    }

    #[test]
    fn enforces_optional_field_limits() {
        for (field, len) in [
            ("user_data", 1025),
            ("nonce", 1025),
            ("public_key", 0),
            ("public_key", 1025),
        ] {
            let mut extra = Vec::new();
            text(&mut extra, field);
            bytes(&mut extra, &vec![0; len]);
            let expected = invalid(field, "must be a byte string within the size limit");
            assert_eq!(
                AttestationDocument::parse(&payload(1, &extra)),
                Err(expected),
                "{field} {len}"
            );
        }
        for (field, len) in [("user_data", 1024), ("nonce", 0), ("public_key", 1024)] {
            let mut extra = Vec::new();
            text(&mut extra, field);
            bytes(&mut extra, &vec![0; len]);
            assert!(
                AttestationDocument::parse(&payload(1, &extra)).is_ok(),
                "{field} {len}"
            );
        }
    }

    #[test]
    fn rejects_bad_pcrs_digest_and_unknown_fields() {
        let mut doc = payload(0, &[]);
        let pcr_len = doc.iter().position(|&b| b == 0x59).expect("first bstr");
        doc[pcr_len + 2] = 47;
        doc.remove(pcr_len + 3);
        assert_eq!(
            AttestationDocument::parse(&doc),
            Err(DocumentError::PcrLength { index: 0, len: 47 })
        );

        let doc = payload(0, &[]);
        let sha = doc.windows(6).position(|w| w == b"SHA384").expect("digest");
        let mut sha256 = doc.clone();
        sha256[sha..sha + 6].copy_from_slice(b"SHA256");
        assert_eq!(
            AttestationDocument::parse(&sha256),
            Err(DocumentError::UnsupportedDigest("SHA256".into()))
        );

        let mut extra = Vec::new();
        text(&mut extra, "extra");
        extra.push(0x00);
        assert_eq!(
            AttestationDocument::parse(&payload(1, &extra)),
            Err(DocumentError::UnknownField("extra".into()))
        );
    }

    #[test]
    fn rejects_missing_and_null_mandatory_fields() {
        let mut doc = payload(0, &[]);
        doc[0] = 0xa5; // drop the last entry (cabundle) by declaring one fewer…
        let cut = doc
            .windows(9)
            .position(|w| w == b"\x68cabundle")
            .expect("cabundle");
        doc.truncate(cut);
        assert_eq!(
            AttestationDocument::parse(&doc),
            Err(DocumentError::MissingField("cabundle"))
        );
        let mut extra = Vec::new();
        text(&mut extra, "cabundle");
        extra.push(0xf6);
        doc[0] = 0xa6;
        doc.extend_from_slice(&extra);
        assert_eq!(
            AttestationDocument::parse(&doc),
            Err(DocumentError::MissingField("cabundle"))
        );
    }
}
