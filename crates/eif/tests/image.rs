//! Layer flattening: each OCI case with its expected tree, the three archive formats, and
//! hostile inputs.

mod common;

use std::path::Path;

use common::*;
use nitro_eif::image::{
    open_image, write_customer_ramdisk, Command, ImageError, ImageSource, Platform, Want,
};

const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Builds an OCI layout from layer entry lists (compressed in turn with gzip, zstd, none),
/// flattens it and returns the parsed customer ramdisk.
fn flatten(layers: &[&[E]]) -> Result<Vec<CpioEntry>, ImageError> {
    let stored: Vec<(Vec<u8>, Vec<u8>, &str)> = layers
        .iter()
        .enumerate()
        .map(|(i, entries)| {
            let raw = layer_tar(entries, 1_600_000_000 + i as u64);
            match i % 3 {
                0 => (gzip(&raw), raw, GZ),
                1 => (zstd(&raw), raw, ZST),
                _ => (raw.clone(), raw, TAR),
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = oci_layout_files(&stored, "amd64");
    write_dir(dir.path(), &files);
    let mut image = open_image(
        &ImageSource::OciLayout(dir.path().into()),
        &Want {
            platform: &Platform::linux("amd64"),
            reference: None,
            digest: None,
        },
        dir.path(),
        1 << 30,
    )?;
    let mut out = Vec::new();
    write_customer_ramdisk(&mut image, &Command::default(), 7, &mut out)?;
    assert_eq!(out.len() % 512, 0);
    Ok(parse_newc(&out))
}

fn listing(layers: &[&[E]]) -> Vec<String> {
    rootfs_listing(&flatten(layers).unwrap())
}

/// The mount points init needs, as the flattener adds them (implicit dirs are 0755).
fn with_mount_points(mut v: Vec<&str>) -> Vec<String> {
    for d in [
        "dev 40755",
        "proc 40755",
        "run 40755",
        "sys 40755",
        "tmp 40755",
        "var 40755",
    ] {
        if !v.iter().any(|x| x.split(' ').next() == d.split(' ').next()) {
            v.push(d);
        }
    }
    let mut v: Vec<String> = v.into_iter().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn whiteouts_remove_files_and_subtrees() {
    let got = listing(&[
        &[
            E::Dir("etc", 0o755),
            E::File("etc/a", b"A", 0o644),
            E::File("etc/b", b"B", 0o600),
            E::Dir("usr", 0o755),
            E::Dir("usr/lib", 0o755),
            E::File("usr/lib/x", b"X", 0o644),
        ],
        &[
            E::File("etc/.wh.a", b"", 0o644),
            E::File("usr/.wh.lib", b"", 0o644),
        ],
    ]);
    assert_eq!(
        got,
        with_mount_points(vec!["etc 40755", "etc/b 100600 B", "usr 40755"])
    );
}

#[test]
fn opaque_dir_hides_lower_children_but_not_its_own_layer() {
    let got = listing(&[
        &[
            E::Dir("d", 0o755),
            E::File("d/x", b"X", 0o644),
            E::Dir("d/sub", 0o755),
            E::File("d/sub/y", b"Y", 0o644),
            E::File("keep", b"K", 0o644),
        ],
        // d/w comes before the marker in the tar, d/z after: both are of this layer and stay.
        &[
            E::Dir("d", 0o700),
            E::File("d/w", b"W", 0o644),
            E::File("d/.wh..wh..opq", b"", 0o644),
            E::File("d/z", b"Z", 0o644),
        ],
    ]);
    assert_eq!(
        got,
        with_mount_points(vec![
            "d 40700",
            "d/w 100644 W",
            "d/z 100644 Z",
            "keep 100644 K"
        ])
    );
}

#[test]
fn hardlinks_survive_whiteout_of_their_target_and_cross_layers() {
    let got = listing(&[
        &[
            E::Dir("bin", 0o755),
            E::File("bin/busybox", b"BB", 0o755),
            E::Hardlink("bin/sh", "bin/busybox"),
        ],
        &[
            E::File("bin/.wh.busybox", b"", 0o644),
            E::Hardlink("bin/ash", "bin/sh"),
        ],
    ]);
    assert_eq!(
        got,
        with_mount_points(vec!["bin 40755", "bin/ash 100755 BB", "bin/sh 100755 BB"])
    );
}

#[test]
fn file_replaces_dir_and_dir_replaces_file() {
    let got = listing(&[
        &[
            E::Dir("a", 0o755),
            E::File("a/child", b"C", 0o644),
            E::File("b", b"old", 0o644),
            E::Symlink("c", "a"),
        ],
        &[
            E::File("a", b"now a file", 0o644),
            E::Dir("b", 0o750),
            E::File("b/c", b"new", 0o644),
            E::Dir("c", 0o755),
        ],
    ]);
    assert_eq!(
        got,
        with_mount_points(vec![
            "a 100644 now a file",
            "b 40750",
            "b/c 100644 new",
            "c 40755"
        ])
    );
}

#[test]
fn duplicate_entries_last_wins_and_devices_symlinks_kept() {
    let entries = flatten(&[&[
        E::File("f", b"first", 0o644),
        E::File("f", b"second", 0o640),
        E::Symlink("escape", "../../../etc/shadow"),
        E::Char("dev/null", 1, 3),
    ]])
    .unwrap();
    let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap().clone();
    assert_eq!(get("rootfs/f").data, b"second");
    assert_eq!(get("rootfs/f").mode, 0o100640);
    // Symlink targets are kept verbatim: they are resolved inside the enclave's root only.
    assert_eq!(get("rootfs/escape").data, b"../../../etc/shadow");
    assert_eq!(get("rootfs/dev/null").mode, 0o020600);
    assert_eq!(get("rootfs/dev/null").rdev, (1, 3));
}

#[test]
fn ramdisk_layout_and_determinism_policy() {
    let entries = flatten(&[&[E::Dir("app", 0o755), E::File("app/x", b"1", 0o4755)]]).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(&names[..4], ["cmd", "env", "rootfs", "rootfs/app"]);
    assert_eq!(entries[0].data, b"/bin/app\n--serve\n");
    assert_eq!(entries[1].data, b"PATH=/usr/bin:/bin\nMODE=test\n");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.ino, i as u32 + 1, "sequential inodes");
        assert_eq!(e.mtime, 7, "fixed mtime");
    }
    let x = entries.iter().find(|e| e.name == "rootfs/app/x").unwrap();
    assert_eq!(
        (x.uid, x.gid, x.mode),
        (1000, 1000, 0o104755),
        "owner kept, suid kept"
    );
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "byte order, parents first");
}

fn build_from(
    source: ImageSource,
    spool: &Path,
    pinned: Option<&str>,
) -> Result<Vec<CpioEntry>, ImageError> {
    let mut image = open_image(
        &source,
        &Want {
            platform: &Platform::linux("amd64"),
            reference: None,
            digest: pinned,
        },
        spool,
        1 << 30,
    )?;
    let mut out = Vec::new();
    write_customer_ramdisk(&mut image, &Command::default(), 0, &mut out)?;
    Ok(parse_newc(&out))
}

#[test]
fn docker_oci_layout_and_oci_archive_agree() {
    let l0 = layer_tar(
        &[E::Dir("etc", 0o755), E::File("etc/os", b"test", 0o644)],
        1,
    );
    let l1 = layer_tar(
        &[
            E::File("etc/.wh.os", b"", 0o644),
            E::File("etc/new", b"n", 0o644),
        ],
        2,
    );
    let dir = tempfile::tempdir().unwrap();

    let (docker, image_id) = docker_archive_files(&[l0.clone(), l1.clone()]);
    let docker_tar = dir.path().join("docker.tar");
    write_tar(&docker_tar, &docker, 5);
    let from_docker = build_from(
        ImageSource::DockerArchive(docker_tar.clone()),
        dir.path(),
        Some(&image_id),
    )
    .unwrap();

    let (oci, manifest) = oci_layout_files(
        &[(gzip(&l0), l0.clone(), GZ), (l1.clone(), l1, TAR)],
        "amd64",
    );
    let layout = dir.path().join("layout");
    write_dir(&layout, &oci);
    let from_layout = build_from(
        ImageSource::OciLayout(layout.clone()),
        dir.path(),
        Some(&manifest),
    )
    .unwrap();
    let oci_tar = dir.path().join("oci.tar");
    write_tar(&oci_tar, &oci, 9);
    let from_archive =
        build_from(ImageSource::OciArchive(oci_tar.clone()), dir.path(), None).unwrap();

    assert_eq!(from_docker, from_layout);
    assert_eq!(from_layout, from_archive);
    for (path, expected) in [
        (&docker_tar, ImageSource::DockerArchive(docker_tar.clone())),
        (&oci_tar, ImageSource::OciArchive(oci_tar.clone())),
        (&layout, ImageSource::OciLayout(layout.clone())),
        (
            &dir.path().to_path_buf(),
            ImageSource::RootfsDir(dir.path().into()),
        ),
    ] {
        assert_eq!(ImageSource::detect(path).unwrap(), expected);
    }
    assert!(rootfs_listing(&from_docker).contains(&"etc/new 100644 n".to_string()));

    // A docker layer that does not match the config's diff_id.
    let mut tampered = docker.clone();
    let l0_name = "layer0/layer.tar".to_string();
    let mut bad_layer = tampered[&l0_name].clone();
    bad_layer[1024] ^= 1; // the data of etc/os
    tampered.insert(l0_name, bad_layer);
    let tampered_tar = dir.path().join("tampered.tar");
    write_tar(&tampered_tar, &tampered, 5);
    assert!(matches!(
        build_from(ImageSource::DockerArchive(tampered_tar), dir.path(), None),
        Err(ImageError::DigestMismatch { .. })
    ));

    let wrong = format!("sha256:{}", "1".repeat(64));
    assert!(matches!(
        build_from(
            ImageSource::DockerArchive(docker_tar),
            dir.path(),
            Some(&wrong)
        ),
        Err(ImageError::PinnedDigestNotFound(_))
    ));
}

#[test]
fn platform_selection_and_digest_checks() {
    let raw = layer_tar(&[E::File("f", b"x", 0o644)], 1);
    let dir = tempfile::tempdir().unwrap();
    let (mut files, _) = oci_layout_files(&[(raw.clone(), raw.clone(), TAR)], "arm64");
    write_dir(dir.path(), &files);
    let open = |p: &str| {
        open_image(
            &ImageSource::OciLayout(dir.path().into()),
            &Want {
                platform: &Platform::linux(p),
                reference: None,
                digest: None,
            },
            dir.path(),
            1 << 30,
        )
    };
    assert!(open("arm64").is_ok());
    // The amd64 entry of the index points at a manifest that is not in the layout.
    assert!(matches!(open("amd64"), Err(ImageError::Missing(_))));
    assert!(matches!(
        open("riscv64"),
        Err(ImageError::NoMatchingPlatform { .. })
    ));

    // A tampered layer blob fails its descriptor digest.
    let layer_name = format!("blobs/sha256/{}", &sha256(&raw)[7..]);
    let mut tampered = raw.clone();
    tampered[600] ^= 1;
    files.insert(layer_name, tampered);
    write_dir(dir.path(), &files);
    assert!(matches!(
        open("arm64"),
        Err(ImageError::DigestMismatch { .. })
    ));
}

/// A layer tar with one raw header name (bypassing the tar crate's own path checks).
fn raw_name_layer(name: &[u8], data: &[u8], size_field: Option<u64>) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    // uid and gid left as NUL bytes: read as 0, as Go's archive/tar does.
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size_field.unwrap_or(data.len() as u64));
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    if size_field.is_none() {
        out.extend_from_slice(&[0u8; 1024]);
    }
    out
}

