//! An attestation request, checked against the NSM's size limits before it reaches the device, so
//! an oversize field is a clear error instead of the driver's `InputTooLarge`.

use crate::NsmError;

/// Limits of AWS's NSM API documentation (`user_data` and `nonce` up to 512 bytes, `public_key`
/// up to 1024 bytes). Some NSM versions accept more, but a runtime that relied on that would fail
/// on the others.
pub const MAX_USER_DATA_LEN: usize = 512;
pub const MAX_NONCE_LEN: usize = 512;
pub const MAX_PUBLIC_KEY_LEN: usize = 1024;

/// The optional fields a caller binds into an attestation document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestationRequest {
    user_data: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
}

impl AttestationRequest {
    /// Checks every field against the NSM limits.
    pub fn new(
        user_data: Option<Vec<u8>>,
        nonce: Option<Vec<u8>>,
        public_key: Option<Vec<u8>>,
    ) -> Result<Self, NsmError> {
        check("user_data", user_data.as_deref(), MAX_USER_DATA_LEN)?;
        check("nonce", nonce.as_deref(), MAX_NONCE_LEN)?;
        check("public_key", public_key.as_deref(), MAX_PUBLIC_KEY_LEN)?;
        Ok(Self {
            user_data,
            nonce,
            public_key,
        })
    }

    /// A request that binds only a public key (what KMS `Recipient` needs).
    pub fn for_public_key(public_key: Vec<u8>) -> Result<Self, NsmError> {
        Self::new(None, None, Some(public_key))
    }

    pub fn user_data(&self) -> Option<&[u8]> {
        self.user_data.as_deref()
    }

    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }

    pub fn public_key(&self) -> Option<&[u8]> {
        self.public_key.as_deref()
    }
}

fn check(field: &'static str, value: Option<&[u8]>, max: usize) -> Result<(), NsmError> {
    match value {
        Some(v) if v.len() > max => Err(NsmError::TooLarge {
            field,
            len: v.len(),
            max,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_inclusive_and_checked_per_field() {
        assert!(AttestationRequest::new(
            Some(vec![0; MAX_USER_DATA_LEN]),
            Some(vec![0; MAX_NONCE_LEN]),
            Some(vec![0; MAX_PUBLIC_KEY_LEN])
        )
        .is_ok());
        for (request, field) in [
            (
                AttestationRequest::new(Some(vec![0; MAX_USER_DATA_LEN + 1]), None, None),
                "user_data",
            ),
            (
                AttestationRequest::new(None, Some(vec![0; MAX_NONCE_LEN + 1]), None),
                "nonce",
            ),
            (
                AttestationRequest::new(None, None, Some(vec![0; MAX_PUBLIC_KEY_LEN + 1])),
                "public_key",
            ),
        ] {
            match request {
                Err(NsmError::TooLarge { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
