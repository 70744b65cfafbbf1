//! `eif describe|pcr|ramdisk|assemble`: the low-level EIF tools, for any EIF (ours, nitro-cli's,
//! eif_build's) and for combining with other tools. None of them panics on malformed input.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use nitro_eif::format::Arch;

use crate::cli::Exit;

#[derive(Debug, Subcommand)]
pub enum EifCommand {
    /// Header, sections, CRC check, recomputed PCRs, signature and metadata of an EIF.
    Describe(DescribeArgs),
    /// The PCR of a file (as nitro-cli pcr --input) or of a signing certificate (PCR8).
    Pcr(PcrArgs),
    /// Write one ramdisk on its own: the bootstrap ramdisk or an image's customer ramdisk.
    Ramdisk(RamdiskArgs),
    /// Assemble an EIF from a kernel, command line and ramdisks (eif_build's semantics).
    Assemble(AssembleArgs),
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The EIF file to read.
    #[arg(value_name = "EIF")]
    pub eif: PathBuf,
    /// nitro-cli-compatible JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PcrArgs {
    /// Any file: prints SHA384(0^48 ‖ SHA384(file)).
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// A PEM signing certificate: prints its PCR8.
    #[arg(long, value_name = "PEM")]
    pub signing_certificate: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RamdiskArgs {
    /// The bootstrap ramdisk (init + nsm.ko from --blobs), byte-identical to nitro-cli's.
    #[arg(long, requires = "blobs", conflicts_with = "image")]
    pub bootstrap: bool,
    /// Directory holding the kernel blobs (init, nsm.ko) for --bootstrap.
    #[arg(long, value_name = "DIR")]
    pub blobs: Option<PathBuf>,
    /// An image source as in enclave.yaml (docker-archive:PATH[:NAME:TAG|:@N],
    /// oci-archive:PATH[:REF], oci:DIR[:REF], rootfs:DIR).
    #[arg(long, value_name = "SOURCE")]
    pub image: Option<String>,
    /// The ramdisk's architecture (of the injected files' checks and the EIF it joins).
    #[arg(long, value_enum, default_value = "x86-64")]
    pub arch: ArchArg,
    /// Where to write the cpio ramdisk.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// After `--`: the command replacing the image's Entrypoint + Cmd (every argument after
    /// `--` is the command's, so none of the options above is taken for one of its flags).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AssembleArgs {
    /// The kernel image (bzImage, or Image on aarch64).
    #[arg(long, value_name = "FILE")]
    pub kernel: PathBuf,
    /// The kernel command line (as in the blobs' `cmdline` file).
    #[arg(long, value_name = "STRING")]
    pub cmdline: String,
    /// Repeatable, in order: the bootstrap ramdisk first, then the customer ramdisk(s).
    #[arg(long = "ramdisk", value_name = "FILE", required = true)]
    pub ramdisks: Vec<PathBuf>,
    /// Sign the EIF: the certificate (its hash is PCR8).
    #[arg(long, value_name = "PEM", requires = "private_key")]
    pub signing_certificate: Option<PathBuf>,
    /// Sign the EIF: the certificate's ECDSA private key.
    #[arg(long, value_name = "PEM", requires = "signing_certificate")]
    pub private_key: Option<PathBuf>,
    /// Metadata section (JSON); default: a deterministic minimal document.
    #[arg(long, value_name = "FILE")]
    pub metadata: Option<PathBuf>,
    /// The EIF's architecture (a header flag).
    #[arg(long, value_enum, default_value = "x86-64")]
    pub arch: ArchArg,
    /// Where to write the EIF.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ArchArg {
    #[value(name = "x86-64")]
    X86_64,
    Aarch64,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Arch {
        match a {
            ArchArg::X86_64 => Arch::X86_64,
            ArchArg::Aarch64 => Arch::Aarch64,
        }
    }
}

pub fn run(cmd: &EifCommand) -> anyhow::Result<Exit> {
    match cmd {
        EifCommand::Describe(a) => describe(a),
        EifCommand::Pcr(a) => {
            let pcr = match (&a.input, &a.signing_certificate) {
                (Some(f), _) => nitro_eif::pcr::PcrHasher::of_file(f)
                    .with_context(|| f.display().to_string())?,
                (_, Some(pem)) => {
                    let text = std::fs::read(pem).with_context(|| pem.display().to_string())?;
                    nitro_eif::sign::Certificate::from_pem(&text)?.pcr8()
                }
                _ => anyhow::bail!("give --input FILE or --signing-certificate PEM"),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"PCR": pcr.to_hex()}))?
            );
            Ok(Exit::Success)
        }
        EifCommand::Ramdisk(a) => ramdisk(a),
        EifCommand::Assemble(a) => assemble(a),
    }
}

/// A signature check in words (subject, issuer, validity), not the library's structure.
fn signature_text(sig: &nitro_eif::SignatureCheck) -> String {
    match sig {
        nitro_eif::SignatureCheck::Valid(i) => format!(
            "valid, {} by {} (issuer {}), PCR8 {}{}",
            i.algorithm,
            i.subject,
            i.issuer,
            i.pcr8,
            if i.valid_now {
                ""
            } else {
                ", certificate outside its validity period"
            }
        ),
        nitro_eif::SignatureCheck::Invalid { error } => format!("INVALID: {error}"),
    }
}

