//! A serialisable summary of a document for `--json` output and human display.
//!
//! Built from any parsed document, verified or not, so an invalid document can still be
//! inspected: certificates that do not parse are reported with the reason instead of failing
//! the whole report.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use x509_cert::der::Decode;
use x509_cert::Certificate;

use crate::document::AttestationDocument;

/// Formats a time as RFC 3339 UTC with millisecond precision. Never panics: documents may
/// carry any `u64` timestamp, beyond what RFC 3339's four-digit years can express.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    if time < UNIX_EPOCH {
        return "(before 1970-01-01)".to_owned();
    }
    let mut out = String::new();
    match write!(out, "{}", humantime::format_rfc3339_millis(time)) {
        Ok(()) => out,
        Err(_) => "(after 9999-12-31)".to_owned(),
    }
}

/// The document's fields in display form (hex for bytes, RFC 3339 for times).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub module_id: String,
    pub digest: &'static str,
    pub timestamp: String,
    pub timestamp_ms: u64,
    pub debug_mode: bool,
    /// PCR index → lowercase hex (the format KMS condition keys use).
    pub pcrs: BTreeMap<u8, String>,
    pub public_key: Option<String>,
    pub user_data: Option<String>,
    pub nonce: Option<String>,
    pub certificate: CertSummary,
    /// Root first, as in the document.
    pub cabundle: Vec<CertSummary>,
}

/// Identity and validity of one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CertSummary {
    Parsed {
        subject: String,
        issuer: String,
        serial: String,
        not_before: String,
        not_after: String,
    },
    Unparsable {
        error: String,
    },
}

impl CertSummary {
    fn from_der(der: &[u8]) -> Self {
        match Certificate::from_der(der) {
            Ok(cert) => {
                let tbs = cert.tbs_certificate;
                let time = |t: x509_cert::time::Time| rfc3339(t.to_system_time());
                Self::Parsed {
                    subject: tbs.subject.to_string(),
                    issuer: tbs.issuer.to_string(),
                    serial: hex::encode(tbs.serial_number.as_bytes()),
                    not_before: time(tbs.validity.not_before),
                    not_after: time(tbs.validity.not_after),
                }
            }
            Err(e) => Self::Unparsable {
                error: e.to_string(),
            },
        }
    }
}

impl Report {
    pub fn new(doc: &AttestationDocument) -> Self {
        let opt_hex = |v: &Option<Vec<u8>>| v.as_deref().map(hex::encode);
        Self {
            module_id: doc.module_id.clone(),
            digest: "SHA384",
            timestamp: rfc3339(UNIX_EPOCH + Duration::from_millis(doc.timestamp_ms)),
            timestamp_ms: doc.timestamp_ms,
            debug_mode: doc.is_debug(),
            pcrs: doc
                .pcrs
                .iter()
                .map(|(&index, value)| (index, hex::encode(value)))
                .collect(),
            public_key: opt_hex(&doc.public_key),
            user_data: opt_hex(&doc.user_data),
            nonce: opt_hex(&doc.nonce),
            certificate: CertSummary::from_der(&doc.certificate),
            cabundle: doc
                .cabundle
                .iter()
                .map(|c| CertSummary::from_der(c))
                .collect(),
        }
    }
}
