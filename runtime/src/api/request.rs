//! Parsing of the API's untrusted input (fuzzed: `runtime/fuzz`): object names and the
//! attestation request body.

use base64::Engine;
use nitro_nsm::AttestationRequest;
use serde::Deserialize;

/// Longest object name (S3 allows 1024 bytes per key, minus the prefix).
pub const MAX_NAME: usize = 512;

/// Why a request was refused (400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("name must be 1–{MAX_NAME} bytes of A-Z a-z 0-9 . _ - in `/`-separated segments, without `.` or `..` segments")]
    BadName,
    #[error("body: {0}")]
    Body(String),
    #[error("{field}: not standard base64")]
    Base64 { field: &'static str },
    #[error("{0}")]
    Limits(String),
}

/// Checks an object name: it becomes part of an S3 key, so no traversal-looking segments.
pub fn check_name(name: &str) -> Result<&str, RequestError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    ok.then_some(name).ok_or(RequestError::BadName)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestationBody {
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    user_data: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
}

/// `{"nonce", "user_data", "public_key"}` (each optional, standard base64) within the NSM's
/// limits.
pub fn attestation_request(body: &[u8]) -> Result<AttestationRequest, RequestError> {
    let body: AttestationBody =
        serde_json::from_slice(body).map_err(|e| RequestError::Body(e.to_string()))?;
    let decode = |field: &'static str, v: Option<String>| {
        v.map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| RequestError::Base64 { field })
        })
        .transpose()
    };
    AttestationRequest::new(
        decode("user_data", body.user_data)?,
        decode("nonce", body.nonce)?,
        decode("public_key", body.public_key)?,
    )
    .map_err(|e| RequestError::Limits(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "config.json", "users/42/profile", "A-b_c.d"] {
            assert_eq!(check_name(good), Ok(good));
        }
        let long = "a".repeat(MAX_NAME + 1);
        for bad in [
            "", "/a", "a/", "a//b", "..", "a/../b", "./a", "a b", "ä", "a\\b", &long,
        ] {
            assert_eq!(check_name(bad), Err(RequestError::BadName), "{bad:?}");
        }
    }

    #[test]
    fn attestation_bodies() {
        let r = attestation_request(br#"{"nonce":"AAEC","user_data":"aGk="}"#).unwrap();
        assert_eq!(r.nonce(), Some(&[0, 1, 2][..]));
        assert_eq!(r.user_data(), Some(&b"hi"[..]));
        assert_eq!(r.public_key(), None);
        assert!(attestation_request(b"{}").is_ok());
        assert!(matches!(
            attestation_request(br#"{"nonce":"!!"}"#),
            Err(RequestError::Base64 { field: "nonce" })
        ));
        assert!(matches!(
            attestation_request(br#"{"extra":1}"#),
            Err(RequestError::Body(_))
        ));
        let big = base64::engine::general_purpose::STANDARD.encode([0u8; 513]);
        let err = attestation_request(format!(r#"{{"nonce":"{big}"}}"#).as_bytes()).unwrap_err();
        assert!(err.to_string().contains("512"), "{err}");
    }
}
