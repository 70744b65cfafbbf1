//! Image sources: resolving index → manifest → config → layers in an OCI layout, an oci-archive,
//! a docker-archive, or walking a rootfs directory; then building the flattened [`Tree`].

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::hash_thread::ChunkedHash;

use super::config::ImageConfig;
use super::layer::{index_layer, Budget, DataHome, IndexedLayer};
use super::path::normalize;
use super::resolve::{expected_diff_ids, resolve, LayerRef, Provenance, Resolved, Want};
use super::store::Store;
use super::tree::{Change, DataRef, Node, NodeKind, Tree};
use super::{finish_digest, ImageError};

/// Where the user's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `docker save` output.
    DockerArchive(PathBuf),
    /// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
    OciLayout(PathBuf),
    /// An OCI image layout packed in a tar (`skopeo copy … oci-archive:`).
    OciArchive(PathBuf),
    /// A plain directory used as the root filesystem; owners are normalized to 0:0.
    RootfsDir(PathBuf),
    /// Bare layer tarballs (gzip, zstd or plain), applied in order; there is no image config,
    /// so the command comes from the overrides.
    LayerTars(Vec<PathBuf>),
}

impl ImageSource {
    /// Guesses the kind of `path`: a directory with an `oci-layout` file is an OCI layout, any
    /// other directory a rootfs; a tar with `oci-layout` is an oci-archive (preferred, as its
    /// blobs carry digests), else one with `manifest.json` a docker-archive.
    pub fn detect(path: &Path) -> Result<ImageSource, ImageError> {
        let meta = std::fs::metadata(path).map_err(ImageError::io(path.display().to_string()))?;
        if meta.is_dir() {
            return Ok(if path.join("oci-layout").is_file() {
                ImageSource::OciLayout(path.to_path_buf())
            } else {
                ImageSource::RootfsDir(path.to_path_buf())
            });
        }
        let Store::Archive { members, .. } = Store::archive(path)? else {
            return Err(ImageError::Missing(path.display().to_string()));
        };
        if members.contains_key(&b"oci-layout"[..]) {
            Ok(ImageSource::OciArchive(path.to_path_buf()))
        } else if members.contains_key(&b"manifest.json"[..]) {
            Ok(ImageSource::DockerArchive(path.to_path_buf()))
        } else {
            Err(ImageError::Missing(format!(
                "{}: neither oci-layout nor manifest.json",
                path.display()
            )))
        }
    }
}

/// Platform to pick from an image index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64` or `linux/arm64`, matching an EIF architecture.
    pub fn linux(architecture: &str) -> Self {
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An input whose bytes the second pass copies into the ramdisk.
#[derive(Debug)]
enum Input {
    /// A layer blob (whole file or a region of an archive), kept open while copying.
    Blob(PathBuf),
    /// A decompressed layer (a deleted temporary file).
    Spool(File),
    /// A single file (rootfs-dir entry, injected file), opened when copied.
    Loose(PathBuf),
    /// Nothing: the spool slot of an uncompressed layer.
    Absent,
}

/// A flattened image, ready to be written as a ramdisk.
#[derive(Debug)]
pub struct OpenedImage {
    pub config: ImageConfig,
    pub tree: Tree,
    /// The digest the image was identified by: the manifest's (OCI) or the config's (docker).
    pub digest: Option<String>,
    /// Every document and layer the image was made of, by digest.
    pub provenance: Provenance,
    pub(crate) inputs: Inputs,
}

/// An image's config and provenance, resolved without reading its layers (`validate`, and the
/// runtime config that must be known before the build writes it into the image).
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    pub config: ImageConfig,
    pub provenance: Provenance,
}

/// The files the tree's [`DataRef`]s point into.
#[derive(Debug, Default)]
pub(crate) struct Inputs {
    list: Vec<Input>,
    open_blobs: HashMap<u32, File>,
    /// Reused for every copy (fresh memory costs page faults).
    copy_buf: Vec<u8>,
}

impl OpenedImage {
    fn empty() -> Self {
        OpenedImage {
            config: ImageConfig::default(),
            tree: Tree::new(),
            digest: None,
            provenance: Provenance::default(),
            inputs: Inputs::default(),
        }
    }

    fn add_input(&mut self, input: Input) -> u32 {
        self.inputs.list.push(input);
        (self.inputs.list.len() - 1) as u32
    }

