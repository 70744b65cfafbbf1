//! Building the deployment's EIF from the pinned inputs in `enclave.yaml`: blobs checked against
//! their pins, the `enclave-runtime` binary (for the instance's architecture) and its config
//! injected, the image's own command started as the runtime's child. Results are cached by a
//! fingerprint of every input, so `plan` reuses a build instead of repeating it. A build is
//! staged in a temporary directory and moved into place only when complete: a failed build
//! leaves the output directory as it was.

mod manifest;
mod staging;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use companion_config::{
    Api, App, ConfigFile, Logging, NsmBackend, Platform, RuntimeConfig, RuntimeLink, Secret,
    SecretsSource, Storage, FORMAT_VERSION,
};
use nitro_eif::format::Arch;
use nitro_eif::image::{Command, ExtraFile, ImageConfig, ImageSource};
use nitro_eif::pcr::Measurements;
use nitro_eif::{BuildSpec, ImageSpec, Progress, SigningSpec, DEFAULT_MAX_UNPACKED};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384};

use crate::config::{ConfigError, Diagnostic, ImageRef, Loaded, Transport};
use crate::preflight::{self, Companion};

/// Where the runtime binary sits inside the enclave; it is the enclave's command.
pub const RUNTIME_PATH_IN_IMAGE: &str = "/nitro-provision/enclave-runtime";
/// Where its configuration sits inside the enclave.
pub const RUNTIME_CONFIG_IN_IMAGE: &str = companion_config::RUNTIME_CONFIG_PATH;
/// Stand-in blobs start with this marker; PCRs built from them are not deployable.
pub const STANDIN_MARKER: &[u8] = b"STAND-IN FIXTURE";
/// Shown wherever PCRs of a stand-in build are reported.
pub const STANDIN_WARNING: &str = "built from STAND-IN kernel blobs (test fixtures): these PCRs are reproducible but the EIF does not boot and is not deployable";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("kernel blob `{name}` ({}) has SHA-384 {actual}, but enclave.yaml pins {expected}", path.display())]
    BlobMismatch {
        name: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("the enclave-runtime binary was not found at {} (build it with `cargo build -p enclave-runtime`, or set image.runtime)", .0.display())]
    RuntimeMissing(PathBuf),
    /// A problem with an input, at the enclave.yaml key it comes from.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Eif(#[from] nitro_eif::BuildError),
    #[error("{}: not a nitro-cli measurements file: {message}", path.display())]
    Measurements { path: PathBuf, message: String },
}

/// PCR index → lowercase hex of a build's measurements (PCR8 only when signed).
pub fn pcr_map(m: &Measurements) -> std::collections::BTreeMap<u8, String> {
    let mut pcrs = std::collections::BTreeMap::from([
        (0, m.pcr0.to_hex()),
        (1, m.pcr1.to_hex()),
        (2, m.pcr2.to_hex()),
    ]);
    if let Some(p8) = &m.pcr8 {
        pcrs.insert(8, p8.to_hex());
    }
    pcrs
}

