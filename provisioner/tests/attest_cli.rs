//! `attest verify` on real attestation documents (crates/attestation/tests/data), at their own
//! timestamps: exit codes, reasons and the JSON report.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

fn data(name: &str) -> PathBuf {
    harness::repo_root()
        .join("crates/attestation/tests/data")
        .join(name)
}

/// The document's own time plus `after`, as RFC 3339.
fn at(name: &str, after: Duration) -> String {
    let doc = nitro_attestation::parse(&std::fs::read(data(name)).unwrap()).unwrap();
    let t = UNIX_EPOCH + Duration::from_millis(doc.timestamp_ms) + after;
    humantime::format_rfc3339_seconds(t).to_string()
}

fn verify(name: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .args(["attest", "verify"])
        .arg(data(name))
        .args(args)
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn valid_document_verifies_at_its_time_with_its_pcrs() {
    let name = "evervault-valid.cose";
    let doc = nitro_attestation::parse(&std::fs::read(data(name)).unwrap()).unwrap();
    let pcr0 = format!("0={}", hex::encode(&doc.pcrs[&0]));
    let o = verify(
        name,
        &[
            "--at",
            &at(name, Duration::from_secs(60)),
            "--pcr",
            &pcr0,
            "--max-age",
            "5m",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).starts_with("VALID"));
}

#[test]
fn each_failed_check_exits_1_with_its_reason() {
    let name = "evervault-valid.cose";
    let soon = at(name, Duration::from_secs(60));
    let wrong = format!("0={}", "ab".repeat(48));
    for (args, reason) in [
        (vec!["--at", soon.as_str(), "--pcr", wrong.as_str()], "PCR0"),
        (vec!["--at", soon.as_str(), "--max-age", "10s"], "old"),
        (vec!["--at", soon.as_str(), "--nonce", "00ff"], "nonce"),
    ] {
        let o = verify(name, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", out(&o));
        assert!(
            out(&o).to_lowercase().contains(&reason.to_lowercase()),
            "{args:?}: {}",
            out(&o)
        );
    }
    let late = at(name, Duration::from_secs(4 * 3600));
    let o = verify(name, &["--at", &late]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the leaf certificate lives ~3 h: {}",
        out(&o)
    );
}

#[test]
fn debug_documents_need_allow_debug() {
    let name = "nitrite-debug.cose";
    let when = at(name, Duration::from_secs(30));
    let o = verify(name, &["--at", &when]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).to_lowercase().contains("debug"), "{}", out(&o));
    assert_eq!(
        verify(name, &["--at", &when, "--allow-debug"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn json_report_carries_the_fields_even_when_invalid() {
    let name = "turnkey-indefinite.cose";
    let o = verify(
        name,
        &["--at", &at(name, Duration::from_secs(30)), "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true, "{v:#}");
    assert!(v["document"]["module_id"]
        .as_str()
        .is_some_and(|m| m.starts_with("i-")));
    let late = verify(
        name,
        &["--at", &at(name, Duration::from_secs(5 * 3600)), "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&late.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["error"].as_str().is_some());
    assert!(
        v["document"]["pcrs"].is_object(),
        "the report still shows what the document says"
    );
}

/// A simulator document and its test root in `dir`.
fn simulator_document(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    use nitro_nsm::simulator::{Pcrs, Simulator, TestPki};
    use nitro_nsm::{AttestationRequest, Nsm};
    let pki = TestPki::generate(3).unwrap();
    let root = dir.join("root.pem");
    std::fs::write(&root, pki.root_pem()).unwrap();
    let measurements = format!(
        r#"{{"PCR0": "{}", "PCR1": "{}", "PCR2": "{}"}}"#,
        "0a".repeat(48),
        "1b".repeat(48),
        "2c".repeat(48)
    );
    let sim = Simulator::new(pki, Pcrs::from_measurements_json(&measurements).unwrap());
    let doc = dir.join("sim.cose");
    std::fs::write(&doc, sim.attest(&AttestationRequest::default()).unwrap()).unwrap();
    (doc, root)
}

fn verify_file(doc: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .args(["attest", "verify"])
        .arg(doc)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn simulator_documents_verify_only_with_root_and_say_it_is_not_aws() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, root) = simulator_document(dir.path());
    let root = root.to_str().unwrap();

    let pinned = verify_file(&doc, &[]);
    assert_eq!(pinned.status.code(), Some(1), "{}", out(&pinned));
    assert!(out(&pinned).contains("pinned AWS"), "{}", out(&pinned));

    let pcr2 = format!("2={}", "2c".repeat(48));
    let o = verify_file(&doc, &["--root", root, "--pcr", &pcr2, "--max-age", "5m"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).starts_with("VALID"), "{}", out(&o));
    assert!(out(&o).contains("NON-AWS root"), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("replaces the pinned AWS"));

    let wrong = format!("2={}", "2d".repeat(48));
    let o = verify_file(&doc, &["--root", root, "--pcr", &wrong]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("PCR2") && out(&o).contains("NON-AWS root"));

    let o = verify_file(&doc, &["--root", root, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true, "{v:#}");
    assert_eq!(v["trusted_root"]["aws"], false);
    assert_eq!(v["document"]["pcrs"]["1"], "1b".repeat(48));
}

#[test]
fn root_option_with_the_aws_root_behaves_as_the_default() {
    let name = "evervault-valid.cose";
    let aws_root = data("aws_nitro_root_g1.pem");
    let o = verify(
        name,
        &[
            "--at",
            &at(name, Duration::from_secs(60)),
            "--root",
            aws_root.to_str().unwrap(),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true, "{v:#}");
    assert_eq!(v["trusted_root"]["aws"], true);
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("not.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let o = verify(name, &["--root", garbage.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--root"));
}
