//! The EIF v4 on-disk layout: a fixed big-endian header followed by packed
//! `(section header, data)` pairs, with no alignment or padding anywhere.

/// `.eif`: the first four bytes of every EIF.
pub const MAGIC: [u8; 4] = *b".eif";
/// The version we write; v4 made the metadata section mandatory.
pub const VERSION: u16 = 4;
/// Size of the file header, fixed by the format.
pub const HEADER_SIZE: usize = 548;
/// Size of each section header.
pub const SECTION_HEADER_SIZE: usize = 12;
/// The header has room for this many section offsets/sizes.
pub const MAX_SECTIONS: usize = 32;
/// Offset of the CRC field: the CRC covers every byte of the file except these four.
pub const CRC_OFFSET: usize = 544;
/// Header flag bit marking an aarch64 image (absent: x86_64).
pub const FLAG_ARM64: u16 = 0x1;
/// `default_mem` written by AWS's builder (1 GiB); unused by the hypervisor.
pub const DEFAULT_MEM: u64 = 1 << 30;
/// `default_cpus` written by AWS's builder; unused by the hypervisor.
pub const DEFAULT_CPUS: u64 = 2;
/// Largest signature section AWS's specification allows.
pub const MAX_SIGNATURE_SIZE: u64 = 32 * 1024;

/// CPU architecture of the kernel, recorded in the header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The header flags value for this architecture.
    pub fn flags(self) -> u16 {
        match self {
            Arch::X86_64 => 0,
            Arch::Aarch64 => FLAG_ARM64,
        }
    }

    /// The OCI/Go name of the architecture (`amd64`, `arm64`), as image platforms spell it.
    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86-64",
            Arch::Aarch64 => "aarch64",
        })
    }
}

/// Section kinds; numeric values are the on-disk `section_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SectionType {
    Kernel = 1,
    Cmdline = 2,
    Ramdisk = 3,
    Signature = 4,
    Metadata = 5,
}

impl std::fmt::Display for SectionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SectionType::Kernel => "kernel",
            SectionType::Cmdline => "cmdline",
            SectionType::Ramdisk => "ramdisk",
            SectionType::Signature => "signature",
            SectionType::Metadata => "metadata",
        })
    }
}

impl SectionType {
    /// Parses an on-disk section type; `None` for 0 (invalid) and unknown values.
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => SectionType::Kernel,
            2 => SectionType::Cmdline,
            3 => SectionType::Ramdisk,
            4 => SectionType::Signature,
            5 => SectionType::Metadata,
            _ => return None,
        })
    }
}

/// The 548-byte file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub flags: u16,
    pub default_mem: u64,
    pub default_cpus: u64,
    pub num_sections: u16,
    /// Absolute offset of each section's *header*; only the first `num_sections` are meaningful.
    pub section_offsets: [u64; MAX_SECTIONS],
    /// Size of each section's *data*.
    pub section_sizes: [u64; MAX_SECTIONS],
    pub crc32: u32,
}

impl Header {
    /// Serializes to the on-disk big-endian layout.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_be_bytes());
        b[6..8].copy_from_slice(&self.flags.to_be_bytes());
        b[8..16].copy_from_slice(&self.default_mem.to_be_bytes());
        b[16..24].copy_from_slice(&self.default_cpus.to_be_bytes());
        // 24..26 reserved (0)
        b[26..28].copy_from_slice(&self.num_sections.to_be_bytes());
        for i in 0..MAX_SECTIONS {
            b[28 + 8 * i..36 + 8 * i].copy_from_slice(&self.section_offsets[i].to_be_bytes());
            b[284 + 8 * i..292 + 8 * i].copy_from_slice(&self.section_sizes[i].to_be_bytes());
        }
        // 540..544 unused (0)
        b[CRC_OFFSET..].copy_from_slice(&self.crc32.to_be_bytes());
        b
    }

    /// Parses the header; checks only the magic (the reader validates the rest against the sections).
    pub fn parse(b: &[u8; HEADER_SIZE]) -> Option<Self> {
        if b[0..4] != MAGIC {
            return None;
        }
        let u16_at = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_be_bytes(a)
        };
        let mut section_offsets = [0u64; MAX_SECTIONS];
        let mut section_sizes = [0u64; MAX_SECTIONS];
        for i in 0..MAX_SECTIONS {
            section_offsets[i] = u64_at(28 + 8 * i);
            section_sizes[i] = u64_at(284 + 8 * i);
        }
        Some(Header {
            version: u16_at(4),
            flags: u16_at(6),
            default_mem: u64_at(8),
            default_cpus: u64_at(16),
            num_sections: u16_at(26),
            section_offsets,
            section_sizes,
            crc32: u32::from_be_bytes([b[544], b[545], b[546], b[547]]),
        })
    }
}

/// Encodes a 12-byte section header.
pub fn section_header_bytes(kind: SectionType, size: u64) -> [u8; SECTION_HEADER_SIZE] {
    let mut b = [0u8; SECTION_HEADER_SIZE];
    b[0..2].copy_from_slice(&(kind as u16).to_be_bytes());
    // 2..4: flags, always 0
    b[4..12].copy_from_slice(&size.to_be_bytes());
    b
}

/// Decodes a section header into `(raw type, flags, size)`.
pub fn parse_section_header(b: &[u8; SECTION_HEADER_SIZE]) -> (u16, u16, u64) {
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[4..12]);
    (
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
        u64::from_be_bytes(s),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_layout() {
        let mut h = Header {
            version: VERSION,
            flags: FLAG_ARM64,
            default_mem: DEFAULT_MEM,
            default_cpus: DEFAULT_CPUS,
            num_sections: 2,
            section_offsets: [0; MAX_SECTIONS],
            section_sizes: [0; MAX_SECTIONS],
            crc32: 0xdead_beef,
        };
        h.section_offsets[0] = 548;
        h.section_sizes[31] = 7;
        let b = h.to_bytes();
        assert_eq!(&b[0..8], &[0x2e, 0x65, 0x69, 0x66, 0, 4, 0, 1]);
        assert_eq!(&b[28..36], &548u64.to_be_bytes());
        assert_eq!(&b[532..540], &7u64.to_be_bytes());
        assert_eq!(&b[544..548], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(Header::parse(&b), Some(h));
    }
}
