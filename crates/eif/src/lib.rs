//! Enclave Image File (EIF) format: reproducible writer, streaming reader, PCR measurement,
//! signing, and the Docker-free path from a container image to an EIF.
//!
//! Entry points: [`build_eif`] (everything), [`describe`] (read any EIF), and the lower-level
//! [`writer::EifWriter`], [`bootstrap::write_bootstrap_ramdisk`], [`image`] and [`sign`].

pub mod bootstrap;
mod build;
pub mod cpio;
pub mod elf;
pub mod format;
mod hash_thread;
pub mod image;
mod output;
pub mod pcr;
pub mod reader;
mod sha384;
pub mod sign;
mod time;
mod worker;
pub mod writer;

pub use build::{
    build_eif, inspect_spec_image, open_spec_image, sha384_file, write_image_ramdisk, BuildError,
    BuildOutput, BuildSpec, ImageSpec, InputDigest, NoProgress, Progress, SigningSpec,
    DEFAULT_MAX_UNPACKED,
};
pub use reader::{describe, Description, SignatureCheck};
