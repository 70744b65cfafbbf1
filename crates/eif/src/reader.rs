//! Streaming EIF reader for `eif describe`: walks the sections in file order (as AWS's reader
//! does), recomputes the CRC and PCRs, and checks the signature. Any input, however malformed,
//! yields a typed error; only the small sections (cmdline, metadata, signature) are buffered, and
//! those are size-bounded.

use std::io::{self, Read};
use std::path::Path;

use serde::Serialize;

use crate::format::{
    parse_section_header, Arch, Header, SectionType, CRC_OFFSET, FLAG_ARM64, HEADER_SIZE,
    MAX_SECTIONS, MAX_SIGNATURE_SIZE, SECTION_HEADER_SIZE,
};
use crate::pcr::{Measurements, PcrHasher, HASH_ALGORITHM};
use crate::sign::{verify_signature_section, SignatureInfo};

/// Bound on the buffered cmdline and metadata sections.
pub const MAX_SMALL_SECTION: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("reading the EIF: {0}")]
    Io(io::Error),
    #[error("not an EIF: bad magic")]
    BadMagic,
    #[error("unsupported EIF version {0} (supported: 1 to 4)")]
    UnsupportedVersion(u16),
    #[error("the header declares {0} sections (at most {MAX_SECTIONS})")]
    TooManySections(u16),
    #[error("the file ends inside {0}")]
    Truncated(&'static str),
    #[error("section {index} has invalid type {kind}")]
    InvalidSectionType { index: usize, kind: u16 },
    #[error("section {index}: the header table says offset {table_offset} size {table_size}, the file has offset {offset} size {size}")]
    SectionTableMismatch {
        index: usize,
        table_offset: u64,
        table_size: u64,
        offset: u64,
        size: u64,
    },
    #[error("section {index} ({kind}) is {size} bytes, more than the {max} allowed")]
    SectionTooLarge {
        index: usize,
        kind: SectionType,
        size: u64,
        max: u64,
    },
    #[error("{0}")]
    Layout(&'static str),
    #[error("data after the last declared section")]
    TrailingData,
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// One section as found in the file.
#[derive(Debug, Clone, Serialize)]
pub struct SectionInfo {
    pub kind: SectionType,
    /// Offset of the section header.
    pub offset: u64,
    /// Size of the data.
    pub size: u64,
}

/// The CRC as stored and as recomputed.
#[derive(Debug, Clone, Serialize)]
pub struct CrcCheck {
    pub stored: u32,
    pub computed: u32,
    pub ok: bool,
}

/// Outcome of checking a signature section.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureCheck {
    Valid(SignatureInfo),
    Invalid { error: String },
}

/// Everything `eif describe` reports about a file.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub version: u16,
    pub flags: u16,
    /// `None` when flags hold bits other than the architecture bit.
    pub arch: Option<Arch>,
    pub default_mem: u64,
    pub default_cpus: u64,
    pub sections: Vec<SectionInfo>,
    pub crc: CrcCheck,
    pub measurements: Measurements,
    pub cmdline: String,
    /// The metadata section parsed as JSON (`None` if absent or not JSON; see `warnings`).
    pub metadata: Option<serde_json::Value>,
    /// Result of the signature check, when the file is signed.
    pub signature: Option<SignatureCheck>,
    /// Non-fatal oddities (invalid metadata JSON, invalid signature, …).
    pub warnings: Vec<String>,
}

