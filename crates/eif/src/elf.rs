//! Which CPU a binary is for, from its header: ELF's `e_machine` for executables and modules, the
//! boot headers for kernels. An enclave built from parts for another architecture does not boot
//! (or its runtime does not start), so every part is checked before it is built in.

use std::fmt;
use std::io::Read;
use std::path::Path;

use crate::format::Arch;

/// What a file's header says it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
    /// Another ELF machine (`e_machine` value), e.g. 32-bit x86 (3) or RISC-V (243).
    Other(u16),
}

impl Machine {
    /// The EIF architecture this machine runs, if any.
    pub fn arch(self) -> Option<Arch> {
        match self {
            Machine::X86_64 => Some(Arch::X86_64),
            Machine::Aarch64 => Some(Arch::Aarch64),
            Machine::Other(_) => None,
        }
    }

    fn from_e_machine(v: u16) -> Self {
        match v {
            62 => Machine::X86_64,
            183 => Machine::Aarch64,
            other => Machine::Other(other),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::X86_64 => f.write_str("x86-64"),
            Machine::Aarch64 => f.write_str("aarch64"),
            Machine::Other(3) => f.write_str("i386"),
            Machine::Other(40) => f.write_str("arm"),
            Machine::Other(243) => f.write_str("riscv"),
            Machine::Other(n) => write!(f, "machine-{n}"),
        }
    }
}

/// What a file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// An ELF file (executable, shared object or kernel module) and its class.
    Elf { machine: Machine, bits: u8 },
    /// A Linux kernel image (x86 bzImage or arm64 Image).
    Kernel(Arch),
    /// Neither: a script, another executable format, or not a binary at all.
    Unknown,
}

impl fmt::Display for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binary::Elf { machine, bits: 64 } => write!(f, "an {machine} ELF file"),
            Binary::Elf { machine, bits } => write!(f, "a {bits}-bit {machine} ELF file"),
            Binary::Kernel(arch) => write!(f, "{} kernel", arch_article(*arch)),
            Binary::Unknown => f.write_str("not an ELF executable"),
        }
    }
}

fn arch_article(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "an x86-64",
        Arch::Aarch64 => "an aarch64",
    }
}

impl Binary {
    /// The architecture the binary runs on, if it is one an enclave can run.
    pub fn arch(self) -> Option<Arch> {
        match self {
            Binary::Elf { machine, bits: 64 } => machine.arch(),
            Binary::Elf { .. } | Binary::Unknown => None,
            Binary::Kernel(a) => Some(a),
        }
    }
}

/// Bytes read from the start of a file: enough for the ELF header and the kernel boot headers.
const HEAD: usize = 0x240;

/// Identifies `bytes`, the start of a file.
pub fn identify(bytes: &[u8]) -> Binary {
    if bytes.len() >= 20 && bytes.starts_with(b"\x7fELF") {
        let bits = match bytes[4] {
            1 => 32,
            2 => 64,
            _ => return Binary::Unknown,
        };
        let pair = [bytes[18], bytes[19]];
        let e_machine = match bytes[5] {
            1 => u16::from_le_bytes(pair),
            2 => u16::from_be_bytes(pair),
            _ => return Binary::Unknown,
        };
        return Binary::Elf {
            machine: Machine::from_e_machine(e_machine),
            bits,
        };
    }
    // x86 boot protocol: "HdrS" at 0x202. arm64 Image: "ARM\x64" at 0x38.
    if bytes.get(0x202..0x206) == Some(b"HdrS") {
        return Binary::Kernel(Arch::X86_64);
    }
    if bytes.get(0x38..0x3c) == Some(b"ARM\x64") {
        return Binary::Kernel(Arch::Aarch64);
    }
    Binary::Unknown
}

/// Identifies the file at `path` from its first bytes.
pub fn identify_file(path: &Path) -> std::io::Result<Binary> {
    let mut head = Vec::with_capacity(HEAD);
    std::fs::File::open(path)?
        .take(HEAD as u64)
        .read_to_end(&mut head)?;
    Ok(identify(&head))
}

/// A minimal ELF64 header for `e_machine` (tests, fixtures): 64 bytes, little-endian, `ET_EXEC`.
pub fn minimal_elf64_header(machine: u16) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // little-endian
    h[6] = 1; // EV_CURRENT
    h[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_elf_machines_and_kernels() {
        assert_eq!(
            identify(&minimal_elf64_header(62)),
            Binary::Elf {
                machine: Machine::X86_64,
                bits: 64
            }
        );
        assert_eq!(
            identify(&minimal_elf64_header(183)).arch(),
            Some(Arch::Aarch64)
        );
        let mut be = minimal_elf64_header(0);
        be[5] = 2;
        be[18..20].copy_from_slice(&183u16.to_be_bytes());
        assert_eq!(identify(&be).arch(), Some(Arch::Aarch64));
        let mut elf32 = minimal_elf64_header(3);
        elf32[4] = 1;
        assert_eq!(identify(&elf32).arch(), None);
        assert_eq!(identify(&elf32).to_string(), "a 32-bit i386 ELF file");
        assert_eq!(identify(b"#!/bin/sh\n"), Binary::Unknown);
        assert_eq!(identify(b"\x7fELF"), Binary::Unknown);
        let mut bz = vec![0u8; 0x240];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(identify(&bz), Binary::Kernel(Arch::X86_64));
        let mut image = vec![0u8; 0x40];
        image[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert_eq!(identify(&image), Binary::Kernel(Arch::Aarch64));
    }
}
