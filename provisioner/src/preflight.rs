//! Local checks of everything `enclave.yaml` references, before anything is built or deployed:
//! files exist and are readable, blobs match their pins, the signing key matches its
//! certificate, the image resolves to one image for the instance's platform with a command,
//! and the runtime, supervisor and kernel blobs are built for the instance's architecture.
//! Every problem names the `file:line:column` of the key it comes from; `validate` reports
//! them all, `build` stops at the first.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use nitro_eif::elf::{identify_file, Binary};
use nitro_eif::format::Arch;
use nitro_eif::image::ImageError;
use nitro_eif::sign::{SignError, Signer};
use sha2::{Digest, Sha384};

use crate::build::{image_spec, runtime_binary, supervisor_binary};
use crate::config::{instance_types, Diagnostic, KeyPath, Loaded, BLOB_NAMES};

/// The EIF architecture of the instance type (`None` when the type is not in the table).
pub fn eif_arch(loaded: &Loaded) -> Option<Arch> {
    instance_types::lookup(&loaded.config.instance.instance_type)
        .ok()
        .map(|s| match s.arch {
            instance_types::Arch::X86_64 => Arch::X86_64,
            instance_types::Arch::Arm64 => Arch::Aarch64,
        })
}

/// How the instance's architecture is named in messages: `m7g.xlarge instances are aarch64`.
fn instance_arch_text(loaded: &Loaded, arch: Arch) -> String {
    format!(
        "{} instances are {arch} ({})",
        loaded.config.instance.instance_type,
        arch.oci_name()
    )
}

/// One of the two companion binaries nitro-provision ships.
#[derive(Debug, Clone, Copy)]
pub enum Companion {
    /// `enclave-runtime`, copied into the image (`image.runtime`).
    Runtime,
    /// `enclave-supervisor`, uploaded for the parent instance (`supervisor.binary`).
    Supervisor,
}

impl Companion {
    fn key(self) -> &'static str {
        match self {
            Companion::Runtime => "image.runtime",
            Companion::Supervisor => "supervisor.binary",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Companion::Runtime => "enclave-runtime",
            Companion::Supervisor => "enclave-supervisor",
        }
    }

    fn configured(self, loaded: &Loaded) -> bool {
        match self {
            Companion::Runtime => loaded.config.image.runtime.is_some(),
            Companion::Supervisor => loaded.config.supervisor.binary.is_some(),
        }
    }

    /// How to get the right binary: a static build for the instance's architecture.
    fn hint(self, arch: Arch) -> String {
        let target = match arch {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        };
        format!(
            "build it for {arch} (`cargo build --release --target {target} -p {}`) and set {} to target/{target}/release/{}",
            self.package(),
            self.key(),
            self.package()
        )
    }
}

/// Checks a companion binary at `path`: present, readable, an ELF executable for `arch` (when
/// the instance's architecture is known).
pub fn check_companion(
    loaded: &Loaded,
    which: Companion,
    path: &Path,
    arch: Option<Arch>,
) -> Result<(), Diagnostic> {
    let at = |message: String, hint: Option<String>| loaded.diagnostic(which.key(), message, hint);
    let found = match identify_file(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let default = if which.configured(loaded) {
                ""
            } else {
                " (the default: beside nitro-provision)"
            };
            return Err(at(
                format!("{}: {} not found{default}", path.display(), which.package()),
                Some(match arch {
                    Some(a) => which.hint(a),
                    None => format!(
                        "build it (`cargo build --release -p {}`) or set {}",
                        which.package(),
                        which.key()
                    ),
                }),
            ));
        }
        Err(e) => return Err(at(format!("{}: {e}", path.display()), None)),
    };
    let Some(arch) = arch else {
        return Ok(());
    };
    match found {
        Binary::Elf { .. } if found.arch() == Some(arch) => Ok(()),
        Binary::Elf { .. } => Err(at(
            format!(
                "{} is {found}, but {}",
                path.display(),
                instance_arch_text(loaded, arch)
            ),
            Some(which.hint(arch)),
        )),
        _ => Err(at(
            format!(
                "{} is {found}: {} must be a static Linux binary for {arch}",
                path.display(),
                which.package()
            ),
            Some(which.hint(arch)),
        )),
    }
}

