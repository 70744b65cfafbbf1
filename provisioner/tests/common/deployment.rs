//! A deployment directory for tests that drive the real binary: the bundled example with
//! absolute paths and the stand-in companion binaries, edited per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Dep {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Dep {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let config = harness::example_deployment(&dir);
        Dep {
            _tmp: tmp,
            dir,
            config,
        }
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap()
    }

    /// Replaces `from` (which must occur) by `to` in enclave.yaml.
    pub fn replace(&self, from: &str, to: &str) -> &Self {
        let text = self.text();
        assert!(
            text.contains(from),
            "enclave.yaml does not contain {from:?}"
        );
        std::fs::write(&self.config, text.replacen(from, to, 1)).unwrap();
        self
    }

    /// Sets `image.source` (the example's is a rootfs directory).
    pub fn image_source(&self, source: &str) -> &Self {
        let line = self
            .text()
            .lines()
            .find(|l| l.starts_with("  source: "))
            .unwrap()
            .to_string();
        self.replace(&line, &format!("  source: {source}"))
    }

    /// Runs `nitro-provision -f enclave.yaml ARGS`.
    pub fn np(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
            .arg("-f")
            .arg(&self.config)
            .args(args)
            .env_remove("NO_COLOR")
            .output()
            .expect("run nitro-provision")
    }

    /// `enclave.yaml:LINE:COLUMN` of the text after `needle` on the first line containing it
    /// (a scalar's value: what diagnostics point at).
    pub fn at(&self, needle: &str) -> String {
        self.position(needle, needle.len())
    }

    /// `enclave.yaml:LINE:COLUMN` of `needle` itself (a key of a mapping).
    pub fn at_key(&self, needle: &str) -> String {
        self.position(needle.trim_start(), 0)
    }

    fn position(&self, needle: &str, skip: usize) -> String {
        let text = self.text();
        let (n, line) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(needle))
            .unwrap_or_else(|| panic!("no line contains {needle:?}"));
        let col = line.find(needle).unwrap() + skip + 1;
        format!("{}:{}:{col}", self.config.display(), n + 1)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// stdout and stderr of a run, for assertions and failure messages.
pub fn output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts a run failed with exit 1 and printed a diagnostic line starting `at` and
/// containing every one of `parts`.
pub fn assert_diagnostic(o: &Output, at: &str, parts: &[&str]) {
    let all = output(o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    let found = all
        .lines()
        .any(|l| l.contains(at) && parts.iter().all(|p| l.contains(p)));
    assert!(found, "no line at {at} containing {parts:?} in:\n{all}");
}

/// A minimal ELF64 header for `e_machine` (62 x86-64, 183 aarch64), written to `path`.
pub fn elf_fixture(path: &Path, machine: u16) {
    std::fs::write(path, nitro_eif::elf::minimal_elf64_header(machine)).unwrap();
}