impl Description {
    /// The JSON `nitro-cli describe-eif` prints. `SigningCertificate` differs from nitro-cli's
    /// (which lists OpenSSL's issuer fields and the certificate's own signature): here it holds
    /// the subject, issuer, COSE algorithm and validity period (RFC 3339).
    pub fn nitro_cli_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("EifVersion".into(), self.version.into());
        obj.insert("Measurements".into(), serde_json::json!(self.measurements));
        obj.insert("IsSigned".into(), self.signature.is_some().into());
        obj.insert("CheckCRC".into(), self.crc.ok.into());
        if let Some(check) = &self.signature {
            obj.insert(
                "SignatureCheck".into(),
                matches!(check, SignatureCheck::Valid(_)).into(),
            );
            if let SignatureCheck::Valid(info) = check {
                obj.insert(
                    "SigningCertificate".into(),
                    serde_json::json!({
                        "Subject": info.subject,
                        "IssuerName": info.issuer,
                        "Algorithm": info.algorithm,
                        "NotBefore": crate::time::rfc3339(info.not_before),
                        "NotAfter": crate::time::rfc3339(info.not_after),
                    }),
                );
            }
        }
        if let Some(meta) = self.metadata.as_ref().and_then(|m| m.as_object()) {
            for key in ["ImageName", "ImageVersion"] {
                if let Some(v) = meta.get(key) {
                    obj.insert(key.into(), v.clone());
                }
            }
            // nitro-cli flattens BuildMetadata, DockerInfo and the custom metadata into one map.
            let mut flat = serde_json::Map::new();
            if let Some(build) = meta.get("BuildMetadata").and_then(|b| b.as_object()) {
                flat.extend(build.clone());
            }
            flat.insert(
                "DockerInfo".into(),
                meta.get("DockerInfo").cloned().unwrap_or_default(),
            );
            if let Some(custom) = meta.get("CustomMetadata").and_then(|c| c.as_object()) {
                flat.extend(custom.clone());
            }
            obj.insert("Metadata".into(), flat.into());
        }
        obj.into()
    }
}

/// Reads and checks an EIF file.
pub fn describe(path: &Path) -> Result<Description, ReadError> {
    let file = std::fs::File::open(path).map_err(|source| ReadError::Open {
        path: path.display().to_string(),
        source,
    })?;
    read_eif(io::BufReader::with_capacity(1 << 20, file))
}

/// Feeds every byte read to the CRC.
struct CrcReader<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> CrcReader<R> {
    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), ReadError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ReadError::Truncated(what),
            _ => ReadError::Io(e),
        })?;
        self.crc.update(buf);
        Ok(())
    }

    /// Streams `len` bytes into `sink`.
    fn stream(
        &mut self,
        mut len: u64,
        what: &'static str,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), ReadError> {
        let mut buf = vec![0u8; 1 << 16];
        while len > 0 {
            let n = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
            self.fill(&mut buf[..n], what)?;
            sink(&buf[..n]);
            len -= n as u64;
        }
        Ok(())
    }

    fn small(&mut self, len: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        self.stream(len, what, |b| out.extend_from_slice(b))?;
        Ok(out)
    }
}

