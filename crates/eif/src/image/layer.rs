//! First pass over one layer: decompress (gzip, zstd or none, by magic bytes), index its tar
//! entries into [`Change`]s, and spool compressed layers to a temporary file so the second pass
//! can copy file data by offset without decompressing again.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::hash_thread::ChunkedHash;

use super::path::{file_name, normalize, parent};
use super::tree::{Change, DataRef, Node, NodeKind};
use super::{finish_digest, ImageError};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Bytes asked of a decompressor per call.
const DECODED_CHUNK: usize = 1 << 20;

/// How the indexed entries find their data again: an uncompressed blob's data is read in place
/// at `base + position` of input `source`; a compressed blob is decompressed into a spool file
/// made by `make_spool`, which the caller registers as input `spool_source`.
pub(crate) struct DataHome<'a> {
    pub source: u32,
    pub base: u64,
    pub spool_source: u32,
    pub make_spool: &'a (dyn Fn() -> io::Result<File> + Sync),
}

/// The image's unpacked-size budget, shared by layers indexed at the same time.
pub(crate) struct Budget {
    pub used: AtomicU64,
    pub max: u64,
}

/// Result of indexing a layer.
pub(crate) struct IndexedLayer {
    pub changes: Vec<Change>,
    /// SHA-256 of the decompressed tar (the config's `diff_id`), when asked for and the layer
    /// is compressed (an uncompressed layer's diff_id is its blob digest).
    pub diff_id: Option<String>,
    /// The spool file, when the layer was compressed.
    pub spool: Option<File>,
}

/// Counts, hashes and optionally spools the decompressed stream; enforces the size budget.
struct Tap<'b, R> {
    inner: R,
    spool: Option<BufWriter<File>>,
    hasher: Option<ChunkedHash<Sha256>>,
    budget: &'b Budget,
    over_budget: bool,
}

impl<R: Read> Read for Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let used = self.budget.used.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if used > self.budget.max {
            self.over_budget = true;
            return Err(io::Error::other("unpacked size budget exceeded"));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n])?;
        }
        if let Some(s) = self.spool.as_mut() {
            s.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// After the real end of a layer's tar stream, supplies the zero padding and end-of-archive
/// blocks some writers omit (umoci 0.4.7 ends its layers right after the last file's data).
/// Entries whose data lies beyond the real end are rejected by [`index_layer`], so this never
/// turns a truncated file into a zero-filled one.
struct ZeroTail<R> {
    inner: R,
    tail_left: usize,
}

impl<R: Read> Read for ZeroTail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let n = buf.len().min(self.tail_left);
        buf[..n].fill(0);
        self.tail_left -= n;
        Ok(n)
    }
}

/// Indexes layer number `layer` read from `blob`, counting its unpacked bytes against the
/// image's `budget`; `want_diff_id` asks for the decompressed digest of a compressed layer.
pub(crate) fn index_layer(
    layer: usize,
    blob: &mut dyn Read,
    home: &DataHome<'_>,
    budget: &Budget,
    want_diff_id: bool,
) -> Result<IndexedLayer, ImageError> {
    let mut buffered = BufReader::with_capacity(1 << 16, blob);
    let magic = buffered
        .fill_buf()
        .map_err(|source| ImageError::CorruptLayer { layer, source })?
        .to_vec();
    // Decompressors are asked for 1 MiB at a time: per call they copy their output into their
    // history window, which costs as much as inflating when tar reads 8 KiB at a time.
    let decoded: Box<dyn Read + '_> = if magic.starts_with(GZIP_MAGIC) {
        Box::new(BufReader::with_capacity(
            DECODED_CHUNK,
            flate2::bufread::MultiGzDecoder::new(buffered),
        ))
    } else if magic.starts_with(ZSTD_MAGIC) {
        Box::new(BufReader::with_capacity(
            DECODED_CHUNK,
            ruzstd::decoding::StreamingDecoder::new(buffered).map_err(|e| {
                ImageError::CorruptLayer {
                    layer,
                    source: io::Error::other(e.to_string()),
                }
            })?,
        ))
    } else {
        Box::new(buffered)
    };
    let compressed = magic.starts_with(GZIP_MAGIC) || magic.starts_with(ZSTD_MAGIC);
    let spool_file = if compressed {
        Some((home.make_spool)().map_err(ImageError::io("creating a spool file"))?)
    } else {
        None
    };
    let (source, base, spool) = match &spool_file {
        None => (home.source, home.base, None),
        Some(f) => (
            home.spool_source,
            0,
            Some(BufWriter::with_capacity(
                1 << 20,
                f.try_clone().map_err(ImageError::io("spool file"))?,
            )),
        ),
    };
    let mut tap = Tap {
        inner: decoded,
        spool,
        hasher: (want_diff_id && compressed).then(|| ChunkedHash::spawn(Sha256::new())),
        budget,
        over_budget: false,
    };
    let corrupt = |tap: &Tap<_>, source: io::Error| {
        if tap.over_budget {
            ImageError::TooLarge(budget.max)
        } else {
            ImageError::CorruptLayer { layer, source }
        }
    };
    let mut changes = Vec::new();
    let listed = (|| -> Result<(), ImageError> {
        let mut archive = tar::Archive::new(ZeroTail {
            inner: &mut tap,
            tail_left: 512 + 1024,
        });
        let entries = archive
            .entries()
            .map_err(|source| ImageError::CorruptLayer { layer, source })?;
        for entry in entries {
            let entry = entry.map_err(|source| ImageError::CorruptLayer { layer, source })?;
            if let Some(change) = entry_change(layer, &entry, source, base)? {
                changes.push(change);
            }
        }
        Ok(())
    })();
    match listed {
        Err(ImageError::CorruptLayer { .. }) if tap.over_budget => {
            return Err(ImageError::TooLarge(budget.max))
        }
        other => other?,
    }
    // Drain what follows the tar end marker so the digest and the spool are complete.
    if let Err(e) = io::copy(&mut tap, &mut io::sink()) {
        return Err(corrupt(&tap, e));
    }
    if let Some(mut s) = tap.spool.take() {
        s.flush().map_err(ImageError::io("spool file"))?;
    }
    let diff_id = finish_digest(tap.hasher.take(), layer)?;
    Ok(IndexedLayer {
        changes,
        diff_id,
        spool: spool_file,
    })
}

