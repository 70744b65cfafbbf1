//! The high-level build: pinned inputs → a bit-reproducible EIF, its measurements, and a record
//! of every input's digest.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bootstrap::{write_bootstrap_ramdisk, BootstrapError};
use crate::elf::{identify_file, Binary};
use crate::format::Arch;
use crate::image::{
    inspect_image, open_image, write_customer_ramdisk, Command, ExtraFile, ImageConfig, ImageError,
    ImageInfo, ImageSource, OpenedImage, Platform, Provenance, Want,
};
use crate::output::OutputFile;
use crate::pcr::Measurements;
use crate::sha384::Sha384;
use crate::sign::{SignError, Signer};
use crate::time::rfc3339;
use crate::writer::{EifWriter, WriteError};

/// Default budget for the image's unpacked size.
pub const DEFAULT_MAX_UNPACKED: u64 = 16 << 30;

/// The image part of a build: also enough to write the customer ramdisk alone.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub source: ImageSource,
    /// The image of a layout or archive holding several (ref name, RepoTag or `@INDEX`).
    pub reference: Option<String>,
    /// Manifest to pick from an index; `None`: linux and the EIF's architecture.
    pub platform: Option<Platform>,
    /// Digest the image must have (index, manifest or config digest; docker-archive: image ID).
    pub digest: Option<String>,
    /// Files added to the image (e.g. the `enclave-runtime` binary), replacing image files.
    pub extra_files: Vec<ExtraFile>,
    pub command: Command,
    /// Every mtime in the ramdisk (`SOURCE_DATE_EPOCH`; 0 by default).
    pub source_date_epoch: u32,
    /// Refuse images that unpack to more than this many bytes.
    pub max_unpacked: u64,
}

/// Signing inputs: a PEM private key (ECDSA P-256/384/521) and its PEM certificate.
#[derive(Debug, Clone)]
pub struct SigningSpec {
    pub private_key: PathBuf,
    pub certificate: PathBuf,
}

/// Everything an EIF is built from.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// `ImageName` in the metadata when the image has no name of its own (a rootfs directory,
    /// an untagged image); otherwise its repository, as nitro-cli writes it.
    pub name: String,
    /// `ImageVersion` in the metadata; default: the image ID (config digest hex), as nitro-cli.
    pub version: Option<String>,
    pub arch: Arch,
    pub kernel: PathBuf,
    /// Trimmed before use, as nitro-cli does.
    pub cmdline: String,
    pub init: PathBuf,
    pub nsm_ko: PathBuf,
    pub image: ImageSpec,
    pub signing: Option<SigningSpec>,
    /// Expected SHA-384 (hex) of inputs, by [`InputDigest::name`] (`kernel`, `init`, `nsm.ko`,
    /// or an extra file's `dest`): the build fails naming the input on any mismatch.
    pub pinned_sha384: BTreeMap<String, String>,
}

/// Receives build progress; implemented by the CLI's progress bar.
pub trait Progress {
    /// A new stage starts; `total_bytes` is known for stages that copy data.
    fn stage(&self, name: &str, total_bytes: Option<u64>);
    /// `bytes` more bytes of the current stage are done.
    fn advance(&self, bytes: u64);
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
}

/// One input and its SHA-384, for the build manifest and the EIF metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputDigest {
    pub name: String,
    pub sha384: String,
}

/// What a build produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuildOutput {
    pub measurements: Measurements,
    pub eif_size: u64,
    pub inputs: Vec<InputDigest>,
    /// The digest the image was identified by (manifest, or docker image ID).
    pub image_digest: Option<String>,
    /// The enclave's command and environment, as written to `cmd` and `env`.
    pub argv: Vec<String>,
    pub env: Vec<String>,
    /// Entries in the customer ramdisk.
    pub ramdisk_entries: usize,
    /// What the image was made of, by digest.
    pub image: Provenance,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{name} ({path}): SHA-384 is {actual}, but {expected} is pinned")]
    PinMismatch {
        name: String,
        path: String,
        expected: String,
        actual: String,
    },
    #[error("a SHA-384 is pinned for {0:?}, which is not an input of this build")]
    UnknownPin(String),
    #[error("{name} ({path}) is {found}, but the EIF is built for {wanted}")]
    WrongArchitecture {
        name: String,
        path: String,
        found: Binary,
        wanted: Arch,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}

