//! Item 9 (and the planning-flag part of item 7) of issue 10, through the real binary: every
//! usage error exits 1, like any other error, so a typo in CI never reads as "changes present"
//! (exit 2, `plan --detailed-exitcode` and `policy diff`, tested in `cli.rs` and
//! `policy_cli.rs`). Help and `--version` exit 0.

use std::process::{Command, Output, Stdio};

fn np(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .current_dir(harness::repo_root())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn usage_errors_exit_1_for_every_command() {
    let cases: &[&[&str]] = &[
        &[],
        &["bogus"],
        &["--bogus", "validate"],
        &["validate", "--bogus"],
        &["render"],
        &["build", "--bogus"],
        &["verify", "--pcr0"],
        &["eif"],
        &["eif", "describe"],
        &["eif", "bogus"],
        &["plan", "--bogus"],
        &["plan", "--offline", "--out", "p.json"],
        &["plan", "--offline", "--keep-old-release"],
        &["plan", "--offline", "--adopt-stack"],
        &["plan", "--discard", "p.json", "--json"],
        &["plan", "--discard", "p.json", "--out", "q.json"],
        &["plan", "--discard"],
        &["apply", "--bogus"],
        &["apply", "p.json", "--yes"],
        &["apply", "p.json", "--keep-old-release"],
        &["apply", "p.json", "--adopt-stack"],
        &["apply", "a.json", "b.json"],
        &["destroy", "--bogus"],
        &["destroy", "extra"],
        &["status", "--bogus"],
        &["attest"],
        &["attest", "verify"],
        &["policy"],
        &["policy", "bogus"],
        &["policy", "render", "--bogus"],
        &["policy", "diff", "--from", "a.json", "--live", "alias/x"],
        &["policy", "explain", "a.json", "--holder", "h"],
        &["policy", "apply"],
    ];
    for args in cases {
        let o = np(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("error:") || err.contains("Usage:"),
            "{args:?}: a usage message on stderr: {err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["plan", "--help"],
        &["policy", "diff", "--help"],
        &["help", "apply"],
    ] {
        let o = np(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn other_errors_exit_1_too() {
    // Not a usage error, but an error all the same: never 2.
    let o = np(&[
        "-f",
        "/nonexistent/enclave.yaml",
        "plan",
        "--offline",
        "--detailed-exitcode",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let o = np(&[
        "policy",
        "diff",
        "--from",
        "/nonexistent/a.json",
        "--to",
        "/nonexistent/b.json",
    ]);
    assert_eq!(o.status.code(), Some(1));
}