/// An image problem at the key it comes from: a pinned digest at `image.digest`, a missing
/// command at `image.cmd`, everything else at `image.source`.
pub fn image_diagnostic(loaded: &Loaded, e: &ImageError, arch: Option<Arch>) -> Diagnostic {
    let source = &loaded.config.image.source;
    let platform_hint = arch.map(|a| {
        format!(
            "build or pull the image for linux/{0} (`docker buildx build --platform linux/{0}`, `skopeo copy --override-arch {0} …`)",
            a.oci_name()
        )
    });
    match e {
        ImageError::PinnedDigestNotFound(_) => {
            loaded.diagnostic("image.digest", format!("{source}: {e}"), None)
        }
        ImageError::NoCommand => loaded.diagnostic(
            "image.cmd",
            "the image has no Entrypoint or Cmd",
            Some("set image.cmd".into()),
        ),
        ImageError::WrongPlatform { image, .. } => loaded.diagnostic(
            "image.source",
            match arch {
                Some(a) => format!(
                    "{source}: the image is for {image}, but {}",
                    instance_arch_text(loaded, a)
                ),
                None => format!("{source}: {e}"),
            },
            platform_hint,
        ),
        ImageError::NoMatchingPlatform { .. } => {
            loaded.diagnostic("image.source", format!("{source}: {e}"), platform_hint)
        }
        _ => loaded.diagnostic("image.source", format!("{source}: {e}"), None),
    }
}

/// A signing problem at the file it is about.
pub fn sign_diagnostic(loaded: &Loaded, e: &SignError) -> Diagnostic {
    let Some(s) = &loaded.config.image.signing else {
        return loaded.diagnostic("image.signing", e.to_string(), None);
    };
    let cert = loaded.resolve(&s.certificate);
    let about_cert = match e {
        SignError::Read { path, .. } => *path == cert.display().to_string(),
        SignError::UnsupportedCertKey | SignError::NoPemBlock("CERTIFICATE") => true,
        _ => false,
    };
    let (key, file) = if about_cert {
        ("image.signing.certificate", cert)
    } else {
        ("image.signing.private_key", loaded.resolve(&s.private_key))
    };
    let message = match e {
        SignError::Read { .. } => e.to_string(),
        _ => format!("{}: {e}", file.display()),
    };
    loaded.diagnostic(key, message, None)
}

/// A build error at the key its input comes from, when it has one.
pub fn build_diagnostic(
    loaded: &Loaded,
    e: &nitro_eif::BuildError,
    arch: Option<Arch>,
) -> Option<Diagnostic> {
    use nitro_eif::BuildError as E;
    Some(match e {
        E::Image(e) => image_diagnostic(loaded, e, arch),
        E::Sign(e) => sign_diagnostic(loaded, e),
        E::PinMismatch { name, .. } => {
            let blob = if name == "kernel" { "bzImage" } else { name };
            loaded.diagnostic_at(pin_path(blob), e.to_string(), None)
        }
        E::WrongArchitecture { .. } => loaded.diagnostic(
            "image.blobs.dir",
            e.to_string(),
            Some(format!(
                "use the blobs of aws-nitro-enclaves-cli for {} (/usr/share/nitro_enclaves/blobs on such an instance)",
                arch.map_or("the instance", |a| a.oci_name())
            )),
        ),
        E::Bootstrap(_) => loaded.diagnostic("image.blobs.dir", e.to_string(), None),
        _ => return None,
    })
}

/// Everything that can be checked without building: all problems, in source order.
pub fn check(loaded: &Loaded) -> Vec<Diagnostic> {
    let arch = eif_arch(loaded);
    let mut out = Vec::new();
    check_blobs(loaded, arch, &mut out);
    check_image(loaded, arch, &mut out);
    check_signing(loaded, &mut out);
    let companions = [
        (Companion::Runtime, runtime_binary(loaded)),
        (Companion::Supervisor, supervisor_binary(loaded)),
    ];
    for (which, path) in companions {
        out.extend(check_companion(loaded, which, &path, arch).err());
    }
    out.sort_by_key(|d| d.pos);
    out
}

