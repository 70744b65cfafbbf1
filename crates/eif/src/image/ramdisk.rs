//! The customer ramdisk: the flattened image under `rootfs/`, plus `cmd` and `env`, as the
//! layout AWS's `init` reads; serialized deterministically.
//!
//! Policy (documented for reproducibility): paths in byte order (parents first); every mtime is
//! `mtime` (SOURCE_DATE_EPOCH, default 0); uid/gid as in the layer tar headers (0:0 for rootfs
//! directories and generated entries); permission bits kept, suid/sgid/sticky included;
//! inodes numbered from 1 in output order, device 0:0; nlink 2 for directories, 1 otherwise;
//! hardlinks become independent copies; no xattrs; uncompressed; zero-padded to 512 bytes.

use std::io::{self, Write};

use super::config::{lines, Command};
use super::source::OpenedImage;
use super::tree::NodeKind;
use super::ImageError;
use crate::cpio::{CpioWriter, EntryHeader, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG};

/// Directories `init` mounts onto; created when the image lacks them (through the image's own
/// symlinks: `tmp -> var/tmp` stays a link, `var/tmp` becomes the directory).
const MOUNT_POINTS: [&str; 6] = ["dev", "run", "sys", "var", "proc", "tmp"];

/// A host file to place in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Absolute path inside the image, e.g. `/.nitro-provision/enclave-runtime`.
    pub dest: String,
    pub source: std::path::PathBuf,
    pub mode: u32,
}

/// What went into a customer ramdisk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRamdisk {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub entries: usize,
}

/// Streams the customer ramdisk for `image` into `out`.
pub fn write_customer_ramdisk(
    image: &mut OpenedImage,
    command: &Command,
    mtime: u32,
    out: &mut dyn Write,
) -> Result<CustomerRamdisk, ImageError> {
    let (argv, env) = command.resolve(&image.config)?;
    for dir in MOUNT_POINTS {
        image.tree.ensure_mount_point(dir.as_bytes())?;
    }
    let mut w = CpioWriter::new(out, 1, (0, 0));
    let generated = |name: &[u8], mode: u32, size: u64| EntryHeader {
        name: name.to_vec(),
        mode,
        uid: 0,
        gid: 0,
        nlink: if mode & S_IFDIR == S_IFDIR { 2 } else { 1 },
        mtime,
        size,
        rdev_major: 0,
        rdev_minor: 0,
    };
    let (cmd, env_bytes) = (lines(&argv), lines(&env));
    w.entry(
        &generated(b"cmd", S_IFREG | 0o644, cmd.len() as u64),
        &mut &cmd[..],
    )?;
    w.entry(
        &generated(b"env", S_IFREG | 0o644, env_bytes.len() as u64),
        &mut &env_bytes[..],
    )?;
    w.entry(&generated(b"rootfs", S_IFDIR | 0o755, 0), &mut io::empty())?;

    let mut entries = 3;
    let OpenedImage { tree, inputs, .. } = image;
    for (path, node) in tree.iter() {
        entries += 1;
        let mut name = b"rootfs/".to_vec();
        name.extend_from_slice(path);
        let (type_bits, size, rdev) = match &node.kind {
            NodeKind::Dir => (S_IFDIR, 0, (0, 0)),
            NodeKind::File(d) => (S_IFREG, d.size, (0, 0)),
            NodeKind::Symlink(t) => (S_IFLNK, t.len() as u64, (0, 0)),
            NodeKind::CharDevice { major, minor } => (S_IFCHR, 0, (*major, *minor)),
            NodeKind::BlockDevice { major, minor } => (S_IFBLK, 0, (*major, *minor)),
            NodeKind::Fifo => (S_IFIFO, 0, (0, 0)),
        };
        let header = EntryHeader {
            name,
            mode: type_bits | (node.mode & 0o7777),
            uid: node.uid,
            gid: node.gid,
            nlink: if type_bits == S_IFDIR { 2 } else { 1 },
            mtime,
            size,
            rdev_major: rdev.0,
            rdev_minor: rdev.1,
        };
        match &node.kind {
            NodeKind::File(d) => {
                let d = *d;
                w.entry_with(&header, |out| inputs.copy_data(d, out))?;
            }
            NodeKind::Symlink(t) => w.entry(&header, &mut &t[..])?,
            _ => w.entry(&header, &mut io::empty())?,
        }
    }
    w.finish(512)?;
    Ok(CustomerRamdisk { argv, env, entries })
}