fn open_single_layer(raw: Vec<u8>, budget: u64) -> Result<Vec<CpioEntry>, ImageError> {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = oci_layout_files(&[(raw.clone(), raw, TAR)], "amd64");
    write_dir(dir.path(), &files);
    let mut image = open_image(
        &ImageSource::OciLayout(dir.path().into()),
        &Want {
            platform: &Platform::linux("amd64"),
            reference: None,
            digest: None,
        },
        dir.path(),
        budget,
    )?;
    let mut out = Vec::new();
    write_customer_ramdisk(&mut image, &Command::default(), 0, &mut out)?;
    Ok(parse_newc(&out))
}

#[test]
fn hostile_layers_are_rejected_or_contained() {
    assert!(matches!(
        open_single_layer(raw_name_layer(b"../evil", b"x", None), 1 << 30),
        Err(ImageError::BadEntry { .. })
    ));
    assert!(matches!(
        open_single_layer(raw_name_layer(b"a/../../evil", b"x", None), 1 << 30),
        Err(ImageError::BadEntry { .. })
    ));
    // Absolute paths are made relative to the image root.
    let abs = open_single_layer(raw_name_layer(b"/etc/abs", b"x", None), 1 << 30).unwrap();
    let abs = abs.iter().find(|e| e.name == "rootfs/etc/abs").unwrap();
    assert_eq!((abs.uid, abs.gid), (0, 0));
    // A size field far beyond the archive: truncated.
    assert!(matches!(
        open_single_layer(raw_name_layer(b"big", b"x", Some(1 << 40)), 1 << 50),
        Err(ImageError::CorruptLayer { .. })
    ));
    // Truncated in the middle of the data.
    let mut cut = layer_tar(&[E::File("f", &[7u8; 4000], 0o644)], 0);
    cut.truncate(2048);
    assert!(matches!(
        open_single_layer(cut, 1 << 30),
        Err(ImageError::CorruptLayer { .. })
    ));
    // Unpacked-size budget.
    let big = layer_tar(&[E::File("f", &[0u8; 100_000], 0o644)], 0);
    assert!(matches!(
        open_single_layer(big, 10_000),
        Err(ImageError::TooLarge(_))
    ));
    // Hardlink to a missing target.
    let dangling = layer_tar(&[E::Hardlink("l", "nowhere")], 0);
    assert!(matches!(
        open_single_layer(dangling, 1 << 30),
        Err(ImageError::BadEntry { .. })
    ));
}