    /// Adds (or replaces) a regular file at `dest` (absolute, inside the image) with the
    /// contents of `source`, owned by 0:0 with permission bits `mode`. Its parent directories
    /// resolve through the image's own symlinks (`etc -> usr/etc`), which stay as they are.
    pub fn inject_file(&mut self, dest: &str, source: &Path, mode: u32) -> Result<(), ImageError> {
        let inject_err = |reason: String| ImageError::Inject {
            dest: dest.into(),
            reason,
        };
        let path = normalize(dest.as_bytes())
            .map_err(|reason| inject_err(reason.into()))?
            .ok_or_else(|| inject_err("it names the image root".into()))?;
        let path = self.tree.resolve_parent(&path).map_err(inject_err)?;
        let size = std::fs::metadata(source)
            .map_err(ImageError::io(source.display().to_string()))?
            .len();
        let id = self.add_input(Input::Loose(source.to_path_buf()));
        self.tree.put(
            path,
            Node {
                kind: NodeKind::File(DataRef {
                    source: id,
                    offset: 0,
                    size,
                }),
                mode: mode & 0o7777,
                uid: 0,
                gid: 0,
            },
        );
        Ok(())
    }
}

impl Inputs {
    /// Copies a file's bytes into `out`; fails if the input no longer holds them.
    pub(crate) fn copy_data(
        &mut self,
        data: DataRef,
        out: &mut dyn Write,
    ) -> Result<(), ImageError> {
        let input = self
            .list
            .get(data.source as usize)
            .ok_or_else(|| ImageError::Missing(format!("input #{}", data.source)))?;
        let (file, name): (&File, String) = match input {
            Input::Spool(f) => (f, "a spooled layer".into()),
            Input::Absent => return Err(ImageError::Missing(format!("input #{}", data.source))),
            Input::Blob(p) => {
                let f = match self.open_blobs.entry(data.source) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(v) => {
                        v.insert(File::open(p).map_err(ImageError::io(p.display().to_string()))?)
                    }
                };
                (&*f, p.display().to_string())
            }
            Input::Loose(p) => {
                let mut f = File::open(p).map_err(ImageError::io(p.display().to_string()))?;
                let copied = io::copy(&mut (&mut f).take(data.size), out)
                    .map_err(ImageError::io(p.display().to_string()))?;
                let longer = f
                    .read(&mut [0u8; 1])
                    .map_err(ImageError::io(p.display().to_string()))?
                    != 0;
                if copied != data.size || longer {
                    return Err(ImageError::Changed {
                        path: p.display().to_string(),
                        reason: "its size changed",
                    });
                }
                return Ok(());
            }
        };
        if self.copy_buf.is_empty() {
            self.copy_buf = vec![0u8; 1 << 20];
        }
        let buf = &mut self.copy_buf;
        let mut done = 0u64;
        while done < data.size {
            let want = buf.len().min((data.size - done) as usize);
            let n = file
                .read_at(&mut buf[..want], data.offset + done)
                .map_err(ImageError::io(name.clone()))?;
            if n == 0 {
                return Err(ImageError::Changed {
                    path: name,
                    reason: "it is shorter than indexed",
                });
            }
            out.write_all(&buf[..n])
                .map_err(ImageError::io("writing the ramdisk"))?;
            done += n as u64;
        }
        Ok(())
    }
}

/// Resolves an image without reading its layers: its config and what it is made of. Checks
/// everything but the layers' contents: the choice of image (reference, platform, pinned
/// digest), every document's digest, and that each layer blob is present at its size.
pub fn inspect_image(source: &ImageSource, want: &Want<'_>) -> Result<ImageInfo, ImageError> {
    match source {
        ImageSource::RootfsDir(dir) => {
            refuse_rootfs_selection(want)?;
            let meta = std::fs::metadata(dir).map_err(ImageError::io(dir.display().to_string()))?;
            if !meta.is_dir() {
                return Err(ImageError::Io {
                    context: dir.display().to_string(),
                    source: io::Error::other("not a directory"),
                });
            }
            std::fs::read_dir(dir).map_err(ImageError::io(dir.display().to_string()))?;
            Ok(ImageInfo::default())
        }
        ImageSource::LayerTars(paths) => {
            for p in paths {
                File::open(p).map_err(ImageError::io(p.display().to_string()))?;
            }
            Ok(ImageInfo::default())
        }
        ImageSource::OciLayout(_) | ImageSource::OciArchive(_) | ImageSource::DockerArchive(_) => {
            let resolved = resolve(source, &store_of(source)?, want)?;
            Ok(ImageInfo {
                config: resolved.config,
                provenance: resolved.provenance,
            })
        }
    }
}

