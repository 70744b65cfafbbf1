//! The `qemu-unsigned` feature (acceptance of QEMU's unsigned documents) must never reach a
//! shipped binary: every workspace binary's release dependency graph (normal and build edges,
//! no dev edges) is checked for it with `cargo tree -e features`.

use std::process::Command;

const FEATURE_LINE: &str = "nitro-attestation feature \"qemu-unsigned\"";
/// Binaries that only ever run inside test VMs, never shipped.
const TEST_ONLY_BINARIES: [&str; 1] = ["qemu-guest-probe"];

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Workspace packages that build a binary, minus the test-only ones.
fn shipped_binary_packages() -> Vec<String> {
    let meta: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--no-deps",
        "--offline",
        "--format-version",
        "1",
    ]))
    .expect("metadata JSON");
    let mut names: Vec<String> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| {
            p["targets"].as_array().is_some_and(|targets| {
                targets.iter().any(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))
                })
            })
        })
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .filter(|name| !TEST_ONLY_BINARIES.contains(&name.as_str()))
        .collect();
    names.sort();
    names
}

fn release_features(packages: &[&str], extra: &[&str]) -> String {
    let mut args = vec![
        "tree",
        "--offline",
        "-e",
        "normal,build,features",
        "--prefix",
        "none",
    ];
    for p in packages {
        args.extend(["-p", p]);
    }
    args.extend(extra);
    cargo(&args)
}

#[test]
fn no_shipped_binary_enables_qemu_unsigned() {
    let packages = shipped_binary_packages();
    for expected in ["enclave-runtime", "enclave-supervisor", "nitro-provision"] {
        assert!(
            packages.iter().any(|p| p == expected),
            "{expected} not in {packages:?}"
        );
    }
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    let tree = release_features(&packages, &[]);
    assert!(
        tree.contains("nitro-attestation feature \"default\""),
        "the check must see nitro-attestation in the shipped graph:\n{tree}"
    );
    assert!(
        !tree.contains(FEATURE_LINE),
        "a shipped binary enables nitro-attestation/qemu-unsigned:\n{tree}"
    );
}

#[test]
fn the_gate_sees_the_feature_where_a_manifest_enables_it() {
    // This crate's own tests enable it through a dev-dependency: with dev edges the same
    // query must report it, or the check above could never fail.
    let tree = release_features(&["nitro-attestation"], &["-e", "dev"]);
    assert!(tree.contains(FEATURE_LINE), "{tree}");
}
