//! Enclave Image File (EIF) format: reproducible writer, streaming reader, PCR measurement, signing.