/// Reads an EIF from any byte stream.
pub fn read_eif(r: impl Read) -> Result<Description, ReadError> {
    let mut r = CrcReader {
        inner: r,
        crc: crc32fast::Hasher::new(),
    };
    let mut raw = [0u8; HEADER_SIZE];
    r.inner.read_exact(&mut raw).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ReadError::Truncated("the header"),
        _ => ReadError::Io(e),
    })?;
    r.crc.update(&raw[..CRC_OFFSET]);
    let header = Header::parse(&raw).ok_or(ReadError::BadMagic)?;
    if !(1..=4).contains(&header.version) {
        return Err(ReadError::UnsupportedVersion(header.version));
    }
    let count = usize::from(header.num_sections);
    if count > MAX_SECTIONS {
        return Err(ReadError::TooManySections(header.num_sections));
    }

    let (mut pcr0, mut pcr1, mut pcr2) = (PcrHasher::new(), PcrHasher::new(), PcrHasher::new());
    let mut sections = Vec::with_capacity(count);
    let mut cmdline = None;
    let mut metadata_raw = None;
    let mut signature_raw = None;
    let mut offset = HEADER_SIZE as u64;
    for index in 0..count {
        let mut sh = [0u8; SECTION_HEADER_SIZE];
        r.fill(&mut sh, "a section header")?;
        let (raw_kind, _flags, size) = parse_section_header(&sh);
        let kind = SectionType::from_u16(raw_kind).ok_or(ReadError::InvalidSectionType {
            index,
            kind: raw_kind,
        })?;
        if header.section_offsets[index] != offset || header.section_sizes[index] != size {
            return Err(ReadError::SectionTableMismatch {
                index,
                table_offset: header.section_offsets[index],
                table_size: header.section_sizes[index],
                offset,
                size,
            });
        }
        let max = match kind {
            SectionType::Cmdline | SectionType::Metadata => MAX_SMALL_SECTION,
            SectionType::Signature => MAX_SIGNATURE_SIZE,
            SectionType::Kernel | SectionType::Ramdisk => u64::MAX,
        };
        if size > max {
            return Err(ReadError::SectionTooLarge {
                index,
                kind,
                size,
                max,
            });
        }
        let seen = |k: SectionType| sections.iter().any(|s: &SectionInfo| s.kind == k);
        match kind {
            SectionType::Kernel => {
                if seen(SectionType::Kernel) {
                    return Err(ReadError::Layout("more than one kernel section"));
                }
                r.stream(size, "the kernel", |b| {
                    pcr0.update(b);
                    pcr1.update(b);
                })?;
            }
            SectionType::Cmdline => {
                if cmdline.is_some() {
                    return Err(ReadError::Layout("more than one cmdline section"));
                }
                let data = r.small(size, "the cmdline")?;
                pcr0.update(&data);
                pcr1.update(&data);
                cmdline = Some(data);
            }
            SectionType::Ramdisk => {
                if !seen(SectionType::Kernel) || cmdline.is_none() {
                    return Err(ReadError::Layout(
                        "a ramdisk precedes the kernel or cmdline",
                    ));
                }
                let first = !seen(SectionType::Ramdisk);
                r.stream(size, "a ramdisk", |b| {
                    pcr0.update(b);
                    if first {
                        pcr1.update(b)
                    } else {
                        pcr2.update(b)
                    }
                })?;
            }
            SectionType::Metadata => {
                if metadata_raw.is_some() {
                    return Err(ReadError::Layout("more than one metadata section"));
                }
                metadata_raw = Some(r.small(size, "the metadata")?);
            }
            SectionType::Signature => {
                if signature_raw.is_some() {
                    return Err(ReadError::Layout("more than one signature section"));
                }
                signature_raw = Some(r.small(size, "the signature")?);
            }
        }
        sections.push(SectionInfo { kind, offset, size });
        offset = offset
            .checked_add(SECTION_HEADER_SIZE as u64)
            .and_then(|o| o.checked_add(size))
            .ok_or(ReadError::Layout("section sizes overflow"))?;
    }
    let mut probe = [0u8; 1];
    if r.inner.read(&mut probe)? != 0 {
        return Err(ReadError::TrailingData);
    }
    let cmdline = cmdline.ok_or(ReadError::Layout("no cmdline section"))?;
    if !sections.iter().any(|s| s.kind == SectionType::Kernel) {
        return Err(ReadError::Layout("no kernel section"));
    }
    if !sections.iter().any(|s| s.kind == SectionType::Ramdisk) {
        return Err(ReadError::Layout("no ramdisk section"));
    }

    let mut warnings = Vec::new();
    if header.version >= 4 && metadata_raw.is_none() {
        warnings.push("version 4 EIF without the mandatory metadata section".to_string());
    }
    let metadata = metadata_raw.and_then(|m| match serde_json::from_slice(&m) {
        Ok(v) => Some(v),
        Err(e) => {
            warnings.push(format!("metadata is not JSON: {e}"));
            None
        }
    });
    let pcr0 = pcr0.finish();
    let signature = signature_raw.map(|s| match verify_signature_section(&s, &pcr0) {
        Ok(info) => SignatureCheck::Valid(info),
        Err(e) => SignatureCheck::Invalid {
            error: e.to_string(),
        },
    });
    let pcr8 = match &signature {
        Some(SignatureCheck::Valid(info)) => Some(info.pcr8),
        Some(SignatureCheck::Invalid { error }) => {
            warnings.push(format!("signature: {error}"));
            None
        }
        None => None,
    };
    let computed = r.crc.finalize();
    Ok(Description {
        version: header.version,
        flags: header.flags,
        arch: match header.flags {
            0 => Some(Arch::X86_64),
            FLAG_ARM64 => Some(Arch::Aarch64),
            _ => None,
        },
        default_mem: header.default_mem,
        default_cpus: header.default_cpus,
        sections,
        crc: CrcCheck {
            stored: header.crc32,
            computed,
            ok: computed == header.crc32,
        },
        measurements: Measurements {
            hash_algorithm: HASH_ALGORITHM.to_string(),
            pcr0,
            pcr1: pcr1.finish(),
            pcr2: pcr2.finish(),
            pcr8,
        },
        cmdline: String::from_utf8_lossy(&cmdline).into_owned(),
        metadata,
        signature,
        warnings,
    })
}