#[test]
fn rootfs_dir_source_normalizes_owners() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/app"), b"APP").unwrap();
    std::os::unix::fs::symlink("bin/app", root.join("link")).unwrap();
    // A rootfs directory has no digest to pin.
    let pinned = format!("sha256:{}", "2".repeat(64));
    assert!(matches!(
        open_image(
            &ImageSource::RootfsDir(root.clone()),
            &Want {
                platform: &Platform::linux("amd64"),
                reference: None,
                digest: Some(&pinned)
            },
            dir.path(),
            1 << 30,
        ),
        Err(ImageError::PinnedDigestNotFound(_))
    ));
    let mut image = open_image(
        &ImageSource::RootfsDir(root),
        &Want {
            platform: &Platform::linux("amd64"),
            reference: None,
            digest: None,
        },
        dir.path(),
        1 << 30,
    )
    .unwrap();
    let mut out = Vec::new();
    let cmd = Command {
        cmd: Some(vec!["/bin/app".into()]),
        ..Default::default()
    };
    write_customer_ramdisk(&mut image, &cmd, 0, &mut out).unwrap();
    let entries = parse_newc(&out);
    let app = entries.iter().find(|e| e.name == "rootfs/bin/app").unwrap();
    assert_eq!((app.uid, app.gid, app.data.as_slice()), (0, 0, &b"APP"[..]));
    assert_eq!(
        entries
            .iter()
            .find(|e| e.name == "rootfs/link")
            .unwrap()
            .data,
        b"bin/app"
    );
}