/// Turns one tar entry into a change of the tree (`None` for entries that carry no file).
fn entry_change<R: Read>(
    layer: usize,
    entry: &tar::Entry<'_, R>,
    source: u32,
    base: u64,
) -> Result<Option<Change>, ImageError> {
    let raw_path = entry.path_bytes().into_owned();
    let bad = |reason: &str| ImageError::BadEntry {
        layer,
        path: String::from_utf8_lossy(&raw_path).into_owned(),
        reason: reason.to_string(),
    };
    let header = entry.header();
    let kind = header.entry_type();
    if kind.is_pax_global_extensions()
        || kind.is_pax_local_extensions()
        || kind.is_gnu_longname()
        || kind.is_gnu_longlink()
    {
        return Ok(None);
    }
    let Some(path) = normalize(&raw_path).map_err(bad)? else {
        // The root itself: its attributes are not representable in the ramdisk's `rootfs/`.
        return if kind.is_dir() {
            Ok(None)
        } else {
            Err(bad("a non-directory entry names the root"))
        };
    };

    let name = file_name(&path);
    if let Some(rest) = name.strip_prefix(b".wh.") {
        let dir = parent(&path).unwrap_or_default().to_vec();
        return Ok(if rest == b".wh..opq" {
            Some(Change::Opaque(dir))
        } else if rest.starts_with(b".wh.") {
            // aufs bookkeeping (`.wh..wh.plnk` etc.): never part of the image.
            None
        } else if rest.is_empty() {
            return Err(bad("whiteout without a name"));
        } else {
            let mut target = dir;
            if !target.is_empty() {
                target.push(b'/');
            }
            target.extend_from_slice(rest);
            Some(Change::Whiteout(target))
        });
    }

    // Like Go's archive/tar (hence Docker), a field of only NULs and spaces reads as 0.
    let id = |v: io::Result<u64>, raw: &[u8], what: &str| -> Result<u32, ImageError> {
        if raw.iter().all(|&b| b == 0 || b == b' ') {
            return Ok(0);
        }
        v.ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| bad(&format!("invalid {what}")))
    };
    let old = header.as_old();
    let mode = id(header.mode().map(u64::from), &old.mode, "mode")? & 0o7777;
    let uid = id(header.uid(), &old.uid, "uid")?;
    let gid = id(header.gid(), &old.gid, "gid")?;
    let device = || -> Result<(u32, u32), ImageError> {
        match (header.device_major(), header.device_minor()) {
            (Ok(Some(major)), Ok(Some(minor))) => Ok((major, minor)),
            _ => Err(bad("invalid device numbers")),
        }
    };
    let node_kind = match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let size = entry.size();
            let offset = base
                .checked_add(entry.raw_file_position())
                .ok_or_else(|| bad("data offset overflows"))?;
            NodeKind::File(DataRef {
                source,
                offset,
                size,
            })
        }
        tar::EntryType::Directory => NodeKind::Dir,
        tar::EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad("symlink without a target"))?;
            if target.is_empty() || target.contains(&0) {
                return Err(bad("invalid symlink target"));
            }
            NodeKind::Symlink(target.into_owned())
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad("hardlink without a target"))?;
            let target = normalize(&target)
                .map_err(bad)?
                .ok_or_else(|| bad("hardlink to the root"))?;
            return Ok(Some(Change::Link { path, target }));
        }
        tar::EntryType::Char => {
            let (major, minor) = device()?;
            NodeKind::CharDevice { major, minor }
        }
        tar::EntryType::Block => {
            let (major, minor) = device()?;
            NodeKind::BlockDevice { major, minor }
        }
        tar::EntryType::Fifo => NodeKind::Fifo,
        other => {
            return Err(bad(&format!(
                "unsupported tar entry type {:?}",
                other.as_byte() as char
            )))
        }
    };
    Ok(Some(Change::Put {
        path,
        node: Node {
            kind: node_kind,
            mode,
            uid,
            gid,
        },
    }))
}