/// SHA-384 of a file, streamed.
pub fn sha384_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha384::default();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The EIF metadata: AWS's schema (`nitro-cli describe-eif` reads every field), with nothing
/// taken from the clock or the host. `ImageName`/`ImageVersion` and `DockerInfo` describe the
/// image as nitro-cli does (repository; image ID; a `docker inspect`-shaped summary).
fn metadata(spec: &BuildSpec, inputs: &[InputDigest], image: &OpenedImage) -> Vec<u8> {
    let p = &image.provenance;
    let name = p
        .name
        .as_deref()
        .and_then(crate::image::repository)
        .unwrap_or_else(|| spec.name.clone());
    let image_id = p.config.as_deref().map(|d| d.trim_start_matches("sha256:"));
    let version = spec
        .version
        .clone()
        .or_else(|| image_id.map(str::to_string))
        .unwrap_or_else(|| "unversioned".into());
    let json = serde_json::json!({
        "ImageName": name,
        "ImageVersion": version,
        "BuildMetadata": {
            "BuildTime": rfc3339(u64::from(spec.image.source_date_epoch)),
            "BuildTool": env!("CARGO_PKG_NAME"),
            "BuildToolVersion": env!("CARGO_PKG_VERSION"),
            "OperatingSystem": "Linux",
            "KernelVersion": "unknown",
        },
        "DockerInfo": docker_info(&image.config, p),
        "CustomMetadata": {
            "ImageDigest": image.digest,
            "Image": p,
            "Inputs": inputs,
        },
    });
    serde_json::to_vec(&json).unwrap_or_default()
}

/// The fields of `docker inspect` an image config and its provenance can fill.
fn docker_info(config: &ImageConfig, p: &Provenance) -> serde_json::Value {
    let process = config.config.clone().unwrap_or_default();
    serde_json::json!({
        "Id": p.config,
        "RepoTags": p.name.iter().collect::<Vec<_>>(),
        "Architecture": config.architecture,
        "Os": config.os,
        "Config": {
            "Entrypoint": process.entrypoint,
            "Cmd": process.cmd,
            "Env": process.env,
            "User": process.user,
            "WorkingDir": process.working_dir,
        },
    })
}

/// The platform an EIF's image must be for.
fn platform_of(spec: &ImageSpec, arch: Arch) -> Platform {
    spec.platform
        .clone()
        .unwrap_or_else(|| Platform::linux(arch.oci_name()))
}

/// Resolves the image of `spec` without reading its layers (see [`inspect_image`]).
pub fn inspect_spec_image(spec: &ImageSpec, arch: Arch) -> Result<ImageInfo, BuildError> {
    let platform = platform_of(spec, arch);
    Ok(inspect_image(
        &spec.source,
        &Want {
            platform: &platform,
            reference: spec.reference.as_deref(),
            digest: spec.digest.as_deref(),
        },
    )?)
}

/// Opens and flattens the image of `spec`, with the extra files injected.
pub fn open_spec_image(
    spec: &ImageSpec,
    arch: Arch,
    spool_dir: &Path,
) -> Result<OpenedImage, BuildError> {
    let platform = platform_of(spec, arch);
    let want = Want {
        platform: &platform,
        reference: spec.reference.as_deref(),
        digest: spec.digest.as_deref(),
    };
    let mut image = open_image(&spec.source, &want, spool_dir, spec.max_unpacked)?;
    for extra in &spec.extra_files {
        image.inject_file(&extra.dest, &extra.source, extra.mode)?;
    }
    Ok(image)
}

/// Refuses a kernel, `init` or `nsm.ko` recognizably built for another architecture than the
/// EIF's (files it cannot identify, such as test stand-ins, pass: their pins still hold).
fn check_blob_arch(name: &str, path: &Path, arch: Arch) -> Result<(), BuildError> {
    let found = identify_file(path).map_err(io_err(path.display().to_string()))?;
    match found.arch() {
        Some(a) if a != arch => Err(BuildError::WrongArchitecture {
            name: name.into(),
            path: path.display().to_string(),
            found,
            wanted: arch,
        }),
        _ => Ok(()),
    }
}

/// Counts bytes for the progress callback.
struct Reporting<'a> {
    out: &'a mut dyn Write,
    progress: &'a dyn Progress,
}

