//! Cross-checks against AWS's `eif_build` (installed by `scripts/test-tools/eif_build.sh`):
//! same inputs → same PCRs, byte-identical unsigned files, and each side's signatures verify.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use nitro_eif::format::Arch;
use nitro_eif::pcr::Measurements;
use nitro_eif::reader::describe;
use nitro_eif::sign::Signer;
use nitro_eif::writer::EifWriter;

const BUILD_TIME: &str = "1970-01-01T00:00:00+00:00";

fn eif_build() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("eif_build"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("eif_build is not on PATH: run scripts/test.sh (it installs it via scripts/test-tools/eif_build.sh)")
        })
}

/// Runs eif_build and parses the measurements it prints after the `Output file:` line.
fn run_eif_build(
    kernel: &Path,
    cmdline: &str,
    ramdisks: &[&Path],
    out: &Path,
    sign: Option<(&Path, &Path)>,
) -> Measurements {
    let mut c = Command::new(eif_build());
    c.arg("--kernel").arg(kernel).args([
        "--cmdline",
        cmdline,
        "--name",
        "test",
        "--build-time",
        BUILD_TIME,
    ]);
    for r in ramdisks {
        c.arg("--ramdisk").arg(r);
    }
    c.arg("--output").arg(out);
    if let Some((cert, key)) = sign {
        c.arg("--signing-certificate")
            .arg(cert)
            .arg("--private-key")
            .arg(key);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "eif_build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8(o.stdout).unwrap();
    let json = &stdout[stdout.find('{').expect("eif_build printed no JSON")..];
    Measurements::from_json(json).unwrap()
}

fn eif_build_metadata() -> String {
    format!(
        r#"{{"ImageName":"test","ImageVersion":"test","BuildMetadata":{{"BuildTime":"{BUILD_TIME}","BuildTool":"eif_build","BuildToolVersion":"0.2.1","OperatingSystem":"OS","KernelVersion":"kernel"}},"DockerInfo":null,"CustomMetadata":null}}"#
    )
}

/// Stand-in inputs: a pseudo-random "kernel", our bootstrap ramdisk of stand-in blobs, and a
/// customer ramdisk from a small OCI image.
struct Inputs {
    _dir: tempfile::TempDir,
    kernel: PathBuf,
    bootstrap: PathBuf,
    customer: PathBuf,
    dir: PathBuf,
}

fn inputs() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    let noise = |n: usize, seed: u32| -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    };
    std::fs::write(p.join("bzImage"), noise(300_000, 1)).unwrap();
    std::fs::write(p.join("init"), noise(70_001, 2)).unwrap();
    std::fs::write(p.join("nsm.ko"), noise(20_003, 3)).unwrap();
    let mut boot = std::fs::File::create(p.join("bootstrap.cpio")).unwrap();
    nitro_eif::bootstrap::write_bootstrap_ramdisk(&p.join("init"), &p.join("nsm.ko"), &mut boot)
        .unwrap();

    let raw = common::layer_tar(
        &[
            common::E::Dir("bin", 0o755),
            common::E::File("bin/app", b"#!/bin/sh\necho hi\n", 0o755),
        ],
        3,
    );
    let (files, _) = common::oci_layout_files(
        &[(
            common::gzip(&raw),
            raw,
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )],
        "amd64",
    );
    common::write_dir(&p.join("oci"), &files);
    let spec = nitro_eif::ImageSpec {
        source: nitro_eif::image::ImageSource::OciLayout(p.join("oci")),
        reference: None,
        platform: None,
        digest: None,
        extra_files: vec![],
        command: Default::default(),
        source_date_epoch: 0,
        max_unpacked: nitro_eif::DEFAULT_MAX_UNPACKED,
    };
    nitro_eif::write_image_ramdisk(&spec, Arch::X86_64, &p.join("customer.cpio")).unwrap();
    Inputs {
        kernel: p.join("bzImage"),
        bootstrap: p.join("bootstrap.cpio"),
        customer: p.join("customer.cpio"),
        dir: p,
        _dir: dir,
    }
}

fn our_eif(i: &Inputs, cmdline: &str, out: &Path, signer: Option<&Signer>) -> Measurements {
    our_eif_for(Arch::X86_64, i, cmdline, out, signer)
}

