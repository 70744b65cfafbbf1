//! The binary end to end: golden `plan --offline` output, exit codes, `validate`, `render`.

use std::process::{Command, Output};

fn np(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .current_dir(harness::repo_root())
        .env_remove("NO_COLOR")
        .args(args)
        .output()
        .expect("run nitro-provision")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// `plan --offline --json` of `config`, which must succeed.
fn offline_json(config: &std::path::Path) -> String {
    let o = np(&[
        "-f",
        config.to_str().unwrap(),
        "plan",
        "--offline",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

#[test]
fn plan_offline_text_matches_golden() {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let o = np(&["-f", config.to_str().unwrap(), "plan", "--offline"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("warning: built from STAND-IN kernel blobs"),
        "stand-in PCRs must carry the warning, on stderr"
    );
    harness::assert_golden("plan-offline.txt", &text);
}

#[test]
fn plan_offline_json_matches_golden_and_is_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let text = offline_json(&config);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["format_version"], "1.1");
    // A stable schema (item 11 of issue 10): every key is there, null or empty when it does not
    // apply; PCRs carry nitro-cli's names.
    for key in [
        "change_set",
        "key_id",
        "pcr_changes",
        "key_policy_change",
        "key_policy_drift",
    ] {
        assert!(doc.get(key).is_some(), "{key} missing");
    }
    assert_eq!(doc["pcr_changes"], serde_json::json!([]));
    assert!(doc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a.get("present").is_some_and(|p| p.is_null())));
    for (i, p) in doc["pinned_pcrs"].as_array().unwrap().iter().enumerate() {
        assert_eq!(p["name"], format!("PCR{}", p["index"]), "{i}");
    }

    assert_eq!(doc["mode"], "offline");
    harness::assert_golden("plan-offline.json", &text);
}

#[test]
fn detailed_exitcode_reports_changes() {
    let o = np(&[
        "-f",
        "enclave.yaml.example",
        "plan",
        "--offline",
        "--detailed-exitcode",
    ]);
    assert_eq!(o.status.code(), Some(2), "a first apply creates resources");
}

#[test]
fn validate_exit_codes_and_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let good = harness::example_deployment(dir.path());
    let ok = np(&["-f", good.to_str().unwrap(), "validate"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("  cpu_count: 2 ", "  cpu_count: 3 ")
        .replace("name: hello-enclave", "name: Hello");
    std::fs::write(&bad, text).unwrap();
    let o = np(&["-f", bad.to_str().unwrap(), "validate"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{}:13:7: error: name: must start with a lowercase letter",
            bad.display()
        )),
        "{err}"
    );
    assert!(err.contains("enclave.cpu_count: must be even"), "{err}");
    assert!(err.contains("3 errors in"), "{err}");
    let missing = np(&["-f", "/nonexistent/enclave.yaml", "validate"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn render_writes_the_deployment_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let out = dir.path().join("out");
    let o = np(&[
        "-f",
        config.to_str().unwrap(),
        "render",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    for f in [
        "template.yaml",
        "user_data.sh",
        "policies/kms-key-policy.json",
        "policies/instance-role-policy.cfn.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(String::from_utf8_lossy(&o.stderr).contains("STAND-IN kernel blobs"));
    // Built: the user_data pins the EIF's real digest.
    let ud = std::fs::read_to_string(out.join("user_data.sh")).unwrap();
    assert!(!ud.contains("UNKNOWN-not-built"));

    // Without the runtime binary the EIF cannot be built: PCRs unknown, and said so.
    let text = std::fs::read_to_string(&config).unwrap();
    let missing: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("runtime:") {
                "  runtime: /nonexistent/enclave-runtime"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, missing + "\n").unwrap();
    let o = np(&[
        "-f",
        config.to_str().unwrap(),
        "render",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("enclave-runtime not found") && err.contains("the EIF is not built"),
        "{err}"
    );
}

#[test]
fn template_override_directory_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let custom = harness::repo_root().join("templates/enclave-supervisor.service.j2");
    let text = std::fs::read_to_string(custom)
        .unwrap()
        .replace("RestartSec=2", "RestartSec=7");
    std::fs::write(dir.path().join("enclave-supervisor.service.j2"), text).unwrap();
    // A misspelled name is not silently ignored.
    std::fs::write(dir.path().join("user-data.sh.j2"), "#!/bin/sh\n").unwrap();
    let out = dir.path().join("out");
    let o = np(&[
        "-f",
        "enclave.yaml.example",
        "--templates",
        dir.path().to_str().unwrap(),
        "render",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ud = std::fs::read_to_string(out.join("user_data.sh")).unwrap();
    assert!(ud.contains("RestartSec=7"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "ignoring user-data.sh.j2: not a template name (did you mean `user_data.sh.j2`?)"
        ),
        "{err}"
    );
}

/// The README's two set-up commands build into one target directory: both scripts take it
/// from scripts/env.sh and neither picks another, so a new user compiles the workspace once.
#[test]
fn the_readme_commands_share_one_target_directory() {
    let root = harness::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block: Vec<&str> = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap()
        .lines()
        .collect();
    assert_eq!(block, ["scripts/demo.sh", "scripts/test.sh"]);
    let env = std::fs::read_to_string(root.join("scripts/env.sh")).unwrap();
    assert!(env.contains("export CARGO_TARGET_DIR="), "{env}");
    for script in block {
        let text = std::fs::read_to_string(root.join(script)).unwrap();
        let code: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(
            code.iter().any(|l| l.trim() == "source scripts/env.sh"),
            "{script} does not source scripts/env.sh"
        );
        assert!(
            !code
                .iter()
                .any(|l| l.contains("CARGO_TARGET_DIR=") || l.contains("--target-dir")),
            "{script} picks its own target directory"
        );
        assert!(
            code.iter()
                .any(|l| l.contains("cargo build") || l.contains("cargo test")),
            "{script} builds nothing"
        );
    }
}

/// Item 11 of issue 10: a cached EIF whose bytes changed on disk (same size, same mtime, so the
/// input fingerprint still matches) is rebuilt before it is reported; the report always names
/// the bytes on disk.
#[test]
fn a_cached_eif_changed_on_disk_is_rebuilt() {
    use sha2::{Digest, Sha384};
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let plan = || {
        let doc: serde_json::Value = serde_json::from_str(&offline_json(&config)).unwrap();
        doc["artifacts"][0]["digest"].as_str().unwrap().to_string()
    };
    let eif = dir
        .path()
        .join(".nitro-provision/build/hello-enclave/hello-enclave.eif");
    let on_disk = || {
        format!(
            "sha384:{}",
            hex::encode(Sha384::digest(std::fs::read(&eif).unwrap()))
        )
    };
    let built = plan();
    assert_eq!(built, on_disk());
    harness::corrupt_keeping_mtime(&eif, 100);
    assert_ne!(on_disk(), built, "the cached file was changed");
    assert_eq!(plan(), built, "rebuilt: the same reproducible EIF");
    assert_eq!(on_disk(), built, "and the file on disk is that EIF again");
}

/// Item 11 of issue 10: an error prints each cause once.
#[test]
fn errors_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    let missing: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("dir: ") && l.contains("blobs-standin") {
                "    dir: /nonexistent/blobs"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(missing, text.trim_end());
    std::fs::write(&config, missing + "\n").unwrap();
    let o = np(&["-f", config.to_str().unwrap(), "plan", "--offline"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/blobs/cmdline"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
