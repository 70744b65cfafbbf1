//! PCR measurements as the Nitro hypervisor computes them, and the nitro-cli JSON shape.

use serde::{Deserialize, Serialize};

use crate::sha384::Sha384;

/// Size of a SHA-384 digest, hence of every PCR.
pub const PCR_LEN: usize = 48;

/// What nitro-cli prints as `HashAlgorithm`; informative only (never compare it).
pub const HASH_ALGORITHM: &str = "Sha384 { ... }";

/// A TPM-style extend from a zero register: `SHA384(0^48 ‖ SHA384(content))`.
#[derive(Clone, Default)]
pub struct PcrHasher(Sha384);

impl PcrHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Finishes the content hash and extends a zero register with it.
    pub fn finish(self) -> Pcr {
        let mut outer = Sha384::default();
        outer.update(&[0u8; PCR_LEN]);
        outer.update(&self.0.finalize());
        Pcr(outer.finalize())
    }

    /// The PCR of a byte string held in memory (certificates, test vectors).
    pub fn of(data: &[u8]) -> Pcr {
        let mut h = Self::new();
        h.update(data);
        h.finish()
    }

    /// The PCR of a file's contents, streamed (as `nitro-cli pcr --input`).
    pub fn of_file(path: &std::path::Path) -> std::io::Result<Pcr> {
        let mut h = Self::new();
        std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
        Ok(h.finish())
    }
}

impl std::io::Write for PcrHasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One 48-byte PCR value, shown and parsed as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pcr(pub [u8; PCR_LEN]);

impl Pcr {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 96 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; PCR_LEN];
        hex::decode_to_slice(s.trim(), &mut out).ok()?;
        Some(Pcr(out))
    }
}

impl std::fmt::Debug for Pcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Display for Pcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Pcr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Pcr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pcr::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a PCR is 96 hex digits"))
    }
}

/// The measured registers of an EIF: PCR0/1/2 always, PCR8 when signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurements {
    #[serde(rename = "HashAlgorithm", default = "hash_algorithm")]
    pub hash_algorithm: String,
    #[serde(rename = "PCR0")]
    pub pcr0: Pcr,
    #[serde(rename = "PCR1")]
    pub pcr1: Pcr,
    #[serde(rename = "PCR2")]
    pub pcr2: Pcr,
    #[serde(rename = "PCR8", default, skip_serializing_if = "Option::is_none")]
    pub pcr8: Option<Pcr>,
}

fn hash_algorithm() -> String {
    HASH_ALGORITHM.to_string()
}

/// `{"Measurements": {...}}`, the shape `nitro-cli build-enclave` prints and key holders exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementsFile {
    #[serde(rename = "Measurements")]
    pub measurements: Measurements,
}

/// One register whose value differs from the expected one (`nitro-provision verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PcrMismatch {
    pub register: u8,
    pub expected: Option<Pcr>,
    pub actual: Option<Pcr>,
}

impl Measurements {
    /// Registers that differ from `expected`, PCR8 included (present on one side only counts).
    pub fn mismatches(&self, expected: &Measurements) -> Vec<PcrMismatch> {
        [
            (0, Some(expected.pcr0), Some(self.pcr0)),
            (1, Some(expected.pcr1), Some(self.pcr1)),
            (2, Some(expected.pcr2), Some(self.pcr2)),
            (8, expected.pcr8, self.pcr8),
        ]
        .into_iter()
        .filter(|(_, e, a)| e != a)
        .map(|(register, expected, actual)| PcrMismatch {
            register,
            expected,
            actual,
        })
        .collect()
    }

    /// Pretty JSON in nitro-cli's shape.
    pub fn to_json(&self) -> String {
        let file = MeasurementsFile {
            measurements: self.clone(),
        };
        // Serializing plain strings into a String cannot fail.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Parses nitro-cli's `{"Measurements": …}` or the bare map `eif_build` prints.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Wrapped(MeasurementsFile),
            Bare(Measurements),
        }
        Ok(match serde_json::from_str(s)? {
            Either::Wrapped(f) => f.measurements,
            Either::Bare(m) => m,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked vector of the reference notes, itself checked against eif_build and Python.
    #[test]
    fn reference_vector() {
        let mut p0 = PcrHasher::new();
        for part in [&b"KERNEL"[..], b"console=ttyS0", b"BOOTRD", b"APPRD"] {
            p0.update(part);
        }
        assert_eq!(
            p0.finish().to_hex(),
            "eec85c28e955d9756ef192876d45016671e0e2eed7f03e32684c1b437ffdae6fdc0cffa7947a996d7355a1b9b37ef32b"
        );
        assert_eq!(
            PcrHasher::of(b"").to_hex(),
            "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a"
        );
    }

    #[test]
    fn file_pcr_equals_in_memory_pcr() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), vec![7u8; 300_000]).unwrap();
        assert_eq!(
            PcrHasher::of_file(f.path()).unwrap(),
            PcrHasher::of(&[7u8; 300_000])
        );
    }

    #[test]
    fn json_roundtrip_both_shapes() {
        let m = Measurements {
            hash_algorithm: HASH_ALGORITHM.into(),
            pcr0: Pcr([1; 48]),
            pcr1: Pcr([2; 48]),
            pcr2: Pcr([3; 48]),
            pcr8: None,
        };
        let json = m.to_json();
        assert!(json.contains("\"Measurements\""));
        assert!(!json.contains("PCR8"));
        assert_eq!(Measurements::from_json(&json).unwrap(), m);
        let bare = serde_json::to_string(&m).unwrap();
        assert_eq!(Measurements::from_json(&bare).unwrap(), m);

        assert!(m.mismatches(&m).is_empty());
        let mut other = m.clone();
        other.pcr2 = Pcr([9; 48]);
        other.pcr8 = Some(Pcr([8; 48]));
        let regs: Vec<u8> = m.mismatches(&other).iter().map(|x| x.register).collect();
        assert_eq!(regs, [2, 8]);
        assert!(Measurements::from_json(r#"{"PCR0":"00"}"#).is_err());
    }
}
