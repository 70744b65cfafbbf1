//! Verification of Nitro Enclaves attestation documents (COSE_Sign1, AWS certificate chain, PCR policy). No AWS SDK, no OpenSSL.
