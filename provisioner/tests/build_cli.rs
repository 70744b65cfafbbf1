//! `build` through the real binary: what goes into the EIF (symlinks of the image kept, the
//! image's User/WorkingDir recorded for the runtime), what the manifest and metadata say, and
//! that a failed build leaves the output directory as it was.

mod common;

use std::collections::BTreeMap;

use common::deployment::{output, Dep};
use harness::images::{eif_ramdisks, layer_tar, oci_layout, parse_newc, write_dir, ImageDef, E};

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

/// Builds `d` into DIR/out; returns the customer ramdisk's `rootfs/` entries by path.
fn build(d: &Dep) -> BTreeMap<String, (u32, Vec<u8>)> {
    let out = d.path("out");
    let o = d.np(&["build", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    let eif = std::fs::read(out.join("hello-enclave.eif")).unwrap();
    let ramdisks = eif_ramdisks(&eif);
    parse_newc(&ramdisks[1])
        .into_iter()
        .filter_map(|e| {
            let path = e.name.strip_prefix("rootfs/")?.to_string();
            Some((path, (e.mode, e.data)))
        })
        .collect()
}

fn kind(entries: &BTreeMap<String, (u32, Vec<u8>)>, path: &str) -> Option<u32> {
    entries.get(path).map(|(mode, _)| mode & S_IFMT)
}

/// A merged-/usr image as Debian, Fedora and Arch ship them.
fn merged_usr_image(process: serde_json::Value) -> ImageDef {
    let layer = layer_tar(
        &[
            E::Dir("usr", 0o755),
            E::Dir("usr/bin", 0o755),
            E::Dir("usr/etc", 0o755),
            E::File("usr/etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644),
            E::File("usr/bin/app", b"#!/bin/sh\n", 0o755),
            E::Symlink("bin", "usr/bin"),
            E::Symlink("etc", "usr/etc"),
            E::Dir("var", 0o755),
            E::Symlink("tmp", "/var/tmp"),
            E::Symlink("run", "var/run"),
            E::Dir("var/run", 0o755),
        ],
        0,
    );
    ImageDef {
        process,
        ..ImageDef::simple(layer, "amd64")
    }
}

#[test]
fn injection_and_mount_points_resolve_through_the_images_symlinks() {
    let d = Dep::new();
    let layout = d.path("img");
    write_dir(
        &layout,
        &oci_layout(&[merged_usr_image(
            serde_json::json!({"Entrypoint": ["/bin/app"]}),
        )]),
    );
    d.image_source(&format!("oci:{}", layout.display()));
    let entries = build(&d);
    for link in ["etc", "bin", "tmp", "run"] {
        assert_eq!(
            kind(&entries, link),
            Some(S_IFLNK),
            "{link} stays a symlink"
        );
    }
    assert_eq!(entries["etc"].1, b"usr/etc");
    assert_eq!(entries["tmp"].1, b"/var/tmp");
    // /etc/passwd is still there, and the runtime's config went where /etc points.
    assert_eq!(kind(&entries, "usr/etc/passwd"), Some(S_IFREG));
    assert_eq!(
        kind(&entries, "usr/etc/nitro-provision/runtime.json"),
        Some(S_IFREG)
    );
    assert!(!entries.contains_key("etc/passwd") && !entries.contains_key("etc/nitro-provision"));
    // A mount point behind a dangling link becomes the link's target directory.
    assert_eq!(kind(&entries, "var/tmp"), Some(S_IFDIR));
    assert_eq!(kind(&entries, "var/run"), Some(S_IFDIR));
    for dir in ["dev", "proc", "sys"] {
        assert_eq!(kind(&entries, dir), Some(S_IFDIR), "{dir}");
    }
    assert_eq!(
        kind(&entries, "nitro-provision/enclave-runtime"),
        Some(S_IFREG)
    );
}

#[test]
fn the_images_user_and_working_dir_reach_the_runtime_config() {
    let d = Dep::new();
    let layout = d.path("img");
    write_dir(
        &layout,
        &oci_layout(&[merged_usr_image(serde_json::json!({
            "Entrypoint": ["/bin/app"], "User": "1000:1000", "WorkingDir": "/srv/app",
        }))]),
    );
    d.image_source(&format!("oci:{}", layout.display()));
    let entries = build(&d);
    let cfg: serde_json::Value =
        serde_json::from_slice(&entries["usr/etc/nitro-provision/runtime.json"].1).unwrap();
    assert_eq!(cfg["app"]["user"], "1000:1000");
    assert_eq!(cfg["app"]["working_dir"], "/srv/app");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path("out/build-manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["user"], "1000:1000");
    assert_eq!(manifest["working_dir"], "/srv/app");

    // The example's rootfs has no config: no user, no working directory (root, /).
    let plain = Dep::new();
    let entries = build(&plain);
    let cfg: serde_json::Value =
        serde_json::from_slice(&entries["etc/nitro-provision/runtime.json"].1).unwrap();
    assert!(
        cfg["app"]["user"].is_null() && cfg["app"]["working_dir"].is_null(),
        "{cfg}"
    );
}

#[test]
fn the_manifest_lists_every_input_and_the_metadata_names_the_image() {
    let d = Dep::new();
    let layout = d.path("img");
    let image = ImageDef {
        name: Some("registry.example:5000/team/app:1.4"),
        gzip: true,
        ..merged_usr_image(serde_json::json!({"Entrypoint": ["/bin/app"]}))
    };
    write_dir(&layout, &oci_layout(&[image]));
    d.image_source(&format!("oci:{}", layout.display()));
    let openssl = harness::tool("openssl");
    let (key, crt) = (d.path("k.pem"), d.path("c.pem"));
    let o = std::process::Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=eif", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output(&o));
    d.replace(
        "  source_date_epoch: 0",
        &format!(
            "  signing:\n    certificate: {}\n    private_key: {}\n  source_date_epoch: 0",
            crt.display(),
            key.display()
        ),
    );
    build(&d);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path("out/build-manifest.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "kernel",
            "cmdline",
            "init",
            "nsm.ko",
            "/nitro-provision/enclave-runtime",
            "/etc/nitro-provision/runtime.json",
            "signing-certificate"
        ]
    );
    let pins = d.text();
    for input in manifest["inputs"].as_array().unwrap() {
        let sha = input["sha384"].as_str().unwrap();
        assert_eq!(sha.len(), 96, "{input}");
        if input["name"] == "cmdline" {
            assert!(
                pins.contains(&format!("cmdline: {sha}")),
                "the pinned file digest"
            );
        }
    }
    let img = &manifest["image"];
    assert_eq!(img["name"], "registry.example:5000/team/app:1.4");
    assert_eq!(img["platform"], "linux/amd64");
    for key in ["manifest", "config"] {
        assert!(img[key].as_str().unwrap().starts_with("sha256:"), "{img}");
    }
    let layer = &img["layers"][0];
    assert_eq!(
        layer["media_type"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_ne!(
        layer["digest"], layer["diff_id"],
        "gzip blob vs its tar: {layer}"
    );
    // No path of this machine but image.source as enclave.yaml writes it: another key
    // holder's manifest for the same enclave.yaml is byte-identical.
    let text = std::fs::read_to_string(d.path("out/build-manifest.json")).unwrap();
    let source = format!("oci:{}", layout.display());
    assert_eq!(img["source"], source.as_str());
    assert!(
        !text.replace(&source, "").contains(d.dir.to_str().unwrap()),
        "{text}"
    );

    // The EIF's metadata as nitro-cli's describe-eif shows it: the image's name and ID.
    let o = d.np(&[
        "eif",
        "describe",
        "--json",
        d.path("out/hello-enclave.eif").to_str().unwrap(),
    ]);
    let desc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(desc["ImageName"], "registry.example:5000/team/app");
    let id = img["config"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert_eq!(desc["ImageVersion"], id);
    let meta = &desc["Metadata"];
    for key in [
        "BuildTime",
        "BuildTool",
        "BuildToolVersion",
        "OperatingSystem",
        "KernelVersion",
    ] {
        assert!(meta[key].is_string(), "{key} in {meta}");
    }
    assert_eq!(meta["DockerInfo"]["Architecture"], "amd64");
    assert_eq!(
        meta["DockerInfo"]["RepoTags"][0],
        "registry.example:5000/team/app:1.4"
    );
}

#[test]
fn a_failed_build_leaves_the_output_directory_as_it_was() {
    let d = Dep::new();
    let layout = d.path("img");
    write_dir(
        &layout,
        &oci_layout(&[merged_usr_image(
            serde_json::json!({"Entrypoint": ["/bin/app"]}),
        )]),
    );
    d.image_source(&format!("oci:{}", layout.display()));
    build(&d);
    let out = d.path("out");
    let snapshot = || -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(&out)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap_or_default(),
                )
            })
            .collect()
    };
    let before = snapshot();
    assert_eq!(
        before.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "build-manifest.json",
            "build-record.json",
            "hello-enclave.eif",
            "measurements.json",
            "runtime.json"
        ]
    );
    // A different image whose layer blob is corrupt: the build starts, then fails.
    d.replace(
        "  cmd: [\"/app/hello.sh\"]",
        "  cmd: [\"/bin/app\", \"--v2\"]",
    );
    let blobs = layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&biggest).unwrap();
    bytes[700] ^= 0xff;
    std::fs::write(&biggest, bytes).unwrap();
    let o = d.np(&["build", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", output(&o));
    assert!(output(&o).contains("image.source: oci:"), "{}", output(&o));
    assert_eq!(
        snapshot(),
        before,
        "the output directory is unchanged, with no leftovers"
    );
    // Into a directory that does not exist yet: it is not created.
    let fresh = d.path("fresh/out");
    let o = d.np(&["build", "--out", fresh.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!fresh.exists());
    assert_eq!(
        std::fs::read_dir(d.path("fresh")).unwrap().count(),
        0,
        "no staging directory left behind"
    );
}