fn describe(a: &DescribeArgs) -> anyhow::Result<Exit> {
    let d = nitro_eif::describe(&a.eif)
        .with_context(|| format!("{} is not a readable EIF", a.eif.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d.nitro_cli_json())?);
    } else {
        println!(
            "{}: EIF version {}, arch {}, flags {:#06x}",
            a.eif.display(),
            d.version,
            d.arch
                .map_or_else(|| "unknown".to_string(), |a| a.to_string()),
            d.flags
        );
        println!("Sections:");
        for s in &d.sections {
            println!(
                "  {:<10} at {:>10}  {:>12} bytes",
                s.kind.to_string(),
                s.offset,
                s.size
            );
        }
        println!(
            "CRC-32: {}",
            if d.crc.ok {
                "ok".to_string()
            } else {
                format!(
                    "MISMATCH (stored {:#010x}, computed {:#010x})",
                    d.crc.stored, d.crc.computed
                )
            }
        );
        println!("Measurements (recomputed):");
        for (i, pcr) in crate::build::pcr_map(&d.measurements) {
            println!("  PCR{i:<2} {pcr}");
        }
        if let Some(sig) = &d.signature {
            println!("Signature: {}", signature_text(sig));
        }
        println!("Cmdline: {}", d.cmdline);
        if let Some(meta) = &d.metadata {
            println!("Metadata: {meta}");
        }
        for w in &d.warnings {
            eprintln!("warning: {w}");
        }
    }
    // A CRC mismatch or a bad signature is a finding the caller's script must see.
    let bad_signature = d.warnings.iter().any(|w| w.contains("signature"));
    Ok(if d.crc.ok && !bad_signature {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn ramdisk(a: &RamdiskArgs) -> anyhow::Result<Exit> {
    if a.bootstrap {
        let blobs = a
            .blobs
            .as_deref()
            .context("--bootstrap needs --blobs DIR")?;
        let file = File::create(&a.output).with_context(|| a.output.display().to_string())?;
        let mut out = BufWriter::new(file);
        nitro_eif::bootstrap::write_bootstrap_ramdisk(
            &blobs.join("init"),
            &blobs.join("nsm.ko"),
            &mut out,
        )?;
        std::io::Write::flush(&mut out)?;
    } else {
        let source = a
            .image
            .as_deref()
            .context("give --bootstrap --blobs DIR, or --image SOURCE")?;
        let r = crate::config::ImageRef::parse(source)
            .map_err(|e| anyhow::anyhow!("--image {source}: {e}"))?;
        let spec = nitro_eif::ImageSpec {
            source: crate::build::image_source(&r, Path::to_path_buf),
            reference: r.reference,
            platform: None,
            digest: None,
            extra_files: vec![],
            command: nitro_eif::image::Command {
                prefix: vec![],
                entrypoint: (!a.cmd.is_empty()).then(|| a.cmd.clone()),
                cmd: None,
                env: vec![],
            },
            source_date_epoch: 0,
            max_unpacked: nitro_eif::DEFAULT_MAX_UNPACKED,
        };
        let entries = nitro_eif::write_image_ramdisk(&spec, a.arch.into(), &a.output)?;
        eprintln!("{entries} entries");
    }
    let pcr = nitro_eif::pcr::PcrHasher::of_file(&a.output)?;
    println!(
        "{}: PCR of this ramdisk alone {}",
        a.output.display(),
        pcr.to_hex()
    );
    Ok(Exit::Success)
}

fn assemble(a: &AssembleArgs) -> anyhow::Result<Exit> {
    let signer = match (&a.private_key, &a.signing_certificate) {
        (Some(k), Some(c)) => Some(nitro_eif::sign::Signer::from_files(k, c)?),
        _ => None,
    };
    let metadata = match &a.metadata {
        Some(p) => std::fs::read(p).with_context(|| p.display().to_string())?,
        None => serde_json::to_vec(&serde_json::json!({
            "ImageName": "nitro-provision-assembled",
            "BuildMetadata": {"BuildTool": "nitro-provision eif assemble", "BuildToolVersion": env!("CARGO_PKG_VERSION")}
        }))?,
    };
    let out = File::create(&a.output).with_context(|| a.output.display().to_string())?;
    let mut kernel = open(&a.kernel)?;
    let mut w = nitro_eif::writer::EifWriter::new(
        BufWriter::new(out),
        a.arch.into(),
        &mut kernel,
        &a.cmdline,
        &metadata,
    )?;
    for r in &a.ramdisks {
        w.add_ramdisk_from(&mut open(r)?)?;
    }
    let (_, m) = w.finish(signer.as_ref())?;
    println!("{}", m.to_json());
    Ok(Exit::Success)
}

fn open(p: &Path) -> anyhow::Result<File> {
    File::open(p).with_context(|| p.display().to_string())
}
