//! An image written by a third-party tool (umoci, from Debian) flattens to exactly the tree
//! umoci itself unpacks: whiteouts and opaque directories applied by an independent
//! implementation.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command as Cmd;

use nitro_eif::image::{open_image, write_customer_ramdisk, Command, ImageSource, Platform, Want};

fn umoci(dir: &Path, args: &[&str]) {
    let status = Cmd::new("umoci")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| {
            panic!("umoci is required ({e}): run scripts/test.sh, which installs it")
        });
    assert!(status.success(), "umoci {args:?} failed");
}

/// path → description, from umoci's unpacked rootfs.
fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(root.join(rel)).unwrap() {
        let e = e.unwrap();
        let rel_path = rel.join(e.file_name());
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        let key = rel_path.to_string_lossy().into_owned();
        let value = if meta.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if meta.is_dir() {
            walk(root, &rel_path, out);
            "dir".into()
        } else {
            format!(
                "file {:o} {}",
                meta.permissions().mode() & 0o7777,
                String::from_utf8_lossy(&std::fs::read(e.path()).unwrap())
            )
        };
        out.insert(key, value);
    }
}

#[test]
fn umoci_image_flattens_like_umoci_unpack() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = |p: &str, data: &str| {
        std::fs::create_dir_all(d.join(p).parent().unwrap()).unwrap();
        std::fs::write(d.join(p), data).unwrap();
    };
    w("s1/bin/app", "#!/bin/sh\n");
    std::fs::set_permissions(d.join("s1/bin/app"), std::fs::Permissions::from_mode(0o755)).unwrap();
    w("s1/etc/conf", "conf");
    w("s1/etc/gone", "gone");
    w("s1/data/sub/x", "x");
    std::os::unix::fs::symlink("app", d.join("s1/bin/link")).unwrap();
    w("s2/data/y", "y");
    umoci(d, &["init", "--layout", "L"]);
    umoci(d, &["new", "--image", "L:t"]);
    umoci(d, &["insert", "--image", "L:t", "s1", "/"]);
    umoci(
        d,
        &["insert", "--image", "L:t", "--opaque", "s2/data", "/data"],
    );
    umoci(d, &["insert", "--image", "L:t", "--whiteout", "/etc/gone"]);
    umoci(
        d,
        &[
            "config",
            "--image",
            "L:t",
            "--config.entrypoint",
            "/bin/app",
            "--config.cmd",
            "serve",
            "--config.env",
            "A=1",
        ],
    );
    umoci(d, &["unpack", "--rootless", "--image", "L:t", "bundle"]);
    let mut expected = BTreeMap::new();
    walk(&d.join("bundle/rootfs"), Path::new(""), &mut expected);
    assert!(
        expected.contains_key("data/y")
            && !expected.contains_key("data/sub")
            && !expected.contains_key("etc/gone")
    );

    // The same layout as a directory and as an oci-archive tar.
    assert!(Cmd::new("tar")
        .arg("-C")
        .arg(d.join("L"))
        .arg("-cf")
        .arg(d.join("l.tar"))
        .arg(".")
        .status()
        .unwrap()
        .success());
    for source in [
        ImageSource::OciLayout(d.join("L")),
        ImageSource::OciArchive(d.join("l.tar")),
    ] {
        let mut image = open_image(
            &source,
            &Want {
                platform: &Platform::linux("amd64"),
                reference: None,
                digest: None,
            },
            d,
            1 << 30,
        )
        .unwrap();
        let mut out = Vec::new();
        let summary = write_customer_ramdisk(&mut image, &Command::default(), 0, &mut out).unwrap();
        assert_eq!(summary.argv, ["/bin/app", "serve"]);
        assert!(summary.env.contains(&"A=1".to_string()));
        let mut got = BTreeMap::new();
        for e in common::parse_newc(&out) {
            let Some(rel) = e.name.strip_prefix("rootfs/") else {
                continue;
            };
            // The mount points init needs are ours, not umoci's.
            if ["dev", "run", "sys", "var", "proc", "tmp"].contains(&rel) {
                continue;
            }
            let value = match e.mode & 0o170000 {
                0o120000 => format!("link {}", String::from_utf8_lossy(&e.data)),
                0o040000 => "dir".into(),
                _ => format!(
                    "file {:o} {}",
                    e.mode & 0o7777,
                    String::from_utf8_lossy(&e.data)
                ),
            };
            got.insert(rel.to_string(), value);
        }
        assert_eq!(got, expected, "{source:?}");
    }
}