fn our_eif_for(
    arch: Arch,
    i: &Inputs,
    cmdline: &str,
    out: &Path,
    signer: Option<&Signer>,
) -> Measurements {
    let file = std::fs::File::create(out).unwrap();
    let mut kernel = std::fs::File::open(&i.kernel).unwrap();
    let mut w = EifWriter::new(
        file,
        arch,
        &mut kernel,
        cmdline,
        eif_build_metadata().as_bytes(),
    )
    .unwrap();
    for r in [&i.bootstrap, &i.customer] {
        w.add_ramdisk_from(&mut std::fs::File::open(r).unwrap())
            .unwrap();
    }
    w.finish(signer).unwrap().1
}

const CMDLINE: &str = "reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on";

#[test]
fn unsigned_pcrs_and_bytes_match_eif_build() {
    let i = inputs();
    let theirs_path = i.dir.join("theirs.eif");
    let theirs = run_eif_build(
        &i.kernel,
        CMDLINE,
        &[&i.bootstrap, &i.customer],
        &theirs_path,
        None,
    );
    let ours_path = i.dir.join("ours.eif");
    let ours = our_eif(&i, &format!("{CMDLINE}\n"), &ours_path, None);
    assert_eq!(
        (ours.pcr0, ours.pcr1, ours.pcr2),
        (theirs.pcr0, theirs.pcr1, theirs.pcr2)
    );
    assert!(theirs.pcr8.is_none() && ours.pcr8.is_none());
    // Same metadata bytes → the very same file.
    assert_eq!(
        std::fs::read(&ours_path).unwrap(),
        std::fs::read(&theirs_path).unwrap()
    );

    let d = describe(&theirs_path).unwrap();
    assert!(d.crc.ok);
    assert_eq!(d.measurements.pcr0, theirs.pcr0);
    assert_eq!(d.measurements.pcr1, theirs.pcr1);
    assert_eq!(d.measurements.pcr2, theirs.pcr2);
    assert_eq!(d.cmdline, CMDLINE);
}

#[test]
fn aarch64_files_match_eif_build() {
    let i = inputs();
    let theirs = i.dir.join("theirs-arm.eif");
    let status = Command::new(eif_build())
        .arg("--kernel")
        .arg(&i.kernel)
        .args([
            "--cmdline",
            CMDLINE,
            "--name",
            "test",
            "--build-time",
            BUILD_TIME,
            "--arch",
            "aarch64",
        ])
        .arg("--ramdisk")
        .arg(&i.bootstrap)
        .arg("--ramdisk")
        .arg(&i.customer)
        .arg("--output")
        .arg(&theirs)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let ours = i.dir.join("ours-arm.eif");
    our_eif_for(Arch::Aarch64, &i, CMDLINE, &ours, None);
    assert_eq!(
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap()
    );
    assert_eq!(describe(&theirs).unwrap().arch, Some(Arch::Aarch64));
}

/// A key and self-signed certificate made by the openssl CLI.
fn openssl_key(dir: &Path, curve: &str, pkcs8: bool) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{curve}.key"));
    let cert = dir.join(format!("{curve}.crt"));
    let ok = |c: &mut Command| assert!(c.status().expect("the openssl CLI is required").success());
    if pkcs8 {
        ok(Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
            .arg(format!("ec_paramgen_curve:{curve}"))
            .arg("-out")
            .arg(&key));
    } else {
        // SEC1 with a leading EC PARAMETERS block, as `openssl ecparam -genkey` writes by default.
        ok(Command::new("openssl")
            .args(["ecparam", "-genkey", "-name", curve])
            .arg("-out")
            .arg(&key));
    }
    ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-new",
            "-sha384",
            "-days",
            "30",
            "-subj",
            "/CN=nitro-eif-test",
            "-key",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (key, cert)
}

