//! `policy render|diff|explain|apply` through the binary; `apply --holder` against moto's KMS.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use harness::Moto;
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

#[test]
fn apply_to_a_key_holder_key_with_confirmation() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (old, new) = (
        measurements(dir.path(), "old"),
        measurements(dir.path(), "new"),
    );
    // The holder's key, in moto (moto has one account, so the holder's account is 123456789012).
    let text_cfg = std::fs::read_to_string(&config)
        .unwrap()
        .replace("account: \"210987654321\"", "account: \"123456789012\"")
        .replace(
            "arn:aws:iam::210987654321:role/key-admin",
            "arn:aws:iam::123456789012:root",
        );
    let steady = {
        std::fs::write(&config, &text_cfg).unwrap();
        let o = np(
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
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let env = moto.env();
    let key_id = {
        for (k, v) in &env {
            std::env::set_var(k, v);
        }
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let aws = nitro_provision::aws::Aws::connect(&nitro_provision::aws::AwsOptions {
                region: "us-east-1".into(),
                endpoint_url: Some(moto.url()),
                max_attempts: 1,
                ..Default::default()
            })
            .await
            .unwrap();
            let k = aws.kms.create_key().policy(steady).send().await.unwrap();
            k.key_metadata().unwrap().key_id().to_string()
        })
    };
    std::fs::write(
        &config,
        text_cfg.replace(
            "      # key: alias/hello-enclave",
            &format!("      key: {key_id}"),
        ),
    )
    .unwrap();

    // Same releases: nothing to do.
    let o = np(
        &config,
        &[
            "policy",
            "apply",
            "--holder",
            "auditor",
            "--releases",
            old.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("No differences"));

    // Transitional: shows the diff, refuses without a terminal, applies with --yes.
    let both = format!("{},{}", old.display(), new.display());
    let o = np(
        &config,
        &[
            "policy",
            "apply",
            "--holder",
            "auditor",
            "--releases",
            &both,
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("pass --yes"), "{}", text(&o));
    let o = np(
        &config,
        &[
            "policy",
            "apply",
            "--holder",
            "auditor",
            "--releases",
            &both,
            "--yes",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let d = np(
        &config,
        &["policy", "diff", "--holder", "auditor", "--to", "/dev/null"],
        &env,
    );
    assert_eq!(d.status.code(), Some(1), "an empty file is not a policy");

    // Dropping the release the live policy admits (old) needs the explicit flag.
    let o = np(
        &config,
        &[
            "policy",
            "apply",
            "--holder",
            "auditor",
            "--releases",
            new.to_str().unwrap(),
            "--yes",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("running release"), "{}", text(&o));
    let o = np(
        &config,
        &[
            "policy",
            "apply",
            "--holder",
            "auditor",
            "--releases",
            new.to_str().unwrap(),
            "--yes",
            "--allow-dropping-running-release",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