/// The blobs directory and each blob: readable, matching its pin, for the right architecture.
fn check_blobs(loaded: &Loaded, arch: Option<Arch>, out: &mut Vec<Diagnostic>) {
    let blobs = &loaded.config.image.blobs;
    let dir = loaded.resolve(&blobs.dir);
    if let Err(e) = fs::read_dir(&dir) {
        out.push(loaded.diagnostic(
            "image.blobs.dir",
            format!("{}: {e}", dir.display()),
            Some("install aws-nitro-enclaves-cli, or point image.blobs.dir at its blobs".into()),
        ));
        return;
    }
    for name in BLOB_NAMES {
        let path = dir.join(name);
        let key = pin_path(name);
        let actual = match sha384_of(&path) {
            Ok(d) => d,
            Err(e) => {
                out.push(loaded.diagnostic_at(key, format!("{}: {e}", path.display()), None));
                continue;
            }
        };
        let pinned = blobs.sha384.get(name);
        // A malformed pin is reported by the schema checks already.
        if let Some(pin) = pinned.filter(|p| p.len() == 96) {
            if *pin != actual {
                out.push(loaded.diagnostic_at(
                    key,
                    format!(
                        "{} has SHA-384 {actual}, but enclave.yaml pins {pin}",
                        path.display()
                    ),
                    Some(format!("`sha384sum {}`", path.display())),
                ));
            }
        }
        if let (Some(arch), "bzImage" | "init" | "nsm.ko") = (arch, name) {
            if let Ok(found) = identify_file(&path) {
                if found.arch().is_some_and(|a| a != arch) {
                    out.push(loaded.diagnostic(
                        "image.blobs.dir",
                        format!(
                            "{} is {found}, but {}",
                            path.display(),
                            instance_arch_text(loaded, arch)
                        ),
                        Some(format!(
                            "use aws-nitro-enclaves-cli's blobs for {} (/usr/share/nitro_enclaves/blobs on such an instance)",
                            arch.oci_name()
                        )),
                    ));
                }
            }
        }
    }
}

/// `image.blobs.sha384[NAME]` (blob names contain dots).
fn pin_path(blob: &str) -> KeyPath {
    KeyPath::parse("image.blobs.sha384").key(blob)
}

fn sha384_of(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha384::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The image resolves (reference, platform, pinned digest, every document and blob present)
/// and gives the enclave a command.
fn check_image(loaded: &Loaded, arch: Option<Arch>, out: &mut Vec<Diagnostic>) {
    let Ok(spec) = image_spec(loaded) else {
        // An unparsable image.source is reported by the schema checks.
        return;
    };
    let info = match nitro_eif::inspect_spec_image(&spec, arch.unwrap_or(Arch::X86_64)) {
        Ok(info) => info,
        Err(nitro_eif::BuildError::Image(e)) => {
            out.push(image_diagnostic(loaded, &e, arch));
            return;
        }
        Err(e) => {
            out.push(loaded.diagnostic("image.source", e.to_string(), None));
            return;
        }
    };
    if let Err(e) = spec.command.resolve(&info.config) {
        out.push(image_diagnostic(loaded, &e, arch));
    }
}

/// The key and certificate are readable, an ECDSA curve the EIF format signs with, and a pair.
fn check_signing(loaded: &Loaded, out: &mut Vec<Diagnostic>) {
    let Some(s) = &loaded.config.image.signing else {
        return;
    };
    let files: [(&str, PathBuf); 2] = [
        ("image.signing.certificate", loaded.resolve(&s.certificate)),
        ("image.signing.private_key", loaded.resolve(&s.private_key)),
    ];
    let mut readable = true;
    for (key, path) in &files {
        if let Err(e) = fs::File::open(path) {
            out.push(loaded.diagnostic(key, format!("{}: {e}", path.display()), None));
            readable = false;
        }
    }
    if readable {
        if let Err(e) = Signer::from_files(&files[1].1, &files[0].1) {
            out.push(sign_diagnostic(loaded, &e));
        }
    }
}