/// Reads a nitro-cli-shaped `measurements.json` (what key holders exchange) into its PCR map.
pub fn read_measurements(
    path: &Path,
) -> Result<std::collections::BTreeMap<u8, String>, BuildError> {
    let text = fs::read_to_string(path).map_err(io_at(path))?;
    let m = Measurements::from_json(&text).map_err(|e| BuildError::Measurements {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(pcr_map(&m))
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a build left in its output directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Built {
    pub eif: PathBuf,
    pub eif_sha384: String,
    pub eif_sha256: String,
    pub eif_size: u64,
    pub measurements: Measurements,
    /// Built from stand-in kernel blobs: reproducible, but not bootable or deployable.
    pub standin: bool,
    pub fingerprint: String,
}

/// The enclave-runtime binary: `image.runtime`, or next to this executable.
pub fn runtime_binary(loaded: &Loaded) -> PathBuf {
    match &loaded.config.image.runtime {
        Some(p) => loaded.resolve(p),
        None => beside_executable("enclave-runtime"),
    }
}

/// The enclave-supervisor binary: `supervisor.binary`, or next to this executable.
pub fn supervisor_binary(loaded: &Loaded) -> PathBuf {
    match &loaded.config.supervisor.binary {
        Some(p) => loaded.resolve(p),
        None => beside_executable("enclave-supervisor"),
    }
}

fn beside_executable(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The runtime's configuration, baked into the image (so it is measured in PCR2). The image
/// config's `User` and `WorkingDir` are recorded so the application runs as the image says.
pub fn runtime_config(loaded: &Loaded, image: &ImageConfig) -> RuntimeConfig {
    let c = &loaded.config;
    let process = image.config.clone().unwrap_or_default();
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    RuntimeConfig {
        format_version: FORMAT_VERSION,
        deployment: c.name.clone(),
        region: c.region.clone(),
        secrets: c
            .secrets
            .iter()
            .map(|(parameter, env)| Secret {
                parameter: parameter.clone(),
                env: env.clone(),
            })
            .collect(),
        storage_prefix: c.storage.prefix.clone(),
        logging: Logging {
            level: c.logging.level.clone(),
            format: c.logging.format.clone(),
        },
        production: c.production,
        kms_key: crate::render::key_alias(&c.name),
        nsm: NsmBackend::Device {},
        platform: Platform::Nitro,
        link: RuntimeLink::default(),
        app: App {
            user: non_empty(process.user),
            working_dir: non_empty(process.working_dir),
            ..App::default()
        },
        api: Api::default(),
        storage: Some(Storage {
            bucket: crate::render::bucket_name(c),
        }),
        ingress_ports: c.instance.ingress.iter().map(|i| i.port).collect(),
        log_forwarding: true,
        aws_test_endpoint: None,
        secrets_source: SecretsSource::Kms,
    }
}

/// An image source as the EIF crate takes it (from a parsed `image.source`).
pub fn image_source(r: &ImageRef, base: impl Fn(&Path) -> PathBuf) -> ImageSource {
    let path = base(Path::new(&r.path));
    match r.transport {
        Transport::DockerArchive => ImageSource::DockerArchive(path),
        Transport::OciArchive => ImageSource::OciArchive(path),
        Transport::Oci => ImageSource::OciLayout(path),
        Transport::Rootfs => ImageSource::RootfsDir(path),
    }
}

/// The image part of the build: source, reference, pinned digest and the enclave's command
/// (the runtime first, then the image's command); no injected files yet.
pub fn image_spec(loaded: &Loaded) -> Result<ImageSpec, Diagnostic> {
    let c = &loaded.config;
    let r = ImageRef::parse(&c.image.source)
        .map_err(|e| loaded.diagnostic("image.source", e.message, e.hint))?;
    Ok(ImageSpec {
        source: image_source(&r, |p| loaded.resolve(p)),
        reference: r.reference,
        platform: None,
        digest: c.image.digest.clone(),
        extra_files: Vec::new(),
        command: Command {
            prefix: vec![RUNTIME_PATH_IN_IMAGE.into(), "--".into()],
            entrypoint: c.image.cmd.clone(),
            cmd: None,
            env: c
                .image
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        },
        source_date_epoch: u32::try_from(c.image.source_date_epoch).unwrap_or(u32::MAX),
        max_unpacked: DEFAULT_MAX_UNPACKED,
    })
}

/// The blobs as the build uses them: their directory, the kernel command line (its pin checked
/// here: it is passed to the EIF crate as text, while the file blobs' pins are checked by the
/// build as it reads them), and whether they are the labelled stand-in fixtures.
struct Blobs {
    dir: PathBuf,
    cmdline: String,
    /// Of the file as pinned (the EIF holds it trimmed, as nitro-cli does).
    cmdline_sha384: String,
    standin: bool,
}

fn verified_blobs(loaded: &Loaded) -> Result<Blobs, BuildError> {
    let dir = loaded.resolve(&loaded.config.image.blobs.dir);
    let path = dir.join("cmdline");
    let cmdline = fs::read_to_string(&path).map_err(io_at(&path))?;
    let actual = hex::encode(Sha384::digest(cmdline.as_bytes()));
    let expected = loaded
        .config
        .image
        .blobs
        .sha384
        .get("cmdline")
        .cloned()
        .unwrap_or_default();
    if actual != expected {
        let e = BuildError::BlobMismatch {
            name: "cmdline".into(),
            path,
            expected,
            actual,
        };
        let d = loaded.diagnostic_at(
            crate::config::KeyPath::parse("image.blobs.sha384.cmdline"),
            e.to_string(),
            None,
        );
        return Err(loaded.invalid(vec![d]).into());
    }
    let kernel = dir.join("bzImage");
    let mut head = [0u8; 16];
    let n = fs::File::open(&kernel)
        .and_then(|mut f| f.read(&mut head))
        .map_err(io_at(&kernel))?;
    Ok(Blobs {
        dir,
        cmdline,
        cmdline_sha384: actual,
        standin: head[..n].starts_with(STANDIN_MARKER),
    })
}

/// Pins by the EIF crate's input names.
fn input_pins(loaded: &Loaded) -> std::collections::BTreeMap<String, String> {
    let pins = &loaded.config.image.blobs.sha384;
    [
        ("bzImage", "kernel"),
        ("init", "init"),
        ("nsm.ko", "nsm.ko"),
    ]
    .into_iter()
    .filter_map(|(blob, input)| Some((input.to_string(), pins.get(blob)?.clone())))
    .collect()
}

/// A cheap fingerprint of every input: pins, the runtime config, and the size, mtime and path of
/// each input file (a changed file therefore always rebuilds; the manifest records full digests).
fn fingerprint(loaded: &Loaded, runtime: &Path, runtime_cfg: &str) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    h.update(b"nitro-provision build v1\0");
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    let c = &loaded.config;
    h.update(serde_json::to_vec(&(&c.image, &c.instance.instance_type)).unwrap_or_default());
    h.update(runtime_cfg.as_bytes());
    let (_, src) = c
        .image
        .source
        .split_once(':')
        .unwrap_or(("", &c.image.source));
    let mut paths = vec![runtime.to_path_buf(), loaded.resolve(Path::new(src))];
    if let Some(s) = &c.image.signing {
        paths.push(loaded.resolve(&s.certificate));
        paths.push(loaded.resolve(&s.private_key));
    }
    for p in paths {
        fingerprint_path(&mut h, &p)?;
    }
    Ok(hex::encode(h.finalize()))
}

fn fingerprint_path(h: &mut Sha256, path: &Path) -> Result<(), BuildError> {
    let meta = fs::symlink_metadata(path).map_err(io_at(path))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    h.update(format!("{}\0{}\0{:?}\0", path.display(), meta.len(), mtime).as_bytes());
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .map_err(io_at(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            fingerprint_path(h, &e)?;
        }
    }
    Ok(())
}

/// Feeds a file to `update` in 1 MiB chunks: never held in memory whole.
fn stream_file(path: &Path, mut update: impl FnMut(&[u8])) -> Result<(), BuildError> {
    let mut f = fs::File::open(path).map_err(io_at(path))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            return Ok(());
        }
        update(&buf[..n]);
    }
}

/// SHA-384 and SHA-256 of a file in one streaming read, the SHA-256 on a second thread (the
/// EIF is hundreds of MiB: one hash after the other would double this step's time).
fn digests(path: &Path) -> Result<(String, String), BuildError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    std::thread::scope(|scope| {
        let sha256 = scope.spawn(move || {
            let mut h = Sha256::new();
            for chunk in rx {
                h.update(&chunk);
            }
            hex::encode(h.finalize())
        });
        let mut sha384 = Sha384::new();
        let mut f = fs::File::open(path).map_err(io_at(path))?;
        loop {
            let mut buf = Vec::with_capacity(1 << 20);
            (&mut f)
                .take(1 << 20)
                .read_to_end(&mut buf)
                .map_err(io_at(path))?;
            if buf.is_empty() {
                break;
            }
            sha384.update(&buf);
            if tx.send(buf).is_err() {
                break;
            }
        }
        drop(tx);
        let sha256 = sha256
            .join()
            .map_err(|_| io_at(path)(io::Error::other("the SHA-256 thread failed")))?;
        Ok((hex::encode(sha384.finalize()), sha256))
    })
}

