//! `build`, `verify` and `eif describe|pcr|ramdisk|assemble` through the binary.

use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha384};

fn np(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn measurements(path: &Path) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(path).unwrap()).unwrap()
        ["Measurements"]
        .clone()
}

#[test]
fn build_then_verify_and_describe() {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let out = dir.path().join("out");
    let o = np(&["-f", s(&config), "build", "--out", s(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("STAND-IN kernel blobs"),
        "stand-in PCRs carry the warning"
    );
    let m = measurements(&out.join("measurements.json"));
    assert_eq!(m["HashAlgorithm"], "Sha384 { ... }");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("build-manifest.json")).unwrap())
            .unwrap();
    assert!(manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["name"] == "/nitro-provision/enclave-runtime"));

    // The key holder's check: a fresh rebuild agrees…
    let o = np(&[
        "-f",
        s(&config),
        "verify",
        "--expect",
        s(&out.join("measurements.json")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // …and any other value is a per-PCR mismatch, exit 1.
    let wrong = "ab".repeat(48);
    let o = np(&[
        "-f",
        s(&config),
        "verify",
        "--pcr0",
        m["PCR0"].as_str().unwrap(),
        "--pcr2",
        &wrong,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("PCR0  match") && text(&o).contains("PCR2  MISMATCH"),
        "{}",
        text(&o)
    );

    // describe reads the EIF back and recomputes the same PCRs.
    let eif = out.join("hello-enclave.eif");
    let o = np(&["eif", "describe", "--json", s(&eif)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["Measurements"]["PCR0"], m["PCR0"]);
    assert_eq!(d["CheckCRC"], true);

    // A flipped byte is a CRC mismatch (exit 1); a truncated file a clean error, never a panic.
    let mut bytes = std::fs::read(&eif).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    let flipped = dir.path().join("flipped.eif");
    std::fs::write(&flipped, &bytes).unwrap();
    let o = np(&["eif", "describe", s(&flipped)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("MISMATCH"), "{}", text(&o));
    for len in [0, 10, 547, 600, bytes.len() / 2] {
        let cut = dir.path().join("cut.eif");
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let o = np(&["eif", "describe", s(&cut)]);
        assert_eq!(o.status.code(), Some(1), "truncated to {len}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
    }
}

#[test]
fn pcr_of_a_file_is_sha384_of_zeros_and_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, b"some bytes").unwrap();
    let mut h = Sha384::new();
    h.update([0u8; 48]);
    h.update(Sha384::digest(b"some bytes"));
    let want = hex::encode(h.finalize());
    let o = np(&["eif", "pcr", "--input", s(&f)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["PCR"], want);
}

#[test]
fn ramdisks_and_assemble_reproduce_the_builds_pcr1() {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let out = dir.path().join("out");
    assert!(np(&["-f", s(&config), "build", "--out", s(&out)])
        .status
        .success());
    let built = measurements(&out.join("measurements.json"));

    let blobs = harness::repo_root().join("examples/blobs-standin");
    let boot = dir.path().join("bootstrap.cpio");
    let o = np(&[
        "eif",
        "ramdisk",
        "--bootstrap",
        "--blobs",
        s(&blobs),
        "--output",
        s(&boot),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let app = dir.path().join("app.cpio");
    let rootfs = format!(
        "rootfs:{}",
        harness::repo_root().join("examples/hello/rootfs").display()
    );
    let o = np(&[
        "eif",
        "ramdisk",
        "--image",
        &rootfs,
        "--output",
        s(&app),
        "--",
        "/app/hello.sh",
        "--output",
        "not-an-option",
    ]);
    // The command's own `--output` is its argument: a second --output option would be refused.
    assert!(o.status.success(), "{}", text(&o));
    assert!(app.is_file());

    let cmdline = std::fs::read_to_string(blobs.join("cmdline")).unwrap();
    let eif = dir.path().join("assembled.eif");
    let o = np(&[
        "eif",
        "assemble",
        "--kernel",
        s(&blobs.join("bzImage")),
        "--cmdline",
        cmdline.trim(),
        "--ramdisk",
        s(&boot),
        "--ramdisk",
        s(&app),
        "--output",
        s(&eif),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let assembled: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // PCR1 covers kernel, cmdline and the bootstrap ramdisk only: identical to the full build.
    assert_eq!(assembled["Measurements"]["PCR1"], built["PCR1"]);
    // The build injects enclave-runtime, so its customer ramdisk (PCR2) differs.
    assert_ne!(assembled["Measurements"]["PCR2"], built["PCR2"]);
    let d = np(&["eif", "describe", "--json", s(&eif)]);
    let d: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(d["Measurements"]["PCR0"], assembled["Measurements"]["PCR0"]);
}