#[test]
fn oci_config_diff_ids_are_checked_for_plain_and_compressed_layers() {
    let raw = layer_tar(&[E::File("f", b"x", 0o644)], 1);
    let other = layer_tar(&[E::File("f", b"y", 0o644)], 1);
    for (stored, media) in [(raw.clone(), TAR), (gzip(&raw), GZ), (zstd(&raw), ZST)] {
        let open = |listed: &[u8]| {
            let dir = tempfile::tempdir().unwrap();
            // The config lists `listed`'s digest as the layer's diff_id.
            let (files, _) = oci_layout_files(&[(stored.clone(), listed.to_vec(), media)], "amd64");
            write_dir(dir.path(), &files);
            open_image(
                &ImageSource::OciLayout(dir.path().into()),
                &Want {
                    platform: &Platform::linux("amd64"),
                    reference: None,
                    digest: None,
                },
                dir.path(),
                1 << 30,
            )
            .map(drop)
        };
        assert!(open(&raw).is_ok(), "{media}: the right diff_id is accepted");
        match open(&other) {
            Err(ImageError::DigestMismatch {
                what,
                expected,
                actual,
            }) => {
                assert_eq!(what, "layer 0 uncompressed (config diff_id)", "{media}");
                assert_eq!(expected, sha256(&other), "{media}");
                assert_eq!(actual, sha256(&raw), "{media}");
            }
            other => panic!("{media}: expected a diff_id mismatch, got {other:?}"),
        }
    }
}

