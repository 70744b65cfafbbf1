//! The companion binaries built by scripts/build-companions.sh are static for both
//! architectures (no PT_INTERP, no DT_NEEDED) and the x86_64 ones run here — even in an empty
//! root with no libc at all. `NP_COMPANIONS` (set by scripts/test.sh) names a finished build;
//! without it the script is run here (incremental: its target dir is cached in $NP_CACHE).

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGETS: [(&str, u16); 2] = [
    ("x86_64-unknown-linux-musl", 0x3e),
    ("aarch64-unknown-linux-musl", 0xb7),
];
const BINS: [&str; 2] = ["enclave-supervisor", "enclave-runtime"];

/// Built once per test binary (both tests share it).
fn companions() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(build).clone()
}

fn build() -> PathBuf {
    if let Some(dir) = std::env::var_os("NP_COMPANIONS") {
        return PathBuf::from(dir);
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("companions");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-companions.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "build-companions.sh failed");
    out
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// (machine, program header types, DT_NEEDED count) of a little-endian ELF64 file.
fn elf(bytes: &[u8]) -> (u16, Vec<u32>, usize) {
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!((bytes[4], bytes[5]), (2, 1), "ELF64, little-endian");
    let machine = u16_at(bytes, 0x12);
    let phoff = u64_at(bytes, 0x20) as usize;
    let (phentsize, phnum) = (u16_at(bytes, 0x36) as usize, u16_at(bytes, 0x38) as usize);
    let mut types = Vec::new();
    let mut needed = 0;
    for i in 0..phnum {
        let ph = &bytes[phoff + i * phentsize..];
        let p_type = u32_at(ph, 0);
        types.push(p_type);
        if p_type == 2 {
            // PT_DYNAMIC (static-pie keeps one for self-relocation): count DT_NEEDED.
            let (off, size) = (u64_at(ph, 8) as usize, u64_at(ph, 32) as usize);
            for e in bytes[off..off + size].chunks_exact(16) {
                match u64_at(e, 0) {
                    0 => break,
                    1 => needed += 1,
                    _ => {}
                }
            }
        }
    }
    (machine, types, needed)
}

#[test]
fn both_architectures_are_static() {
    let dir = companions();
    for (target, machine) in TARGETS {
        for bin in BINS {
            let path = dir.join(target).join(bin);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let (m, types, needed) = elf(&bytes);
            assert_eq!(m, machine, "{target}/{bin}: e_machine");
            assert!(types.contains(&1), "{target}/{bin}: no PT_LOAD");
            assert!(
                !types.contains(&3),
                "{target}/{bin} has an ELF interpreter (PT_INTERP)"
            );
            assert_eq!(needed, 0, "{target}/{bin} needs shared libraries");
        }
    }
}

#[test]
fn the_x86_64_binaries_run_even_without_a_libc() {
    let dir = companions().join("x86_64-unknown-linux-musl");
    for bin in BINS {
        let out = Command::new(dir.join(bin))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{bin} {}", env!("CARGO_PKG_VERSION"))
        );
    }
    // An empty root holding nothing but the binary: no loader, no libc, no /etc.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the empty-root run (chroot) is skipped");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("enclave-supervisor"),
        root.path().join("enclave-supervisor"),
    )
    .unwrap();
    let out = Command::new("chroot")
        .arg(root.path())
        .args(["/enclave-supervisor", "--version"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("enclave-supervisor "));
}
