//! Typed KMS key policy model for Nitro Enclaves: render, guard, evaluate and diff attestation-conditioned policies.
