//! Output conventions through the binary (issue 11, item 10): results on stdout, warnings and
//! errors on stderr with a severity on every line, no library internals in messages, `--color`
//! and its environment, `--json` for validate/build/verify, input errors exit 1, help on every
//! flag.

mod common;

use std::process::{Command, Output};

use clap::CommandFactory;
use common::deployment::{output, Dep};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Each line starts with its severity, or is gcc's `FILE:LINE:COLUMN: error: …` for `file`.
fn assert_every_line_has_a_severity(text: &str, file: &std::path::Path) {
    let located = format!("{}:", file.display());
    for line in text.lines().filter(|l| !l.is_empty()) {
        let ok = line.starts_with("error: ")
            || line.starts_with("warning: ")
            || line
                .strip_prefix(&located)
                .and_then(|rest| rest.split_once(": error: "))
                .is_some_and(|(pos, _)| pos.split(':').all(|n| n.parse::<u32>().is_ok()));
        assert!(ok, "line without a severity: {line:?} in:\n{text}");
    }
}

#[test]
fn warnings_go_to_stderr_with_a_severity_on_every_line() {
    let d = Dep::new();
    let o = d.np(&["plan", "--offline"]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    assert!(!stdout(&o).contains("warning"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("warning: built from STAND-IN kernel blobs"),
        "{}",
        stderr(&o)
    );
    assert_every_line_has_a_severity(&stderr(&o), &d.config);

    // Several diagnostics, and an error that is not about a position.
    d.replace("  cpu_count: 2 ", "  cpu_count: 3 ");
    d.replace("name: hello-enclave", "name: Hello");
    let o = d.np(&["validate"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(stderr(&o).contains(": error: name: must start with a lowercase letter"));
    assert_every_line_has_a_severity(&stderr(&o), &d.config);
    let missing = std::path::Path::new("/nonexistent/enclave.yaml");
    let o = Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .args(["-f", missing.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: cannot read /nonexistent/enclave.yaml"),
        "{}",
        stderr(&o)
    );
    assert_every_line_has_a_severity(&stderr(&o), missing);
}

#[test]
fn messages_name_things_not_library_structures() {
    let d = Dep::new();
    let out = d.path("out");
    let o = d.np(&["build", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    let eif = out.join("hello-enclave.eif");
    let mut bytes = std::fs::read(&eif).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&eif, &bytes).unwrap();
    let o = d.np(&["eif", "describe", eif.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", output(&o));
    let text = output(&o);
    assert!(text.contains("arch x86-64"), "{text}");
    assert!(text.contains("CRC-32: MISMATCH (stored 0x"), "{text}");
    assert!(text.contains("  kernel "), "{text}");

    let type_line = d
        .text()
        .lines()
        .find(|l| l.starts_with("  type: "))
        .unwrap()
        .to_string();
    d.replace(&type_line, "  type: c6i.large");
    let o = d.np(&["validate"]);
    assert!(
        output(&o).contains("Nitro Enclaves need at least 4 on x86_64 instances"),
        "{}",
        output(&o)
    );
    for text in [text, output(&o)] {
        for internal in ["Some(", "None", "CrcCheck", "X86_64", "Valid(", "{ "] {
            assert!(!text.contains(internal), "{internal} in:\n{text}");
        }
    }
}

#[test]
fn color_follows_the_flag_then_no_color_and_term() {
    let d = Dep::new();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nitro-provision"));
        c.arg("-f").arg(&d.config).args(args).env_remove("NO_COLOR");
        for (k, v) in env {
            c.env(k, v);
        }
        stdout(&c.output().unwrap()).contains("\x1b[")
    };
    let plan = ["plan", "--offline"];
    assert!(run(
        &["--color", "always", plan[0], plan[1]],
        &[("NO_COLOR", "1")]
    ));
    assert!(run(
        &["--color=always", plan[0], plan[1]],
        &[("TERM", "dumb")]
    ));
    assert!(!run(&["--color", "never", plan[0], plan[1]], &[]));
    assert!(!run(&["--no-color", plan[0], plan[1]], &[]));
    // auto: stdout is a pipe here, so no color (the environment rules are unit-tested).
    assert!(!run(&plan, &[("NO_COLOR", ""), ("TERM", "xterm")]));
    let o = d.np(&["--color", "sometimes", "validate"]);
    assert_eq!(o.status.code(), Some(1), "a usage error is exit 1, not 2");
    assert!(
        stderr(&o).contains("[possible values: auto, always, never]"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verify_refuses_a_pcr_that_is_not_96_hex_digits() {
    let d = Dep::new();
    for bad in ["00", "zz", &"ab".repeat(49)] {
        let o = d.np(&["verify", "--pcr0", bad]);
        assert_eq!(o.status.code(), Some(1), "{}", output(&o));
        assert!(
            stderr(&o).starts_with(&format!("error: invalid value '{bad}' for '--pcr0 <HEX>'")),
            "{}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains("a PCR is 96 hex digits"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn json_for_validate_build_and_verify() {
    let d = Dep::new();
    let o = d.np(&["validate", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["name"], "hello-enclave");

    let out = d.path("out");
    let o = d.np(&["build", "--json", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    // stdout is exactly nitro-cli build-enclave's document (the stand-in warning is on stderr).
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &b["Measurements"];
    assert_eq!(m["HashAlgorithm"], "Sha384 { ... }");
    let pcr0 = m["PCR0"].as_str().unwrap();
    assert_eq!(pcr0.len(), 96);
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("measurements.json")).unwrap())
            .unwrap();
    assert_eq!(b, on_disk);

    // PCR0 alone: a match, and PCR1/PCR2 reported as built but not checked.
    let o = d.np(&["verify", "--json", "--pcr0", pcr0]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["match"], true);
    let outcomes: Vec<(u64, &str)> = r["registers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["pcr"].as_u64().unwrap(), x["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [(0, "match"), (1, "not_expected"), (2, "not_expected")]
    );
    let o = d.np(&["verify", "--pcr0", pcr0]);
    assert!(stdout(&o).contains("PCR1  not checked"), "{}", stdout(&o));
    // A wrong PCR0 and an expected PCR8 the unsigned build lacks: exit 1, both reported.
    let o = d.np(&[
        "verify",
        "--json",
        "--pcr0",
        &"ab".repeat(48),
        "--pcr8",
        pcr0,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", output(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["match"], false);
    assert_eq!(r["registers"][0]["outcome"], "mismatch");
    assert_eq!(r["registers"][3]["outcome"], "not_produced");

    // Invalid: every diagnostic with its position, exit 1.
    d.replace("name: hello-enclave", "name: Hello");
    let o = d.np(&["validate", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", output(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let diag = &v["diagnostics"][0];
    assert_eq!(diag["severity"], "error");
    assert_eq!(diag["path"], "name");
    let line = d
        .text()
        .lines()
        .position(|l| l.starts_with("name: "))
        .unwrap()
        + 1;
    assert_eq!(
        (diag["line"].as_u64(), diag["column"].as_u64()),
        (Some(line as u64), Some(7))
    );
}

#[test]
fn every_flag_has_help_text_and_global_options_are_grouped() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} --{}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let cli = nitro_provision::cli::Cli::command();
    let mut missing = Vec::new();
    walk(&cli, "nitro-provision", &mut missing);
    assert!(missing.is_empty(), "flags without help: {missing:?}");

    let o = Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .args(["validate", "--help"])
        .output()
        .unwrap();
    let help = stdout(&o);
    let (own, global) = help
        .split_once("Global options:")
        .expect("a global section");
    assert!(own.contains("--json"), "{help}");
    assert!(
        !own.contains("--file") && global.contains("--file"),
        "{help}"
    );
    assert!(help.contains("AWS options:"), "{help}");
}

#[test]
fn yaml_parser_messages_carry_no_parser_option_or_type_names() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "duplicate",
            "name: demo\nname: other\n",
            "duplicate mapping key: name (each key may appear once in a mapping)",
        ),
        (
            "null string",
            "name:\n",
            "expected a string, got nothing (null)",
        ),
        (
            "binary",
            "name: !!binary /w==\n",
            "a !!binary value that is not UTF-8 text cannot be a string",
        ),
    ];
    for (case, text, expected) in cases {
        let file = dir.path().join("enclave.yaml");
        std::fs::write(&file, text).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
            .arg("-f")
            .arg(&file)
            .arg("validate")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{case}: {err}");
        assert!(err.contains(expected), "{case}: {err}");
        for internal in ["Options", "Option<", "Policy", "_events", "anchor id"] {
            assert!(!err.contains(internal), "{case}: {internal} in {err}");
        }
    }
}

#[test]
fn an_unreachable_endpoint_is_reported_in_words() {
    // Nothing listens on the discard port: the SDK's dispatch failure, without its Debug form.
    let o = Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .current_dir(harness::repo_root())
        .args([
            "-f",
            "enclave.yaml.example",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "status",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "example")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    for internal in ["DispatchFailure", "ConnectorError", "{ ", "Some("] {
        assert!(!err.contains(internal), "{internal} in {err}");
    }
}