#[test]
fn signed_pcrs_match_eif_build_and_signatures_cross_verify() {
    let i = inputs();
    for (curve, pkcs8) in [
        ("secp384r1", false),
        ("prime256v1", true),
        ("secp521r1", false),
    ] {
        let (key, cert) = openssl_key(&i.dir, curve, pkcs8);
        let theirs_path = i.dir.join(format!("theirs-{curve}.eif"));
        let theirs = run_eif_build(
            &i.kernel,
            CMDLINE,
            &[&i.bootstrap, &i.customer],
            &theirs_path,
            Some((&cert, &key)),
        );
        let signer = Signer::from_files(&key, &cert).unwrap();
        let ours_path = i.dir.join(format!("ours-{curve}.eif"));
        let ours = our_eif(&i, CMDLINE, &ours_path, Some(&signer));
        assert_eq!(
            (ours.pcr0, ours.pcr1, ours.pcr2, ours.pcr8),
            (theirs.pcr0, theirs.pcr1, theirs.pcr2, theirs.pcr8),
            "{curve}"
        );
        assert!(ours.pcr8.is_some());

        // Our reader verifies AWS's signature; AWS's reader is not a CLI, so ours is checked
        // with the openssl CLI below.
        for path in [&theirs_path, &ours_path] {
            let d = describe(path).unwrap();
            assert!(d.crc.ok, "{curve}");
            let sig = match d.signature.clone() {
                Some(nitro_eif::reader::SignatureCheck::Valid(info)) => info,
                other => panic!("{curve} {path:?}: {other:?}"),
            };
            assert_eq!(Some(sig.pcr8), theirs.pcr8);
            assert!(sig.valid_now && sig.subject.contains("nitro-eif-test"));
            let j = d.nitro_cli_json();
            assert_eq!(
                (j["IsSigned"].as_bool(), j["SignatureCheck"].as_bool()),
                (Some(true), Some(true))
            );
            assert_eq!(d.measurements.pcr0, theirs.pcr0);
            assert_eq!(d.measurements.pcr8, theirs.pcr8);
        }
        verify_with_openssl(&ours_path, &cert, &i.dir);

        // Structure: everything but the COSE signature bytes is identical.
        let (ours_sec, theirs_sec) = (
            signature_section(&ours_path),
            signature_section(&theirs_path),
        );
        let (oc, ocose) = split_section(&ours_sec);
        let (tc, tcose) = split_section(&theirs_sec);
        assert_eq!(oc, tc);
        assert_eq!(ocose[..3], tcose[..3], "protected, unprotected, payload");
    }
}

#[test]
fn signatures_are_deterministic() {
    let i = inputs();
    for curve in ["prime256v1", "secp384r1", "secp521r1"] {
        let (key, cert) = openssl_key(&i.dir, curve, true);
        let signer = Signer::from_files(&key, &cert).unwrap();
        let (a, b) = (i.dir.join("a.eif"), i.dir.join("b.eif"));
        our_eif(&i, CMDLINE, &a, Some(&signer));
        our_eif(&i, CMDLINE, &b, Some(&signer));
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{curve}"
        );
    }
    let a = i.dir.join("a.eif");

    // A modified kernel byte: CRC and signature both fail, and PCR8 is not reported.
    let mut bytes = std::fs::read(&a).unwrap();
    bytes[548 + 12 + 100] ^= 1;
    let d = nitro_eif::reader::read_eif(&bytes[..]).unwrap();
    assert!(!d.crc.ok);
    assert!(d.measurements.pcr8.is_none());
    match d.signature {
        Some(nitro_eif::reader::SignatureCheck::Invalid { error }) => {
            assert!(error.contains("differs"), "{error}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mismatched_key_and_certificate_are_refused() {
    let i = inputs();
    let (key, _) = openssl_key(&i.dir, "secp384r1", false);
    let other = i.dir.join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, cert) = openssl_key(&other, "secp384r1", false);
    assert!(matches!(
        Signer::from_files(&key, &cert),
        Err(nitro_eif::sign::SignError::KeyCertMismatch)
    ));
}

fn signature_section(path: &Path) -> Vec<u8> {
    let d = describe(path).unwrap();
    let s = d
        .sections
        .iter()
        .find(|s| s.kind == nitro_eif::format::SectionType::Signature)
        .unwrap();
    let bytes = std::fs::read(path).unwrap();
    bytes[s.offset as usize + 12..(s.offset + 12 + s.size) as usize].to_vec()
}

fn int_array(v: &ciborium::Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| u8::try_from(i128::from(i.as_integer().unwrap())).unwrap())
        .collect()
}

/// Splits a signature section into (certificate PEM, COSE_Sign1 items), asserting AWS's shape.
fn split_section(section: &[u8]) -> (Vec<u8>, Vec<ciborium::Value>) {
    let top: ciborium::Value = ciborium::de::from_reader(section).unwrap();
    let map = top.as_array().unwrap()[0].as_map().unwrap().clone();
    assert_eq!(map[0].0.as_text(), Some("signing_certificate"));
    assert_eq!(map[1].0.as_text(), Some("signature"));
    let cose: ciborium::Value = ciborium::de::from_reader(&int_array(&map[1].1)[..]).unwrap();
    assert!(cose.as_tag().is_none(), "untagged COSE_Sign1");
    (int_array(&map[0].1), cose.as_array().unwrap().clone())
}