/// SHA-256 of a file (the supervisor binary: its S3 key and the digest user_data checks).
pub fn sha256_file(path: &Path) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    stream_file(path, |chunk| h.update(chunk))?;
    Ok(hex::encode(h.finalize()))
}

/// The supervisor binary's SHA-256, `None` when it is missing; an error when it is not built for
/// the instance's architecture (it would be uploaded and fail to start on every instance).
pub fn supervisor_digest(loaded: &Loaded, path: &Path) -> Result<Option<String>, BuildError> {
    if !path.is_file() {
        return Ok(None);
    }
    preflight::check_companion(
        loaded,
        Companion::Supervisor,
        path,
        preflight::eif_arch(loaded),
    )
    .map_err(|d| loaded.invalid(vec![d]))?;
    sha256_file(path).map(Some)
}

/// A build error at the enclave.yaml key of its input, when it has one.
fn locate(loaded: &Loaded, e: nitro_eif::BuildError, arch: Arch) -> BuildError {
    match preflight::build_diagnostic(loaded, &e, Some(arch)) {
        Some(d) => loaded.invalid(vec![d]).into(),
        None => e.into(),
    }
}

/// Builds into `out_dir` (`NAME.eif`, `measurements.json`, `build-manifest.json`), or reuses a
/// build there whose fingerprint matches.
pub fn build(
    loaded: &Loaded,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<Built, BuildError> {
    let c = &loaded.config;
    let arch = preflight::eif_arch(loaded).unwrap_or(Arch::X86_64);
    let blobs = verified_blobs(loaded)?;
    let runtime = runtime_binary(loaded);
    if !runtime.is_file() {
        return Err(BuildError::RuntimeMissing(runtime));
    }
    preflight::check_companion(loaded, Companion::Runtime, &runtime, Some(arch))
        .map_err(|d| loaded.invalid(vec![d]))?;
    let mut image = image_spec(loaded).map_err(|d| loaded.invalid(vec![d]))?;
    let info = nitro_eif::inspect_spec_image(&image, arch).map_err(|e| locate(loaded, e, arch))?;
    let runtime_config = runtime_config(loaded, &info.config);
    let runtime_cfg = runtime_config.to_json();
    let fp = fingerprint(loaded, &runtime, &runtime_cfg)?;
    let record_path = out_dir.join(RECORD);
    if let Ok(text) = fs::read_to_string(&record_path) {
        if let Ok(prev) = serde_json::from_str::<Built>(&text) {
            // The EIF is re-hashed before it is reused: a cached file whose bytes changed on
            // disk is rebuilt, never reported or uploaded under the recorded digests.
            if prev.fingerprint == fp
                && prev.eif.is_file()
                && digests(&prev.eif)? == (prev.eif_sha384.clone(), prev.eif_sha256.clone())
            {
                return Ok(Built {
                    standin: blobs.standin,
                    ..prev
                });
            }
        }
    }
    let stage = staging::Staging::new(out_dir)?;
    let cfg_path = stage.path(RUNTIME_JSON);
    fs::write(&cfg_path, &runtime_cfg).map_err(io_at(&cfg_path))?;
    image.extra_files = vec![
        ExtraFile {
            dest: RUNTIME_PATH_IN_IMAGE.into(),
            source: runtime.clone(),
            mode: 0o755,
        },
        ExtraFile {
            dest: RUNTIME_CONFIG_IN_IMAGE.into(),
            source: cfg_path,
            mode: 0o444,
        },
    ];
    let spec = BuildSpec {
        name: c.name.clone(),
        version: None,
        arch,
        kernel: blobs.dir.join("bzImage"),
        cmdline: blobs.cmdline.clone(),
        init: blobs.dir.join("init"),
        nsm_ko: blobs.dir.join("nsm.ko"),
        image,
        pinned_sha384: input_pins(loaded),
        signing: c.image.signing.as_ref().map(|s| SigningSpec {
            private_key: loaded.resolve(&s.private_key),
            certificate: loaded.resolve(&s.certificate),
        }),
    };
    let eif_name = format!("{}.eif", c.name);
    let output = nitro_eif::build_eif(&spec, &stage.path(&eif_name), progress)
        .map_err(|e| locate(loaded, e, arch))?;
    let (eif_sha384, eif_sha256) = digests(&stage.path(&eif_name))?;
    let measurements_json = output.measurements.to_json() + "\n";
    stage.write(MEASUREMENTS, measurements_json.as_bytes())?;
    let manifest =
        manifest::Manifest::new(loaded, &spec, &blobs, &output, &runtime_config, &eif_sha384)?;
    stage.write(MANIFEST, manifest.to_json().as_bytes())?;
    let built = Built {
        eif: out_dir.join(&eif_name),
        eif_sha384,
        eif_sha256,
        eif_size: output.eif_size,
        measurements: output.measurements,
        standin: blobs.standin,
        fingerprint: fp,
    };
    let record = serde_json::to_string_pretty(&built).unwrap_or_default();
    stage.write(RECORD, record.as_bytes())?;
    stage.publish(&[&eif_name, RUNTIME_JSON, MEASUREMENTS, MANIFEST], RECORD)?;
    Ok(built)
}

/// Files a build leaves in its output directory; the record is written last (it makes the
/// build reusable).
const RECORD: &str = "build-record.json";
const RUNTIME_JSON: &str = "runtime.json";
const MEASUREMENTS: &str = "measurements.json";
const MANIFEST: &str = "build-manifest.json";
