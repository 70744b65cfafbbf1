//! `attest verify`: checks a Nitro attestation document end to end — AWS certificate chain to
//! the pinned root, COSE signature, then the expected PCRs, nonce, age and debug mode.
//! Exit 0 valid, 1 invalid (with the reason). `--root` swaps the pinned AWS root for another
//! one (the NSM simulator's test root); every output then says that a non-AWS root was used.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::Exit;

#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Verify an attestation document (raw COSE_Sign1 bytes, or base64 of them).
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The document file.
    pub doc: PathBuf,
    /// Expected PCRs from a nitro-cli-shaped measurements.json.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// An expected PCR (repeatable), e.g. --pcr 0=ab12…
    #[arg(long = "pcr", value_name = "N=HEX")]
    pub pcrs: Vec<String>,
    /// The nonce the document must carry (hex).
    #[arg(long, value_name = "HEX")]
    pub nonce: Option<String>,
    /// Maximum age of the document at the check time (e.g. 5m, 1h); the certificate chain's
    /// validity is not a freshness check.
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Check as of this time (RFC 3339), e.g. to re-verify an archived document.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// Accept debug-mode documents (all-zero PCR0/1/2).
    #[arg(long)]
    pub allow_debug: bool,
    /// Trust this root certificate (PEM) instead of the pinned AWS Nitro Enclaves root, e.g.
    /// the NSM simulator's test root. A document valid under it proves nothing about AWS.
    #[arg(long, value_name = "PEM")]
    pub root: Option<PathBuf>,
    /// Print a JSON report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Outcome {
    valid: bool,
    error: Option<String>,
    checked_at: String,
    trusted_root: TrustedRoot,
    document: Option<nitro_attestation::Report>,
}

/// Which root the chain was checked against.
#[derive(Debug, Serialize)]
struct TrustedRoot {
    /// False whenever `--root` named anything but AWS's root.
    aws: bool,
    sha256: String,
    file: Option<PathBuf>,
}

fn trust_anchor(
    root: Option<&PathBuf>,
) -> anyhow::Result<(nitro_attestation::TrustAnchor, TrustedRoot)> {
    let anchor = match root {
        None => nitro_attestation::TrustAnchor::AWS_NITRO_ROOT_G1,
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("--root {}: cannot read", path.display()))?;
            nitro_attestation::TrustAnchor::from_pem(&pem)
                .with_context(|| format!("--root {}", path.display()))?
        }
    };
    let described = TrustedRoot {
        aws: anchor.is_aws(),
        sha256: hex::encode(anchor.sha256()),
        file: root.cloned(),
    };
    Ok((anchor, described))
}

pub fn run(cmd: &AttestCommand) -> anyhow::Result<Exit> {
    let AttestCommand::Verify(a) = cmd;
    let raw = std::fs::read(&a.doc).with_context(|| format!("cannot read {}", a.doc.display()))?;
    let bytes = decode(&raw);
    let policy = policy(a)?;
    let at = match &a.at {
        Some(t) => humantime::parse_rfc3339(t)
            .with_context(|| format!("--at {t}: not an RFC 3339 time"))?,
        None => SystemTime::now(),
    };
    let (anchor, trusted_root) = trust_anchor(a.root.as_ref())?;
    let result = nitro_attestation::verify_with_anchor(&bytes, &anchor, &policy, at);
    let document = match &result {
        Ok(v) => Some(nitro_attestation::Report::new(&v.document)),
        Err(_) => nitro_attestation::parse(&bytes)
            .ok()
            .map(|d| nitro_attestation::Report::new(&d)),
    };
    let outcome = Outcome {
        valid: result.is_ok(),
        error: result.as_ref().err().map(ToString::to_string),
        checked_at: humantime::format_rfc3339_seconds(at).to_string(),
        trusted_root,
        document,
    };
    let root_note = (!outcome.trusted_root.aws).then(|| {
        format!(
            " against a NON-AWS root (sha256 {}): it proves nothing about a real enclave",
            outcome.trusted_root.sha256
        )
    });
    if root_note.is_some() && !a.json {
        eprintln!("warning: --root replaces the pinned AWS Nitro Enclaves root");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else if let Some(e) = &outcome.error {
        println!("INVALID: {e}{}", root_note.as_deref().unwrap_or_default());
    } else if let Some(d) = &outcome.document {
        println!(
            "VALID attestation document from {} (timestamp {}), checked at {}{}",
            d.module_id,
            d.timestamp,
            outcome.checked_at,
            root_note.as_deref().unwrap_or_default()
        );
    }
    Ok(if outcome.valid {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Documents travel as raw CBOR or as base64 text (e.g. from an HTTP API).
fn decode(raw: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = std::str::from_utf8(raw).map(str::trim);
    match text {
        Ok(t)
            if !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=\n\r".contains(&b)) =>
        {
            base64::engine::general_purpose::STANDARD
                .decode(t.replace(['\n', '\r'], ""))
                .unwrap_or_else(|_| raw.to_vec())
        }
        _ => raw.to_vec(),
    }
}

fn policy(a: &VerifyArgs) -> anyhow::Result<nitro_attestation::Policy> {
    let mut expected: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    if let Some(path) = &a.expect {
        for (i, pcr) in crate::build::read_measurements(path)? {
            expected.insert(i, hex::decode(pcr)?);
        }
    }
    for spec in &a.pcrs {
        let (n, h) = spec
            .split_once('=')
            .with_context(|| format!("--pcr {spec}: expected N=HEX"))?;
        let n: u8 = n
            .parse()
            .ok()
            .filter(|n| *n <= nitro_attestation::MAX_PCR_INDEX)
            .with_context(|| format!("--pcr {spec}: index must be 0–31"))?;
        expected.insert(
            n,
            hex::decode(h).with_context(|| format!("--pcr {spec}: not hex"))?,
        );
    }
    let nonce = a
        .nonce
        .as_deref()
        .map(hex::decode)
        .transpose()
        .context("--nonce: not hex")?;
    let max_age: Option<Duration> = a
        .max_age
        .as_deref()
        .map(|s| {
            humantime::parse_duration(s).with_context(|| format!("--max-age {s}: e.g. 5m, 90s, 1h"))
        })
        .transpose()?;
    Ok(nitro_attestation::Policy {
        expected_pcrs: expected,
        nonce,
        max_age,
        allow_debug: a.allow_debug,
        ..Default::default()
    })
}
