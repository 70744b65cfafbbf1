//! Two builds of the same pinned inputs on differently set-up "machines" give identical bytes.
//! One test per binary: it changes process-wide state (cwd, umask, TZ, locale).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn touch_tree(dir: &Path, mtime: SystemTime) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            touch_tree(&e.path(), mtime);
        } else {
            std::fs::File::options()
                .write(true)
                .open(e.path())
                .unwrap()
                .set_modified(mtime)
                .unwrap();
        }
    }
}

fn copy_tree(from: &Path, to: &Path, mtime: SystemTime) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest, mtime);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&dest)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
        }
    }
}

fn build(
    base: &Path,
    umask: libc::mode_t,
    tz: &str,
    locale: &str,
    mtime: SystemTime,
    src: &Path,
    signed: bool,
) -> Vec<u8> {
    copy_tree(src, base, mtime);
    std::env::set_current_dir(base).unwrap();
    // SAFETY: single-threaded test binary; umask and env are process-wide but nothing else runs.
    unsafe {
        libc::umask(umask);
    }
    std::env::set_var("TZ", tz);
    std::env::set_var("LC_ALL", locale);
    std::env::set_var("LANG", locale);
    // Relative paths: the build must not depend on where it runs.
    let mut spec = common::build_spec(Path::new("."), Path::new("bzImage"));
    // build_spec regenerated the OCI layout in place; give it the odd mtimes too.
    touch_tree(&base.join("spec-oci"), mtime);
    if signed {
        spec.signing = Some(nitro_eif::SigningSpec {
            private_key: PathBuf::from("key.pem"),
            certificate: PathBuf::from("cert.pem"),
        });
    }
    let out = Path::new("out/enclave.eif");
    std::fs::create_dir_all("out").unwrap();
    nitro_eif::build_eif(&spec, out, &nitro_eif::NoProgress).unwrap();
    std::fs::read(out).unwrap()
}

#[test]
fn builds_are_bit_identical_across_dirs_umask_tz_locale_and_mtimes() {
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    std::fs::write(s.join("bzImage"), vec![0x42; 100_000]).unwrap();
    std::fs::write(s.join("init"), vec![0x17; 30_000]).unwrap();
    std::fs::write(s.join("nsm.ko"), vec![0x99; 9_000]).unwrap();
    let openssl = |args: &[&str]| {
        assert!(std::process::Command::new("openssl")
            .args(args)
            .current_dir(s)
            .status()
            .unwrap()
            .success())
    };
    openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "secp384r1",
        "-out",
        "key.pem",
    ]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "key.pem",
        "-subj",
        "/CN=repro",
        "-days",
        "30",
        "-out",
        "cert.pem",
    ]);

    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let t2 = SystemTime::now();
    for signed in [false, true] {
        let one = build(
            &a.path().join(signed.to_string()),
            0o022,
            "UTC",
            "C.UTF-8",
            t1,
            s,
            signed,
        );
        let two = build(
            &b.path().join(signed.to_string()),
            0o077,
            "Pacific/Chatham",
            "de_DE.ISO-8859-1",
            t2,
            s,
            signed,
        );
        assert!(one == two, "signed={signed}: builds differ");
        let d = nitro_eif::reader::read_eif(&one[..]).unwrap();
        assert!(d.crc.ok);
        assert_eq!(d.measurements.pcr8.is_some(), signed);
    }
}