/// Checks our COSE signature with `openssl dgst -verify` over the RFC 8152 Sig_structure.
fn verify_with_openssl(eif: &Path, cert: &Path, dir: &Path) {
    let (_, cose) = split_section(&signature_section(eif));
    let protected = cose[0].as_bytes().unwrap().clone();
    let payload = cose[2].as_bytes().unwrap().clone();
    let rs = cose[3].as_bytes().unwrap().clone();
    let alg: ciborium::Value = ciborium::de::from_reader(&protected[..]).unwrap();
    let digest = match i128::from(alg.as_map().unwrap()[0].1.as_integer().unwrap()) {
        -7 => "-sha256",
        -35 => "-sha384",
        -36 => "-sha512",
        other => panic!("alg {other}"),
    };
    let sig_structure = ciborium::Value::Array(vec![
        "Signature1".into(),
        ciborium::Value::Bytes(protected),
        ciborium::Value::Bytes(vec![]),
        ciborium::Value::Bytes(payload),
    ]);
    let mut tbs = Vec::new();
    ciborium::ser::into_writer(&sig_structure, &mut tbs).unwrap();
    std::fs::write(dir.join("tbs"), tbs).unwrap();
    std::fs::write(dir.join("sig.der"), der_ecdsa_sig(&rs)).unwrap();
    let pubkey = dir.join("pub.pem");
    assert!(Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(cert)
        .arg("-out")
        .arg(&pubkey)
        .status()
        .unwrap()
        .success());
    let out = Command::new("openssl")
        .args(["dgst", digest, "-verify"])
        .arg(&pubkey)
        .arg("-signature")
        .arg(dir.join("sig.der"))
        .arg(dir.join("tbs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl rejected our signature: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// r‖s → DER `ECDSA-Sig-Value`.
fn der_ecdsa_sig(rs: &[u8]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let mut v: Vec<u8> = x.iter().copied().skip_while(|&b| b == 0).collect();
        if v.first().is_none_or(|&b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02];
        out.extend(der_len(v.len()));
        out.extend(v);
        out
    };
    let (r, s) = rs.split_at(rs.len() / 2);
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    out.extend(der_len(body.len()));
    out.extend(body);
    out
}

fn der_len(n: usize) -> Vec<u8> {
    if n < 128 {
        vec![n as u8]
    } else {
        vec![0x81, n as u8]
    }
}

/// The full pipeline (`build_eif`) against eif_build fed with the ramdisks our EIF contains.
#[test]
fn build_eif_matches_eif_build_on_the_same_sections() {
    let i = inputs();
    let spec = common::build_spec(&i.dir, &i.kernel);
    let out = i.dir.join("built.eif");
    let built = nitro_eif::build_eif(&spec, &out, &nitro_eif::NoProgress).unwrap();
    let d = describe(&out).unwrap();
    assert_eq!(d.measurements, built.measurements);
    assert_eq!(built.image_digest, spec.image.digest);
    assert_eq!(
        built.argv,
        ["/.nitro-provision/enclave-runtime", "/bin/app", "--serve"]
    );
    let meta = d.metadata.unwrap();
    assert_eq!(
        meta["BuildMetadata"]["BuildTime"],
        "1970-01-01T00:00:00+00:00"
    );
    assert_eq!(
        meta["CustomMetadata"]["ImageDigest"],
        serde_json::json!(spec.image.digest)
    );
    let bytes = std::fs::read(&out).unwrap();
    let mut ramdisks = Vec::new();
    for (n, s) in d
        .sections
        .iter()
        .filter(|s| s.kind == nitro_eif::format::SectionType::Ramdisk)
        .enumerate()
    {
        let p = i.dir.join(format!("rd{n}"));
        std::fs::write(
            &p,
            &bytes[s.offset as usize + 12..(s.offset + 12 + s.size) as usize],
        )
        .unwrap();
        ramdisks.push(p);
    }
    let refs: Vec<&Path> = ramdisks.iter().map(PathBuf::as_path).collect();
    let theirs = run_eif_build(
        &i.kernel,
        spec.cmdline.trim(),
        &refs,
        &i.dir.join("theirs.eif"),
        None,
    );
    assert_eq!(
        (
            built.measurements.pcr0,
            built.measurements.pcr1,
            built.measurements.pcr2
        ),
        (theirs.pcr0, theirs.pcr1, theirs.pcr2)
    );
    // PCR1 depends only on kernel, cmdline and the bootstrap blobs.
    assert_eq!(
        std::fs::read(&ramdisks[0]).unwrap(),
        std::fs::read(&i.bootstrap).unwrap()
    );
}