#[test]
fn layers_indexed_in_parallel_report_the_first_failing_layer() {
    let dir = tempfile::tempdir().unwrap();
    let good = layer_tar(&[E::File("f", &[1u8; 300_000], 0o644)], 1);
    let mut cut = gzip(&layer_tar(&[E::File("g", &[2u8; 300_000], 0o644)], 1));
    cut.truncate(cut.len() / 2);
    let mut paths = Vec::new();
    // Layers 1, 3 and 5 are truncated; the error must always name layer 1.
    for i in 0..6 {
        let p = dir.path().join(format!("l{i}.tar"));
        std::fs::write(&p, if i % 2 == 1 { &cut } else { &good }).unwrap();
        paths.push(p);
    }
    for _ in 0..20 {
        match open_image(
            &ImageSource::LayerTars(paths.clone()),
            &Want {
                platform: &Platform::linux("amd64"),
                reference: None,
                digest: None,
            },
            dir.path(),
            1 << 30,
        ) {
            Err(ImageError::CorruptLayer { layer, .. }) => assert_eq!(layer, 1),
            other => panic!("expected layer 1 to be reported, got {other:?}"),
        }
    }
}

#[test]
fn unpacked_size_budget_covers_all_layers_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..4 {
        let p = dir.path().join(format!("l{i}.tar"));
        let name = ["f0", "f1", "f2", "f3"][i];
        let layer = layer_tar(&[E::File(name, &[7u8; 60_000], 0o644)], 1);
        std::fs::write(&p, gzip(&layer)).unwrap();
        paths.push(p);
    }
    let open = |max: u64| {
        open_image(
            &ImageSource::LayerTars(paths.clone()),
            &Want {
                platform: &Platform::linux("amd64"),
                reference: None,
                digest: None,
            },
            dir.path(),
            max,
        )
        .map(drop)
    };
    // Each layer unpacks to about 62 KB: every one fits in 100 KB, all four do not.
    assert!(matches!(open(100_000), Err(ImageError::TooLarge(100_000))));
    assert!(open(400_000).is_ok());
}