impl Write for Reporting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Builds the EIF described by `spec` into `out` (written to a temporary file beside it, then
/// renamed, so a failed build leaves no partial EIF).
pub fn build_eif(
    spec: &BuildSpec,
    out: &Path,
    progress: &dyn Progress,
) -> Result<BuildOutput, BuildError> {
    let mut inputs = Vec::new();
    let blobs = [
        ("kernel", &spec.kernel),
        ("init", &spec.init),
        ("nsm.ko", &spec.nsm_ko),
    ];
    let extras = spec
        .image
        .extra_files
        .iter()
        .map(|e| (e.dest.as_str(), &e.source));
    for (name, path) in blobs {
        check_blob_arch(name, path, spec.arch)?;
    }
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let hashed: u64 = blobs
        .into_iter()
        .chain(extras.clone())
        .map(|(_, p)| size(p))
        .sum();
    progress.stage("hashing inputs", Some(hashed));
    for (name, path) in blobs.into_iter().chain(extras) {
        let sha384 = sha384_file(path).map_err(io_err(path.display().to_string()))?;
        progress.advance(size(path));
        if let Some(expected) = spec.pinned_sha384.get(name) {
            if !expected.eq_ignore_ascii_case(&sha384) {
                return Err(BuildError::PinMismatch {
                    name: name.into(),
                    path: path.display().to_string(),
                    expected: expected.clone(),
                    actual: sha384,
                });
            }
        }
        inputs.push(InputDigest {
            name: name.into(),
            sha384,
        });
    }
    if let Some(unknown) = spec
        .pinned_sha384
        .keys()
        .find(|k| !inputs.iter().any(|i| &i.name == *k))
    {
        return Err(BuildError::UnknownPin(unknown.clone()));
    }
    let signer = match &spec.signing {
        Some(s) => Some(Signer::from_files(&s.private_key, &s.certificate)?),
        None => None,
    };

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    progress.stage("reading image", None);
    let mut image = open_spec_image(&spec.image, spec.arch, &dir)?;
    let image_digest = image.digest.clone();
    let meta = metadata(spec, &inputs, &image);
    let total: u64 = image
        .tree
        .iter()
        .map(|(_, n)| match &n.kind {
            crate::image::NodeKind::File(d) => d.size,
            _ => 0,
        })
        .sum();

    progress.stage("writing EIF", Some(total));
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(dir.display().to_string()))?;
    let file = tmp.as_file().try_clone().map_err(io_err("temporary EIF"))?;
    let mut kernel = File::open(&spec.kernel).map_err(io_err(spec.kernel.display().to_string()))?;
    let output = OutputFile::new(tmp.path(), file).map_err(io_err("writing the EIF"))?;
    let mut w = EifWriter::new(output, spec.arch, &mut kernel, &spec.cmdline, &meta)?;
    w.add_ramdisk(|s| {
        write_bootstrap_ramdisk(&spec.init, &spec.nsm_ko, s).map_err(BuildError::from)
    })?;
    let mut summary = None;
    w.add_ramdisk(|s| {
        let mut r = Reporting { out: s, progress };
        summary = Some(write_customer_ramdisk(
            &mut image,
            &spec.image.command,
            spec.image.source_date_epoch,
            &mut r,
        )?);
        Ok::<(), BuildError>(())
    })?;
    let (output, measurements) = w.finish(signer.as_ref())?;
    let file = output.finish().map_err(io_err("writing the EIF"))?;
    let eif_size = file.metadata().map_err(io_err("writing the EIF"))?.len();
    publish(tmp, out)?;
    let summary = summary.ok_or_else(|| BuildError::Io {
        context: "writing the customer ramdisk".into(),
        source: io::Error::other("the ramdisk was not written"),
    })?;
    Ok(BuildOutput {
        measurements,
        eif_size,
        inputs,
        image_digest,
        argv: summary.argv,
        env: summary.env,
        ramdisk_entries: summary.entries,
        image: image.provenance,
    })
}

/// Renames a finished temporary file into place, readable by all (temporary files are 0600).
fn publish(tmp: tempfile::NamedTempFile, out: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(io_err(out.display().to_string()))?;
    tmp.persist(out).map_err(|e| BuildError::Io {
        context: out.display().to_string(),
        source: e.error,
    })?;
    Ok(())
}

/// Writes only the customer ramdisk of an image (for `eif ramdisk --image`).
pub fn write_image_ramdisk(spec: &ImageSpec, arch: Arch, out: &Path) -> Result<usize, BuildError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut image = open_spec_image(spec, arch, &dir)?;
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(dir.display().to_string()))?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
    let summary =
        write_customer_ramdisk(&mut image, &spec.command, spec.source_date_epoch, &mut w)?;
    w.flush().map_err(io_err(out.display().to_string()))?;
    drop(w);
    publish(tmp, out)?;
    Ok(summary.entries)
}