/// A rootfs directory has neither digests nor several images to choose from.
fn refuse_rootfs_selection(want: &Want<'_>) -> Result<(), ImageError> {
    if let Some(pinned) = want.digest {
        return Err(ImageError::PinnedDigestNotFound(format!(
            "{pinned} (a rootfs directory has no digest)"
        )));
    }
    if let Some(r) = want.reference {
        return Err(ImageError::NoSuchReference {
            reference: r.into(),
            available: "(a rootfs directory holds one image)".into(),
        });
    }
    Ok(())
}

fn store_of(source: &ImageSource) -> Result<Store, ImageError> {
    Ok(match source {
        ImageSource::OciLayout(dir) => Store::Dir(dir.clone()),
        ImageSource::DockerArchive(p) | ImageSource::OciArchive(p) => Store::archive(p)?,
        ImageSource::LayerTars(_) | ImageSource::RootfsDir(_) => Store::Files,
    })
}

/// Opens and flattens an image: the one `want` selects (see [`inspect_image`]), every layer
/// checked against its digest and diff_id. Compressed layers are spooled into `spool_dir`.
pub fn open_image(
    source: &ImageSource,
    want: &Want<'_>,
    spool_dir: &Path,
    max_unpacked: u64,
) -> Result<OpenedImage, ImageError> {
    let store = store_of(source)?;
    let resolved = match source {
        ImageSource::RootfsDir(dir) => {
            refuse_rootfs_selection(want)?;
            return open_rootfs_dir(dir);
        }
        ImageSource::LayerTars(paths) => Resolved {
            config: ImageConfig::default(),
            layers: paths
                .iter()
                .map(|p| LayerRef {
                    name: p.display().to_string(),
                    digest: None,
                    media_type: None,
                    size: None,
                })
                .collect(),
            identities: Vec::new(),
            digest: None,
            provenance: Provenance::default(),
        },
        _ => resolve(source, &store, want)?,
    };
    let diff_ids = expected_diff_ids(source, &resolved)?;
    let mut image = OpenedImage::empty();
    image.digest = resolved.digest.clone();
    // Each layer gets two input slots: its blob and, when compressed, its spool file.
    let mut jobs = Vec::new();
    for (i, layer) in resolved.layers.iter().enumerate() {
        let (path, base, len) = store.region(&layer.name)?;
        let blob_source = image.add_input(Input::Blob(path.clone()));
        image.add_input(Input::Absent);
        jobs.push(LayerJob {
            index: i,
            layer,
            path,
            base,
            len,
            blob_source,
            diff_id: diff_ids.as_ref().map(|ids| ids[i].as_str()),
        });
    }
    let budget = Budget {
        used: AtomicU64::new(0),
        max: max_unpacked,
    };
    let make_spool = || tempfile::tempfile_in(spool_dir);
    for (job, indexed) in jobs
        .iter()
        .zip(index_in_parallel(&jobs, &budget, &make_spool)?)
    {
        if let Some(spool) = indexed.spool {
            image.inputs.list[job.blob_source as usize + 1] = Input::Spool(spool);
        }
        image.tree.apply_layer(job.index, indexed.changes)?;
    }
    image.config = resolved.config;
    image.provenance = resolved.provenance;
    Ok(image)
}

/// One layer to index, with the digests it must have.
struct LayerJob<'a> {
    index: usize,
    layer: &'a LayerRef,
    path: PathBuf,
    base: u64,
    len: u64,
    /// Input slot of the blob; the next slot is for its spool file.
    blob_source: u32,
    diff_id: Option<&'a str>,
}

/// Indexes the layers on up to one thread per CPU (layers are independent until they are
/// applied in order). After a failure no further layer is started; layers are started in
/// order, so every layer before the failing one completes and the error reported is always
/// the first in layer order.
fn index_in_parallel(
    jobs: &[LayerJob<'_>],
    budget: &Budget,
    make_spool: &(dyn Fn() -> io::Result<File> + Sync),
) -> Result<Vec<IndexedLayer>, ImageError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let slots: Vec<Mutex<Option<Result<IndexedLayer, ImageError>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let result = index_job(job, budget, make_spool);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(result);
                        }
                    }
                })
            })
            .collect();
        // Joined explicitly: the scope's implicit wait ends before a thread has fully exited.
        for worker in workers {
            let _ = worker.join();
        }
    });
    let mut indexed = Vec::new();
    for (i, slot) in slots.into_iter().enumerate() {
        match slot.into_inner().ok().flatten() {
            Some(result) => indexed.push(result?),
            // Only layers after a failed one are never started, so this is not reached.
            None => return Err(ImageError::Missing(format!("the index of layer {i}"))),
        }
    }
    Ok(indexed)
}

