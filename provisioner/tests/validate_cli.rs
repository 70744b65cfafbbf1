//! `validate` checks locally what would make a deployment fail, through the real binary: every
//! referenced file, pins, the signing pair, the image and its platform, the companion
//! binaries' architecture, AWS limits of the rendered policies. Each at file:line:column.

mod common;

use common::deployment::{assert_diagnostic, elf_fixture, output, Dep};
use harness::images::{docker_archive, layer_tar, oci_layout, write_dir, write_tar, ImageDef, E};

fn app_layer() -> Vec<u8> {
    layer_tar(
        &[
            E::Dir("bin", 0o755),
            E::File("bin/app", b"#!/bin/sh\n", 0o755),
        ],
        0,
    )
}

#[test]
fn the_example_deployment_is_valid() {
    let d = Dep::new();
    let o = d.np(&["validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    assert!(output(&o).contains("valid (hello-enclave)"));
}

#[test]
fn referenced_files_and_pins_are_checked() {
    let d = Dep::new();
    let blobs = d.path("blobs");
    std::fs::create_dir(&blobs).unwrap();
    let standin = harness::repo_root().join("examples/blobs-standin");
    for f in ["bzImage", "cmdline", "init"] {
        std::fs::copy(standin.join(f), blobs.join(f)).unwrap();
    }
    // nsm.ko missing; init altered (its pin no longer holds).
    std::fs::write(blobs.join("init"), b"another init").unwrap();
    let dir_line = d
        .text()
        .lines()
        .find(|l| l.trim_start().starts_with("dir: "))
        .unwrap()
        .to_string();
    d.replace(&dir_line, &format!("    dir: {}", blobs.display()));
    d.replace(
        "  source_date_epoch: 0",
        "  signing:\n    certificate: missing.crt\n    private_key: missing.key\n  source_date_epoch: 0",
    );
    d.replace("  pcrs: [0, 1, 2]", "  pcrs: [0, 1, 2, 8]");
    let runtime_line = d
        .text()
        .lines()
        .find(|l| l.starts_with("  runtime: "))
        .unwrap()
        .to_string();
    d.replace(&runtime_line, "  runtime: nowhere/enclave-runtime");
    let o = d.np(&["validate"]);
    assert_diagnostic(
        &o,
        &d.at("      init: "),
        &[
            "image.blobs.sha384.init",
            "has SHA-384",
            "but enclave.yaml pins",
        ],
    );
    assert_diagnostic(
        &o,
        &d.at("      nsm.ko: "),
        &["image.blobs.sha384[\"nsm.ko\"]", "nsm.ko: No such file"],
    );
    assert_diagnostic(
        &o,
        &d.at("    certificate: "),
        &["image.signing.certificate", "missing.crt"],
    );
    assert_diagnostic(
        &o,
        &d.at("    private_key: "),
        &["image.signing.private_key", "missing.key"],
    );
    assert_diagnostic(
        &o,
        &d.at("  runtime: "),
        &[
            "image.runtime",
            "nowhere/enclave-runtime: enclave-runtime not found",
        ],
    );
    assert!(output(&o).contains("5 errors in"), "{}", output(&o));
}

#[test]
fn signing_key_must_match_its_certificate_and_curve() {
    let d = Dep::new();
    let openssl = harness::tool("openssl");
    let gen = |curve: &str, name: &str| {
        let key = d.path(&format!("{name}.key"));
        let crt = d.path(&format!("{name}.crt"));
        let o = std::process::Command::new(&openssl)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg(format!("ec_paramgen_curve:{curve}"))
            .args(["-nodes", "-days", "30", "-subj", "/CN=test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", output(&o));
        (key, crt)
    };
    let (key_a, crt_a) = gen("P-384", "a");
    let (key_b, _) = gen("P-384", "b");
    let (key_k, crt_k) = gen("secp256k1", "k");
    d.replace(
        "  source_date_epoch: 0",
        &format!(
            "  signing:\n    certificate: {}\n    private_key: {}\n  source_date_epoch: 0",
            crt_a.display(),
            key_b.display()
        ),
    );
    let o = d.np(&["validate"]);
    assert_diagnostic(
        &o,
        &d.at("    private_key: "),
        &["does not match the certificate"],
    );
    d.replace(&key_b.display().to_string(), &key_a.display().to_string());
    let o = d.np(&["validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    d.replace(&key_a.display().to_string(), &key_k.display().to_string())
        .replace(&crt_a.display().to_string(), &crt_k.display().to_string());
    let o = d.np(&["validate"]);
    assert_diagnostic(
        &o,
        &d.at("    certificate: "),
        &["k.crt", "not an ECDSA P-256, P-384 or P-521 key"],
    );
}

#[test]
fn architectures_of_image_runtime_and_supervisor_must_match_the_instance() {
    let d = Dep::new();
    d.replace("  type: m6i.xlarge", "  type: m7g.xlarge");
    let layout = d.path("img");
    write_dir(
        &layout,
        &oci_layout(&[ImageDef::simple(app_layer(), "amd64")]),
    );
    d.image_source(&format!("oci:{}", layout.display()));
    let o = d.np(&["validate"]);
    let all = output(&o);
    assert_diagnostic(
        &o,
        &d.at("  runtime: "),
        &[
            "image.runtime",
            "enclave-runtime is an x86-64 ELF file, but m7g.xlarge instances are aarch64 (arm64)",
            "--target aarch64-unknown-linux-musl -p enclave-runtime",
        ],
    );
    assert_diagnostic(
        &o,
        &d.at("  binary: "),
        &[
            "supervisor.binary",
            "enclave-supervisor is an x86-64 ELF file, but m7g.xlarge instances are aarch64",
        ],
    );
    assert_diagnostic(
        &o,
        &d.at("  source: "),
        &[
            "image.source",
            "the image is for linux/amd64, but m7g.xlarge instances are aarch64 (arm64)",
            "--platform linux/arm64",
        ],
    );
    assert!(all.contains("3 errors in"), "{all}");
    // `build` refuses the same inputs, naming the file and its architecture.
    let out = d.path("out");
    let o = d.np(&["build", "--out", out.to_str().unwrap()]);
    assert_diagnostic(
        &o,
        &d.at("  runtime: "),
        &["is an x86-64 ELF file, but m7g.xlarge instances are aarch64"],
    );
    assert!(!out.exists(), "a refused build creates no output directory");

    // The right parts for Graviton: aarch64 binaries and an arm64 image.
    let (rt, sv) = (d.path("rt-arm64"), d.path("sv-arm64"));
    elf_fixture(&rt, 183);
    elf_fixture(&sv, 183);
    let text = d.text();
    for (key, path) in [("  runtime: ", &rt), ("  binary: ", &sv)] {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap();
        d.replace(line, &format!("{key}{}", path.display()));
    }
    write_dir(
        &layout,
        &oci_layout(&[ImageDef::simple(app_layer(), "arm64")]),
    );
    let o = d.np(&["validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    let o = d.np(&["build", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    let eif = std::fs::read(out.join("hello-enclave.eif")).unwrap();
    assert_eq!(eif[7] & 1, 1, "the EIF header says aarch64");

    // A script is not a static binary: refused with what it is.
    std::fs::write(&rt, b"#!/bin/sh\nexec true\n").unwrap();
    let o = d.np(&["validate"]);
    assert_diagnostic(
        &o,
        &d.at("  runtime: "),
        &["is not an ELF executable: enclave-runtime must be a static Linux binary for aarch64"],
    );
}

#[test]
fn image_references_select_like_skopeo() {
    let d = Dep::new();
    d.replace("  cmd: [\"/app/hello.sh\"]\n", "");
    let named = |name| ImageDef {
        name: Some(name),
        ..ImageDef::simple(app_layer(), "amd64")
    };
    let layout = d.path("layout");
    write_dir(&layout, &oci_layout(&[named("v1"), named("v2")]));
    d.image_source(&format!("oci:{}", layout.display()));
    let o = d.np(&["validate"]);
    assert_diagnostic(
        &o,
        &d.at("  source: "),
        &[
            "image.source",
            "it holds 2 images; name one after the path (SOURCE:REF): v1, v2",
        ],
    );
    d.image_source(&format!("oci:{}:v3", layout.display()));
    let o = d.np(&["validate"]);
    assert_diagnostic(
        &o,
        &d.at("  source: "),
        &["no image `v3` in it; it has: v1, v2"],
    );
    d.image_source(&format!("oci:{}:v2", layout.display()));
    let o = d.np(&["validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));

    // docker-archive: by tag (normalized as Docker does), by index; an oci-archive by name.
    let archive = d.path("images.tar");
    let tagged = |name| ImageDef {
        name: Some(name),
        ..ImageDef::simple(app_layer(), "amd64")
    };
    write_tar(
        &archive,
        &docker_archive(&[tagged("app:v1"), tagged("docker.io/library/app:v2")]),
        0,
    );
    for (source, ok) in [
        (format!("docker-archive:{}", archive.display()), false),
        (format!("docker-archive:{}:app:v2", archive.display()), true),
        (format!("docker-archive:{}:@0", archive.display()), true),
        (
            format!("docker-archive:{}:app:v3", archive.display()),
            false,
        ),
    ] {
        d.image_source(&source);
        let o = d.np(&["validate"]);
        assert_eq!(o.status.success(), ok, "{source}: {}", output(&o));
        if !ok {
            assert_diagnostic(
                &o,
                &d.at("  source: "),
                &["app:v1", "docker.io/library/app:v2"],
            );
        }
    }
    let oci_tar = d.path("oci.tar");
    write_tar(&oci_tar, &oci_layout(&[named("v1"), named("v2")]), 0);
    d.image_source(&format!("oci-archive:{}:v1", oci_tar.display()));
    assert_eq!(d.np(&["validate"]).status.code(), Some(0));

    // A truncated archive says so; it is not "index.json: not found".
    let bytes = std::fs::read(&oci_tar).unwrap();
    let cut = d.path("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    d.image_source(&format!("oci-archive:{}:v1", cut.display()));
    let o = d.np(&["validate"]);
    assert_diagnostic(&o, &d.at("  source: "), &["truncated"]);
    assert!(!output(&o).contains("not found"), "{}", output(&o));
    // And so does `build`, at the same position.
    let o = d.np(&["build", "--out", d.path("out").to_str().unwrap()]);
    assert_diagnostic(&o, &d.at("  source: "), &["truncated"]);
}

#[test]
fn an_image_without_a_command_needs_image_cmd() {
    let d = Dep::new();
    let layout = d.path("img");
    let mut image = ImageDef::simple(app_layer(), "amd64");
    image.process = serde_json::json!({"Env": ["PATH=/bin"]});
    write_dir(&layout, &oci_layout(&[image]));
    d.image_source(&format!("oci:{}", layout.display()));
    d.replace("  cmd: [\"/app/hello.sh\"]\n", "");
    let o = d.np(&["validate"]);
    assert_diagnostic(
        &o,
        &d.at_key("image:"),
        &[
            "image.cmd",
            "the image has no Entrypoint or Cmd (set image.cmd)",
        ],
    );
}

#[test]
fn the_role_policy_must_fit_iams_inline_limit() {
    let d = Dep::new();
    let many: String = (0..120)
        .map(|i| {
            format!("  /hello-enclave/a-rather-long-parameter-name-for-secret-{i:03}: SECRET_{i}\n")
        })
        .collect();
    d.replace("secrets:\n", &format!("secrets:\n{many}"));
    let o = d.np(&["validate"]);
    assert_diagnostic(
        &o,
        &d.at_key("secrets:"),
        &["secrets", "IAM accepts at most 10240"],
    );
}

#[test]
fn oversized_config_files_are_refused_unread() {
    let d = Dep::new();
    let mut text = d.text();
    text.push_str(&format!("# {}\n", "x".repeat(1 << 20)));
    std::fs::write(&d.config, text).unwrap();
    let o = d.np(&["validate"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output(&o).contains("larger than 1024 KiB: refused unread"),
        "{}",
        output(&o)
    );
}

#[test]
fn semantic_and_file_problems_are_reported_together() {
    let d = Dep::new();
    d.replace("  cpu_count: 2 ", "  cpu_count: 3 ");
    let line = d
        .text()
        .lines()
        .find(|l| l.starts_with("  binary: "))
        .unwrap()
        .to_string();
    d.replace(&line, "  binary: /nonexistent/enclave-supervisor");
    let o = d.np(&["validate"]);
    assert_diagnostic(&o, &d.at("  cpu_count: "), &["must be even on x86_64"]);
    assert_diagnostic(&o, &d.at("  binary: "), &["enclave-supervisor not found"]);
    // The docker-archive file is named and the archive kind checked.
    let a = d.path("not-an-archive.tar");
    std::fs::write(&a, b"plain text").unwrap();
    d.image_source(&format!("docker-archive:{}", a.display()));
    let o = d.np(&["validate"]);
    assert_diagnostic(&o, &d.at("  source: "), &["image.source", "truncated"]);
}
