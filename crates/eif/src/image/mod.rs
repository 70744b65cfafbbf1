//! Container images → the customer ramdisk: reading docker-archive, OCI layout, oci-archive and
//! plain rootfs directories, flattening layers with OCI whiteout semantics, and writing the
//! deterministic cpio nitro-cli's `init` expects (`rootfs/…`, `cmd`, `env`).
//!
//! Memory holds only an index of entries (paths, modes, data offsets); file contents are copied
//! straight from the layer blobs (or from a spool file for compressed layers) to the output.
//!
//! Untrusted input handling (nothing is ever extracted to the host, so no entry can write
//! outside the output directory):
//! - `..` components, NUL bytes, non-directory root entries, dangling or directory hardlinks,
//!   unsupported tar entry types (e.g. GNU sparse), symlink loops in a parent path: errors.
//! - Absolute entry paths are made relative; parent paths resolve through the image's own
//!   symlinks, clamped at the image root (as containerd applies layers).
//! - Symlink targets are kept verbatim: they only ever resolve inside the enclave's root.
//! - Duplicate entries: the later one wins. Device nodes and FIFOs are kept (the enclave
//!   kernel creates them); sockets in a rootfs directory are skipped.
//! - Truncated or corrupt archives and blobs whose digest differs from the manifest (or, for
//!   docker archives, the config's diff_ids): errors. Unpacked size is capped (`max_unpacked`).
//! - A tar stream missing only its final padding and end-of-archive blocks (umoci 0.4.7) is
//!   accepted when every entry's data is present.

mod config;
mod layer;
mod path;
mod ramdisk;
mod resolve;
mod select;
mod source;
mod store;
mod tree;

pub use config::{Command, ImageConfig, ProcessConfig};
pub use ramdisk::{write_customer_ramdisk, CustomerRamdisk, ExtraFile};
pub use resolve::{LayerProvenance, Provenance, Want};
pub(crate) use select::repository;
pub use select::{normalize_docker, REF_NAME};
pub use source::{inspect_image, open_image, ImageInfo, ImageSource, OpenedImage, Platform};
pub use tree::{Node, NodeKind, Tree};

use std::io;

/// Errors from reading and flattening an image; each names the offending input.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("{0}: not found in the image")]
    Missing(String),
    #[error("{what}: invalid JSON: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("{what}: expected digest {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("the pinned digest {0} matches neither the index, the manifest nor the config")]
    PinnedDigestNotFound(String),
    #[error("unsupported digest {0} (only sha256 is supported)")]
    UnsupportedDigest(String),
    #[error("no manifest for platform {wanted}; the image has: {available}")]
    NoMatchingPlatform { wanted: String, available: String },
    #[error("the image is for {image}, but the EIF is built for {wanted}")]
    WrongPlatform { image: String, wanted: String },
    #[error("it holds {count} images; name one after the path (SOURCE:REF): {references}")]
    AmbiguousImage { count: usize, references: String },
    #[error("no image `{reference}` in it; it has: {available}")]
    NoSuchReference {
        reference: String,
        available: String,
    },
    #[error("`{0}` is not a docker image reference (NAME[:TAG] or @INDEX)")]
    BadReference(String),
    #[error("{path}: truncated archive: {reason}")]
    Truncated { path: String, reason: String },
    #[error("layer {layer} ({name}) is {actual} bytes, but its descriptor says {expected}: truncated or replaced")]
    LayerSize {
        layer: usize,
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("cannot add {dest} to the image: {reason}")]
    Inject { dest: String, reason: String },
    #[error("/{path} (where the enclave's init mounts a filesystem): {reason}")]
    MountPoint { path: String, reason: String },
    #[error("image index nesting is deeper than {0}")]
    IndexTooDeep(usize),
    #[error("layer {layer}: entry {path:?}: {reason}")]
    BadEntry {
        layer: usize,
        path: String,
        reason: String,
    },
    #[error("layer {layer}: the archive is corrupt or truncated: {source}")]
    CorruptLayer { layer: usize, source: io::Error },
    #[error("the image unpacks to more than {0} bytes")]
    TooLarge(u64),
    #[error("{0:?}: an argument or environment entry contains a newline, which init cannot read")]
    Newline(String),
    #[error("the image has no command: set Entrypoint/Cmd in the image or a command override")]
    NoCommand,
    #[error(transparent)]
    Cpio(#[from] crate::cpio::CpioError),
    #[error("{path}: changed while the image was being built ({reason})")]
    Changed { path: String, reason: &'static str },
}

/// An OCI content digest: `sha256:<64 hex>`.
pub(crate) fn oci_digest(hash: sha2::Sha256) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(hash.finalize()))
}

/// Finishes a SHA-256 run on a helper thread as an OCI digest; `None` when nothing was hashed.
pub(crate) fn finish_digest(
    hasher: Option<crate::hash_thread::ChunkedHash<sha2::Sha256>>,
    layer: usize,
) -> Result<Option<String>, ImageError> {
    hasher
        .map(|h| h.finish().map(oci_digest))
        .transpose()
        .map_err(|source| ImageError::CorruptLayer { layer, source })
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}
