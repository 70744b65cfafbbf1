//! How a sealed secret in SSM is bound to its deployment and parameter: `nitro-provision secret
//! put` encrypts with this KMS encryption context and the runtime decrypts with the same one, so
//! a ciphertext copied to another parameter or another deployment's parameter never decrypts.

use std::collections::BTreeMap;

/// Encryption-context key naming the deployment.
pub const CONTEXT_DEPLOYMENT: &str = "nitro-provision:deployment";
/// Encryption-context key naming the SSM parameter that holds the ciphertext.
pub const CONTEXT_PARAMETER: &str = "nitro-provision:parameter";

/// The KMS encryption context of the secret stored in `parameter` for `deployment`.
pub fn secret_encryption_context(deployment: &str, parameter: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CONTEXT_DEPLOYMENT.to_string(), deployment.to_string()),
        (CONTEXT_PARAMETER.to_string(), parameter.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_binds_deployment_and_parameter() {
        let a = secret_encryption_context("demo", "/app/db");
        assert_eq!(a[CONTEXT_DEPLOYMENT], "demo");
        assert_eq!(a[CONTEXT_PARAMETER], "/app/db");
        assert_ne!(a, secret_encryption_context("demo", "/app/other"));
        assert_ne!(a, secret_encryption_context("prod", "/app/db"));
    }
}
