//! `policy render|diff|explain` through the binary (no AWS); `policy apply --holder` against
//! moto is in `holder_moto.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha384};

fn np(config: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .arg("-f")
        .arg(config)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A nitro-cli-shaped measurements.json whose PCRs derive from `seed` (or are all zero).
fn measurements(dir: &Path, seed: &str) -> PathBuf {
    let pcr = |i: u8| {
        if seed == "zero" {
            "0".repeat(96)
        } else {
            hex::encode(Sha384::digest(format!("{seed}/{i}")))
        }
    };
    let path = dir.join(format!("{seed}.json"));
    let doc = serde_json::json!({"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": pcr(0), "PCR1": pcr(1), "PCR2": pcr(2)}});
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

#[test]
fn render_diff_explain_and_guards() {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (old, new, zero) = (
        measurements(dir.path(), "old"),
        measurements(dir.path(), "new"),
        measurements(dir.path(), "zero"),
    );

    let steady = np(
        &config,
        &["policy", "render", "--releases", old.to_str().unwrap()],
        &[],
    );
    assert_eq!(steady.status.code(), Some(0), "{}", text(&steady));
    let steady_path = dir.path().join("steady.json");
    std::fs::write(&steady_path, &steady.stdout).unwrap();

    let both = format!("{},{}", old.display(), new.display());
    let transitional = np(&config, &["policy", "render", "--releases", &both], &[]);
    assert_eq!(
        transitional.status.code(),
        Some(0),
        "{}",
        text(&transitional)
    );
    let transitional_path = dir.path().join("transitional.json");
    std::fs::write(&transitional_path, &transitional.stdout).unwrap();

    // The reviewer's diff: one release added, which broadens access; exit 2 = different.
    let d = np(
        &config,
        &[
            "policy",
            "diff",
            "--from",
            steady_path.to_str().unwrap(),
            "--to",
            transitional_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(d.status.code(), Some(2), "{}", text(&d));
    assert!(text(&d).contains('+'), "{}", text(&d));
    let same = np(
        &config,
        &[
            "policy",
            "diff",
            "--from",
            steady_path.to_str().unwrap(),
            "--to",
            steady_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(same.status.code(), Some(0));
    let json = np(
        &config,
        &[
            "policy",
            "diff",
            "--json",
            "--from",
            steady_path.to_str().unwrap(),
            "--to",
            transitional_path.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        serde_json::from_slice::<serde_json::Value>(&json.stdout).is_ok(),
        "{}",
        text(&json)
    );

    // Exactly the two releases can decrypt.
    let e = np(
        &config,
        &[
            "policy",
            "explain",
            "--json",
            transitional_path.to_str().unwrap(),
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    let releases: usize = v["access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["releases"].as_array().unwrap().len())
        .sum();
    assert_eq!(releases, 2, "{v:#}");

    // Guard: an all-zero (debug) release is refused.
    let g = np(
        &config,
        &["policy", "render", "--releases", zero.to_str().unwrap()],
        &[],
    );
    assert_eq!(g.status.code(), Some(1));
    assert!(text(&g).contains("all-zero"), "{}", text(&g));

    // A key holder's policy: their admin administers, our role decrypts.
    let h = np(
        &config,
        &[
            "policy",
            "render",
            "--holder",
            "auditor",
            "--releases",
            old.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(h.status.code(), Some(0), "{}", text(&h));
    assert!(text(&h).contains("arn:aws:iam::210987654321:role/key-admin"));
    let unknown = np(&config, &["policy", "render", "--holder", "nobody"], &[]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown).contains("no key holder `nobody`"));
}
