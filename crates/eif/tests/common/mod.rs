//! Test helpers: the shared image fixtures, and a build spec over them.
#![allow(dead_code)]

use std::path::Path;

pub use harness::images::*;

/// A complete build spec over stand-in blobs in `dir` (`init`, `nsm.ko`) and an OCI image with
/// an injected runtime binary.
pub fn build_spec(dir: &Path, kernel: &Path) -> nitro_eif::BuildSpec {
    let raw = layer_tar(
        &[
            E::Dir("bin", 0o755),
            E::File("bin/app", b"#!/bin/sh\necho hi\n", 0o755),
        ],
        1_700_000_000,
    );
    let raw2 = layer_tar(
        &[
            E::File("bin/.wh.app", b"", 0o644),
            E::File("bin/app2", b"v2", 0o755),
        ],
        1_700_000_100,
    );
    let (files, digest) = oci_layout_files(
        &[
            (
                gzip(&raw),
                raw,
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
            (
                zstd(&raw2),
                raw2,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        ],
        "amd64",
    );
    write_dir(&dir.join("spec-oci"), &files);
    std::fs::write(dir.join("enclave-runtime"), b"RUNTIME BINARY").unwrap();
    nitro_eif::BuildSpec {
        name: "test-enclave".into(),
        version: Some("1.0.0".into()),
        arch: nitro_eif::format::Arch::X86_64,
        kernel: kernel.to_path_buf(),
        cmdline: "console=ttyS0 reboot=k\n".into(),
        init: dir.join("init"),
        nsm_ko: dir.join("nsm.ko"),
        image: nitro_eif::ImageSpec {
            source: nitro_eif::image::ImageSource::OciLayout(dir.join("spec-oci")),
            reference: None,
            platform: None,
            digest: Some(digest),
            extra_files: vec![nitro_eif::image::ExtraFile {
                dest: "/.nitro-provision/enclave-runtime".into(),
                source: dir.join("enclave-runtime"),
                mode: 0o755,
            }],
            command: nitro_eif::image::Command {
                prefix: vec!["/.nitro-provision/enclave-runtime".into()],
                ..Default::default()
            },
            source_date_epoch: 0,
            max_unpacked: nitro_eif::DEFAULT_MAX_UNPACKED,
        },
        signing: None,
        pinned_sha384: Default::default(),
    }
}
