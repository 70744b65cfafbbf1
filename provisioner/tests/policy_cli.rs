//! `policy render|diff|explain` through the binary, no AWS (`policy apply --holder` against
//! moto is in `holder_moto.rs`). Includes items 7, 8 and 10 of issue 10: conflicting or ignored
//! flag combinations are usage errors; `explain` lists every way to get Decrypt and flags it,
//! and the guards refuse such policies when rendering; files are reviewed without any
//! enclave.yaml.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha384};

/// Runs the binary in `dir` (no enclave.yaml unless `-f` names one).
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .current_dir(dir)
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn np(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["-f", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run(config.parent().unwrap(), &all)
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
    );
    assert_eq!(steady.status.code(), Some(0), "{}", text(&steady));
    let steady_path = dir.path().join("steady.json");
    std::fs::write(&steady_path, &steady.stdout).unwrap();

    let both = format!("{},{}", old.display(), new.display());
    let transitional = np(&config, &["policy", "render", "--releases", &both]);
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
    );
    assert_eq!(h.status.code(), Some(0), "{}", text(&h));
    assert!(text(&h).contains("arn:aws:iam::210987654321:role/key-admin"));
    let unknown = np(&config, &["policy", "render", "--holder", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown).contains("no key holder `nobody`"));
}