/// Indexes one layer and checks its blob digest and diff_id.
fn index_job(
    job: &LayerJob<'_>,
    budget: &Budget,
    make_spool: &(dyn Fn() -> io::Result<File> + Sync),
) -> Result<IndexedLayer, ImageError> {
    let i = job.index;
    let mut f = File::open(&job.path).map_err(ImageError::io(job.path.display().to_string()))?;
    f.seek(SeekFrom::Start(job.base))
        .map_err(ImageError::io(job.path.display().to_string()))?;
    let mut hashing = HashingReader {
        inner: f.take(job.len),
        hasher: (job.layer.digest.is_some() || job.diff_id.is_some())
            .then(|| ChunkedHash::spawn(Sha256::new())),
    };
    let home = DataHome {
        source: job.blob_source,
        base: job.base,
        spool_source: job.blob_source + 1,
        make_spool,
    };
    let indexed = index_layer(i, &mut hashing, &home, budget, job.diff_id.is_some())?;
    io::copy(&mut hashing, &mut io::sink())
        .map_err(|source| ImageError::CorruptLayer { layer: i, source })?;
    let blob_digest = finish_digest(hashing.hasher, i)?;
    if let (Some(expected), Some(actual)) = (&job.layer.digest, &blob_digest) {
        check_digest(&format!("layer {i} ({})", job.layer.name), expected, actual)?;
    }
    if let Some(expected) = job.diff_id {
        let actual = if indexed.spool.is_some() {
            &indexed.diff_id
        } else {
            &blob_digest
        };
        let actual = actual.as_deref().unwrap_or_default();
        check_digest(
            &format!("layer {i} uncompressed (config diff_id)"),
            expected,
            actual,
        )?;
    }
    Ok(indexed)
}

/// Hashes a blob (on a helper thread) as it is read, when it has a digest to check.
struct HashingReader<R> {
    inner: R,
    hasher: Option<ChunkedHash<Sha256>>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n])?;
        }
        Ok(n)
    }
}

pub(crate) fn check_digest(what: &str, expected: &str, actual: &str) -> Result<(), ImageError> {
    if actual != expected {
        return Err(ImageError::DigestMismatch {
            what: what.into(),
            expected: expected.into(),
            actual: actual.into(),
        });
    }
    Ok(())
}

/// A directory used as the image root: every entry is indexed (symlinks not followed), owners
/// are normalized to 0:0, sockets are skipped (they cannot exist in an initramfs).
fn open_rootfs_dir(root: &Path) -> Result<OpenedImage, ImageError> {
    let mut image = OpenedImage::empty();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(ImageError::io(dir.display().to_string()))?;
        for entry in entries {
            let entry = entry.map_err(ImageError::io(dir.display().to_string()))?;
            let rel_path = rel.join(entry.file_name());
            let full = entry.path();
            let meta = std::fs::symlink_metadata(&full)
                .map_err(ImageError::io(full.display().to_string()))?;
            let ft = meta.file_type();
            let rdev = meta.rdev();
            let (major, minor) = (
                (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32,
                ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32,
            );
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_dir() {
                stack.push(rel_path.clone());
                NodeKind::Dir
            } else if ft.is_file() {
                let source = image.add_input(Input::Loose(full.clone()));
                NodeKind::File(DataRef {
                    source,
                    offset: 0,
                    size: meta.len(),
                })
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&full)
                    .map_err(ImageError::io(full.display().to_string()))?;
                NodeKind::Symlink(target.as_os_str().as_bytes().to_vec())
            } else if ft.is_char_device() {
                NodeKind::CharDevice { major, minor }
            } else if ft.is_block_device() {
                NodeKind::BlockDevice { major, minor }
            } else if ft.is_fifo() {
                NodeKind::Fifo
            } else {
                continue;
            };
            let path = rel_path.as_os_str().as_bytes().to_vec();
            image.tree.apply_layer(
                0,
                vec![Change::Put {
                    path,
                    node: Node {
                        kind,
                        mode: meta.permissions().mode() & 0o7777,
                        uid: 0,
                        gid: 0,
                    },
                }],
            )?;
        }
    }
    Ok(image)
}
