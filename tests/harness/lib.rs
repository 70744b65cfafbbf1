//! Shared test harness: locates the real external tools the suite drives (installed by
//! `scripts/test.sh` into `$NP_CACHE`), golden files, and the repository's fixtures.
//! A missing tool fails the test with the command that installs it: never a silent skip.

mod awsim;
pub mod images;
mod imds;
mod moto;

pub use awsim::{Awsim, Identities, Keys};
pub use imds::ImdsSim;
pub use moto::Moto;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The persistent tool cache (same rule as scripts/env.sh).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NITRO_PROVISION_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".cache/nitro-provision")
}

/// Writes `dir/enclave.yaml`: the bundled example with absolute input paths and the committed
/// stand-in runtime/supervisor binaries (`tests/fixtures/bin`), so its PCRs and digests do not
/// depend on how the real binaries were built.
pub fn example_deployment(dir: &Path) -> PathBuf {
    let root = repo_root();
    let bin = root.join("tests/fixtures/bin");
    let text = std::fs::read_to_string(root.join("enclave.yaml.example"))
        .expect("enclave.yaml.example")
        .replace(
            "rootfs:examples/hello/rootfs",
            &format!("rootfs:{}", root.join("examples/hello/rootfs").display()),
        )
        .replace(
            "dir: examples/blobs-standin",
            &format!("dir: {}", root.join("examples/blobs-standin").display()),
        )
        .replace(
            "  source_date_epoch: 0",
            &format!(
                "  runtime: {}/enclave-runtime\n  source_date_epoch: 0",
                bin.display()
            ),
        )
        .replace(
            "  port: 8443 ",
            &format!(
                "  binary: {}/enclave-supervisor\n  port: 8443 ",
                bin.display()
            ),
        );
    let path = dir.join("enclave.yaml");
    std::fs::write(&path, text).expect("write enclave.yaml");
    path
}

/// Flips one byte of `path` and restores its mtime: a change no size/mtime fingerprint sees.
pub fn corrupt_keeping_mtime(path: &Path, offset: usize) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

/// Path of an external tool: the project's cache first, then PATH.
pub fn tool(name: &str) -> PathBuf {
    let cache = cache_dir();
    for dir in [cache.join("venv/bin"), cache.join("bin")] {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("`{name}` is not installed: run `scripts/test.sh` (it installs every test tool)");
}

/// Compares `actual` with `tests/golden/NAME`; `UPDATE_GOLDEN=1` rewrites the file instead.
pub fn assert_golden(name: &str, actual: &str) {
    let path = repo_root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(5)
            .map(|(n, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", n + 1))
            .collect();
        panic!(
            "{} differs from the output ({} vs {} lines):\n{}\n(UPDATE_GOLDEN=1 rewrites it after review)",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// Runs `cfn-lint` on a template; returns its findings (empty when clean at `level`).
pub fn cfn_lint(template: &Path, level: &str) -> Result<(), String> {
    let out = Command::new(tool("cfn-lint"))
        .arg("--non-zero-exit-code")
        .arg(level)
        .arg("--format")
        .arg("parseable")
        .arg(template)
        .output()
        .expect("run cfn-lint");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
