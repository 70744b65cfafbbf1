//! The bootstrap ramdisk (PCR1), laid out exactly as nitro-cli's linuxkit writes it, so that the
//! same kernel, `init` and `nsm.ko` give the same PCR1 as `nitro-cli build-enclave`.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::cpio::{CpioError, CpioWriter, EntryHeader, S_IFDIR, S_IFREG};

/// linuxkit's `defaultModTime` (2017-04-18T16:30:00Z), used for files it generates.
pub const LINUXKIT_MTIME: u32 = 1_492_533_000;
/// gocpio numbers inodes from 721 and writes device 3:1 in every header.
const FIRST_INO: u32 = 721;
const DEV: (u32, u32) = (3, 1);

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cpio(#[from] CpioError),
}

/// Streams the bootstrap cpio (`dev/`, `init`, `nsm.ko`, trailer, padded to 512) into `out`.
pub fn write_bootstrap_ramdisk(
    init: &Path,
    nsm_ko: &Path,
    out: &mut dyn Write,
) -> Result<(), BootstrapError> {
    let mut w = CpioWriter::new(out, FIRST_INO, DEV);
    let header = |name: &[u8], mode: u32, nlink: u32, size: u64| EntryHeader {
        name: name.to_vec(),
        mode,
        uid: 0,
        gid: 0,
        nlink,
        mtime: LINUXKIT_MTIME,
        size,
        rdev_major: 0,
        rdev_minor: 0,
    };
    w.entry(
        &header(b"dev", S_IFDIR | 0o755, 2, 0),
        &mut std::io::empty(),
    )?;
    for (name, path) in [(&b"init"[..], init), (b"nsm.ko", nsm_ko)] {
        let err = |source| BootstrapError::Read {
            path: path.display().to_string(),
            source,
        };
        let mut f = File::open(path).map_err(err)?;
        let size = f.metadata().map_err(err)?.len();
        // linuxkit's files: section writes both blobs 0755, whatever their mode on disk.
        w.entry(&header(name, S_IFREG | 0o755, 1, size), &mut f)?;
    }
    w.finish(512)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against the reference notes' layout: the sizes of the real x86_64 blobs give a
    /// 764416-byte archive, and the first record's exact bytes.
    #[test]
    fn layout_matches_linuxkit() {
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("init");
        let nsm = dir.path().join("nsm.ko");
        std::fs::write(&init, vec![0x7f; 742_968]).unwrap();
        std::fs::write(&nsm, vec![0x01; 20_504]).unwrap();
        let mut out = Vec::new();
        write_bootstrap_ramdisk(&init, &nsm, &mut out).unwrap();
        assert_eq!(out.len(), 764_416);
        let first = "070701000002d1000041ed00000000000000000000000258f63f0800000000000000030000000100000000000000000000000400000000dev\0";
        assert_eq!(&out[..first.len()], first.as_bytes());
        // The second record: init, inode 722, mode 0100755, nlink 1, size 742968, name size 5.
        let second = &out[116..116 + 115];
        assert_eq!(
            second,
            &b"070701000002d2000081ed000000000000000000000001\
               58f63f08000b5638000000030000000100000000000000000000000500000000init\0"[..]
        );
        // Trailer: inode 724, mode 0, nlink 1, mtime 0.
        let trailer_at = 116 + 116 + 742_968 + 120 + 20_504;
        assert_eq!(
            &out[trailer_at..trailer_at + 121],
            &b"070701000002d4000000000000000000000000000000010000000000000000000000030000000100000000000000000000000b00000000TRAILER!!!\0"[..]
        );
        assert!(out[trailer_at + 124..].iter().all(|&b| b == 0));
    }
}