/// The example's steady policy, rendered for fixed measurements, written to `dir/NAME`.
fn rendered_policy(dir: &Path, name: &str) -> PathBuf {
    let config = harness::example_deployment(dir);
    let m = measurements(dir, "fixed");
    let o = np(
        &config,
        &["policy", "render", "--releases", m.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let path = dir.join(name);
    std::fs::write(&path, &o.stdout).unwrap();
    path
}

#[test]
fn conflicting_or_ignored_policy_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let policy = rendered_policy(dir.path(), "p.json");
    let p = policy.to_str().unwrap();
    for (args, expected) in [
        (
            &["policy", "diff", "--from", p, "--live", "alias/x"][..],
            "cannot be used with",
        ),
        (
            &[
                "policy", "diff", "--from", p, "--to", p, "--holder", "auditor",
            ],
            "--holder has no effect when both --from and --to are files",
        ),
        (
            &["policy", "explain", p, "--live", "alias/x"],
            "cannot be used with",
        ),
        (
            &["policy", "explain", p, "--holder", "auditor"],
            "cannot be used with",
        ),
        (&["policy", "apply"], "--holder <HOLDER>"),
    ] {
        let o = run(dir.path(), args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(expected), "{args:?}: {}", text(&o));
        assert!(!text(&o).contains("No differences"), "{args:?}");
    }
}

#[test]
fn policy_files_are_reviewed_without_an_enclave_yaml() {
    let work = tempfile::tempdir().unwrap();
    let a = rendered_policy(work.path(), "a.json");
    // A directory with only the files a key holder was sent.
    let holder = tempfile::tempdir().unwrap();
    let b = holder.path().join("b.json");
    std::fs::copy(&a, &b).unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    assert!(!holder.path().join("enclave.yaml").exists());
    let o = run(holder.path(), &["policy", "diff", "--from", a, "--to", b]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("No differences"));
    let o = run(holder.path(), &["policy", "explain", b]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Even with -f naming a file that does not exist: it is not read.
    let o = run(
        holder.path(),
        &[
            "-f",
            "/nonexistent/enclave.yaml",
            "policy",
            "explain",
            "--json",
            b,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // What needs the deployment still says so.
    let o = run(holder.path(), &["policy", "explain"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("enclave.yaml"), "{}", text(&o));
}

/// A policy document with the example's admin statement plus `extra` statements.
fn policy_with(dir: &Path, name: &str, extra: &[serde_json::Value]) -> PathBuf {
    let base = rendered_policy(dir, "base.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base).unwrap()).unwrap();
    doc["Statement"]
        .as_array_mut()
        .unwrap()
        .extend(extra.iter().cloned());
    let path = dir.join(name);
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

#[test]
fn explain_lists_and_flags_every_way_to_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    // The rendered policy: the admins' PutKeyPolicy is the one indirect path, flagged.
    let steady = rendered_policy(dir.path(), "steady.json");
    let o = run(
        dir.path(),
        &["policy", "explain", "--json", steady.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let indirect = e["indirect"].as_array().unwrap();
    assert_eq!(indirect.len(), 1, "{e:#}");
    assert_eq!(indirect[0]["action"], "kms:PutKeyPolicy");
    assert_eq!(
        indirect[0]["principals"][0],
        "arn:aws:iam::123456789012:root"
    );
    assert!(
        e["access"][0]["releases"][0]["PCR0"].is_string(),
        "PCR names: {e:#}"
    );

    let loose = policy_with(
        dir.path(),
        "loose.json",
        &[
            serde_json::json!({"Sid": "Ops", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/ops"}, "Action": "kms:*", "Resource": "*"}),
            serde_json::json!({"Sid": "Grants", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci"}, "Action": "kms:CreateGrant", "Resource": "*"}),
            serde_json::json!({"Sid": "Debug", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/dev"}, "Action": "kms:Decrypt", "Resource": "*",
                "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": "0".repeat(96), "kms:RecipientAttestation:PCR1": "0".repeat(96)}}}),
        ],
    );
    // The rendered policy's Deny still applies to Decrypt, CreateGrant and ReEncryptFrom without
    // a released PCR0; remove it to see the paths a looser policy opens.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&loose).unwrap()).unwrap();
    doc["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Effect"] == "Allow");
    std::fs::write(&loose, doc.to_string()).unwrap();
    let o = run(dir.path(), &["policy", "explain", loose.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let t = text(&o);
    for expected in [
        "can give themselves kms:Decrypt:",
        "statement Ops: arn:aws:iam::123456789012:role/ops via kms:PutKeyPolicy",
        "statement Ops: arn:aws:iam::123456789012:role/ops via kms:CreateGrant",
        "statement Grants: arn:aws:iam::123456789012:role/ci via kms:CreateGrant",
        "! statement Ops: arn:aws:iam::123456789012:role/ops can kms:Decrypt without attestation",
        "! statement Debug: admits a release whose pinned PCRs are all zero: every debug-mode enclave",
    ] {
        assert!(t.contains(expected), "missing {expected:?} in\n{t}");
    }
}

/// `--templates DIR` with a key policy template that has `edit` applied.
fn templates_with(dir: &Path, edit: &dyn Fn(String) -> String) -> PathBuf {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let original =
        std::fs::read_to_string(harness::repo_root().join("policies/kms-key-policy.json.j2"))
            .unwrap();
    let edited = edit(original.clone());
    assert_ne!(edited, original, "the edit applies");
    std::fs::write(templates.join("kms-key-policy.json.j2"), edited).unwrap();
    templates
}

#[test]
fn guards_refuse_decrypt_paths_when_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let cfg = config.to_str().unwrap();
    // The enclave's role may rewrite the policy: whoever holds its credentials could decrypt.
    let rewrite = templates_with(&dir.path().join("a"), &|t| {
        t.replace(
            r#"      "Principal": {"AWS": {{ admins | tojson }}},"#,
            r#"      "Principal": {"AWS": {{ (admins + enclave_principals) | tojson }}},"#,
        )
    });
    // Writers may create grants: a grant gives Decrypt outside the key policy's conditions.
    let grants = templates_with(&dir.path().join("b"), &|t| {
        t.replace(
            r#""Action": "kms:Encrypt","#,
            r#""Action": ["kms:Encrypt", "kms:CreateGrant"],"#,
        )
    });
    for (templates, expected) in [
        (
            &rewrite,
            "decrypts as an attested enclave but may also call kms:PutKeyPolicy",
        ),
        (
            &grants,
            "statement SealSecrets: allows kms:CreateGrant without an attestation condition",
        ),
    ] {
        for command in [
            &["policy", "render"][..],
            &["plan", "--offline"],
            &["render", "--out", "out"],
        ] {
            let mut args = vec!["-f", cfg, "--templates", templates.to_str().unwrap()];
            args.extend_from_slice(command);
            let o = run(dir.path(), &args);
            assert_eq!(o.status.code(), Some(1), "{command:?}: {}", text(&o));
            assert!(text(&o).contains(expected), "{command:?}: {}", text(&o));
        }
    }
}
