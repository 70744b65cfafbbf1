//! Building the deployment's EIF from the pinned inputs in `enclave.yaml`: blobs checked against
//! their pins, the `enclave-runtime` binary and its config injected, the image's own command
//! started as the runtime's child. Results are cached by a fingerprint of every input, so `plan`
//! reuses a build instead of repeating it.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use companion_config::{
    Api, App, ConfigFile, Logging, NsmBackend, Platform, RuntimeConfig, RuntimeLink, Secret,
    Storage, FORMAT_VERSION,
};
use nitro_eif::format::Arch;
use nitro_eif::image::{Command, ExtraFile, ImageSource};
use nitro_eif::pcr::Measurements;
use nitro_eif::{BuildSpec, ImageSpec, Progress, SigningSpec, DEFAULT_MAX_UNPACKED};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384};

use crate::config::{instance_types, Loaded};

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

/// The build manifest: every input and its digest, so a key holder can rebuild and compare.
#[derive(Debug, Serialize)]
struct Manifest<'a> {
    format_version: u32,
    tool: &'static str,
    tool_version: &'static str,
    deployment: &'a str,
    config_sha256: &'a str,
    inputs: &'a [nitro_eif::InputDigest],
    image_digest: &'a Option<String>,
    argv: &'a [String],
    env_keys: Vec<&'a str>,
    eif_sha384: &'a str,
    measurements: &'a Measurements,
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

/// The runtime's configuration, baked into the image (so it is measured in PCR2).
pub fn runtime_config(loaded: &Loaded) -> RuntimeConfig {
    let c = &loaded.config;
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
        kms_key: crate::render::key_alias(c),
        nsm: NsmBackend::Device {},
        platform: Platform::Nitro,
        link: RuntimeLink::default(),
        app: App::default(),
        api: Api::default(),
        storage: Some(Storage {
            bucket: crate::render::bucket_name(c),
        }),
        ingress_ports: c.instance.ingress.iter().map(|i| i.port).collect(),
        log_forwarding: true,
        aws_test_endpoint: None,
    }
}

fn image_source(loaded: &Loaded) -> ImageSource {
    let src = &loaded.config.image.source;
    // Validation guarantees KIND:PATH with a known kind.
    let (kind, path) = src.split_once(':').unwrap_or(("rootfs", src));
    let path = loaded.resolve(Path::new(path));
    match kind {
        "docker-archive" => ImageSource::DockerArchive(path),
        "oci-archive" => ImageSource::OciArchive(path),
        "oci" => ImageSource::OciLayout(path),
        _ => ImageSource::RootfsDir(path),
    }
}

/// The blobs as the build uses them: their directory, the kernel command line (its pin checked
/// here: it is passed to the EIF crate as text, while the file blobs' pins are checked by the
/// build as it reads them), and whether they are the labelled stand-in fixtures.
struct Blobs {
    dir: PathBuf,
    cmdline: String,
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
        return Err(BuildError::BlobMismatch {
            name: "cmdline".into(),
            path,
            expected,
            actual,
        });
    }
    let kernel = dir.join("bzImage");
    let mut head = [0u8; 16];
    let n = fs::File::open(&kernel)
        .and_then(|mut f| f.read(&mut head))
        .map_err(io_at(&kernel))?;
    Ok(Blobs {
        dir,
        cmdline,
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

/// SHA-384 and SHA-256 of a file in one streaming pass.
fn digests(path: &Path) -> Result<(String, String), BuildError> {
    let (mut a, mut b) = (Sha384::new(), Sha256::new());
    stream_file(path, |chunk| {
        a.update(chunk);
        b.update(chunk);
    })?;
    Ok((hex::encode(a.finalize()), hex::encode(b.finalize())))
}

/// SHA-256 of a file (the supervisor binary: its S3 key and the digest user_data checks).
pub fn sha256_file(path: &Path) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    stream_file(path, |chunk| h.update(chunk))?;
    Ok(hex::encode(h.finalize()))
}

/// Builds into `out_dir` (`NAME.eif`, `measurements.json`, `build-manifest.json`), or reuses a
/// build there whose fingerprint matches.
pub fn build(
    loaded: &Loaded,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<Built, BuildError> {
    let c = &loaded.config;
    let blobs = verified_blobs(loaded)?;
    let runtime = runtime_binary(loaded);
    if !runtime.is_file() {
        return Err(BuildError::RuntimeMissing(runtime));
    }
    let runtime_cfg = runtime_config(loaded).to_json();
    let fp = fingerprint(loaded, &runtime, &runtime_cfg)?;
    let record_path = out_dir.join("build-record.json");
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
    fs::create_dir_all(out_dir).map_err(io_at(out_dir))?;
    let cfg_path = out_dir.join("runtime.json");
    fs::write(&cfg_path, &runtime_cfg).map_err(io_at(&cfg_path))?;
    let arch = match instance_types::lookup(&c.instance.instance_type).map(|s| s.arch) {
        Ok(instance_types::Arch::Arm64) => Arch::Aarch64,
        _ => Arch::X86_64,
    };
    let spec = BuildSpec {
        name: c.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        arch,
        kernel: blobs.dir.join("bzImage"),
        cmdline: blobs.cmdline,
        init: blobs.dir.join("init"),
        nsm_ko: blobs.dir.join("nsm.ko"),
        image: ImageSpec {
            source: image_source(loaded),
            platform: None,
            digest: c.image.digest.clone(),
            extra_files: vec![
                ExtraFile {
                    dest: RUNTIME_PATH_IN_IMAGE.into(),
                    source: runtime,
                    mode: 0o755,
                },
                ExtraFile {
                    dest: RUNTIME_CONFIG_IN_IMAGE.into(),
                    source: cfg_path,
                    mode: 0o444,
                },
            ],
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
        },
        pinned_sha384: input_pins(loaded),
        signing: c.image.signing.as_ref().map(|s| SigningSpec {
            private_key: loaded.resolve(&s.private_key),
            certificate: loaded.resolve(&s.certificate),
        }),
    };
    let eif = out_dir.join(format!("{}.eif", c.name));
    let output = nitro_eif::build_eif(&spec, &eif, progress)?;
    let (eif_sha384, eif_sha256) = digests(&eif)?;
    let measurements_path = out_dir.join("measurements.json");
    fs::write(&measurements_path, output.measurements.to_json() + "\n")
        .map_err(io_at(&measurements_path))?;
    let manifest = Manifest {
        format_version: 1,
        tool: "nitro-provision",
        tool_version: env!("CARGO_PKG_VERSION"),
        deployment: &c.name,
        config_sha256: &loaded.sha256,
        inputs: &output.inputs,
        image_digest: &output.image_digest,
        argv: &output.argv,
        // Keys only: values may be sensitive and are in the image anyway.
        env_keys: output
            .env
            .iter()
            .map(|e| e.split('=').next().unwrap_or(""))
            .collect(),
        eif_sha384: &eif_sha384,
        measurements: &output.measurements,
    };
    let manifest_path = out_dir.join("build-manifest.json");
    let manifest_json = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    fs::write(&manifest_path, manifest_json).map_err(io_at(&manifest_path))?;
    let built = Built {
        eif,
        eif_sha384,
        eif_sha256,
        eif_size: output.eif_size,
        measurements: output.measurements,
        standin: blobs.standin,
        fingerprint: fp,
    };
    let record = serde_json::to_string_pretty(&built).unwrap_or_default();
    fs::write(&record_path, record).map_err(io_at(&record_path))?;
    Ok(built)
}
