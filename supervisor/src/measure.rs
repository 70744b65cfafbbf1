//! The two identity checks around every start: the EIF on disk is re-measured (nitro-eif's
//! streaming reader) and must match the measurements rendered into the config, and what
//! `describe-enclaves` reports for the started enclave must match them too. The second check
//! catches an EIF swapped between our read and nitro-cli's load; only attestation proves more.

use std::collections::BTreeMap;
use std::path::Path;

use nitro_eif::pcr::{Measurements, Pcr, PcrMismatch};

/// Register name → lowercase hex, as reported and shown (`PCR0`, …).
pub fn to_map(m: &Measurements) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        ("PCR0".to_string(), m.pcr0.to_hex()),
        ("PCR1".to_string(), m.pcr1.to_hex()),
        ("PCR2".to_string(), m.pcr2.to_hex()),
    ]);
    if let Some(p) = m.pcr8 {
        out.insert("PCR8".into(), p.to_hex());
    }
    out
}

/// One line naming each differing register, values shortened to 16 hex digits.
pub fn describe_mismatches(m: &[PcrMismatch]) -> String {
    let short = |p: &Option<Pcr>| match p {
        Some(p) => format!("{}…", &p.to_hex()[..16]),
        None => "absent".to_string(),
    };
    m.iter()
        .map(|x| {
            format!(
                "PCR{} is {} (expected {})",
                x.register,
                short(&x.actual),
                short(&x.expected)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why the EIF on disk may not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EifRefusal {
    Unusable(String),
    Mismatch {
        measured: Box<Measurements>,
        message: String,
    },
}

impl EifRefusal {
    pub fn message(&self) -> String {
        match self {
            EifRefusal::Unusable(m) => m.clone(),
            EifRefusal::Mismatch { message, .. } => message.clone(),
        }
    }
}

/// Re-measures the EIF (streaming: a few MiB of memory whatever its size).
pub fn check_eif(path: &Path, expected: &Measurements) -> Result<Measurements, EifRefusal> {
    let d = nitro_eif::describe(path).map_err(|e| {
        EifRefusal::Unusable(format!(
            "the EIF {} cannot be measured: {e}",
            path.display()
        ))
    })?;
    if !d.crc.ok {
        return Err(EifRefusal::Unusable(format!(
            "the EIF {} is corrupt: stored CRC {:08x}, computed {:08x}",
            path.display(),
            d.crc.stored,
            d.crc.computed
        )));
    }
    let mismatches = d.measurements.mismatches(expected);
    if mismatches.is_empty() {
        Ok(d.measurements)
    } else {
        Err(EifRefusal::Mismatch {
            message: format!(
                "the EIF {} does not measure as rendered: {}",
                path.display(),
                describe_mismatches(&mismatches)
            ),
            measured: Box::new(d.measurements),
        })
    }
}

/// Compares what describe-enclaves reported with the expected registers; `Err` says why not.
pub fn check_described(
    reported: &BTreeMap<String, String>,
    expected: &Measurements,
) -> Result<(), String> {
    if reported.is_empty() {
        return Err("describe-enclaves reported no Measurements for the enclave".into());
    }
    let reg = |name: &str| reported.get(name).and_then(|v| Pcr::from_hex(v));
    let (Some(pcr0), Some(pcr1), Some(pcr2)) = (reg("PCR0"), reg("PCR1"), reg("PCR2")) else {
        return Err(format!(
            "describe-enclaves reported incomplete Measurements ({})",
            reported.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    };
    let measured = Measurements {
        hash_algorithm: expected.hash_algorithm.clone(),
        pcr0,
        pcr1,
        pcr2,
        pcr8: reg("PCR8"),
    };
    let mismatches = measured.mismatches(expected);
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "describe-enclaves measures the running enclave differently: {}",
            describe_mismatches(&mismatches)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(b: u8) -> Measurements {
        Measurements {
            hash_algorithm: nitro_eif::pcr::HASH_ALGORITHM.into(),
            pcr0: Pcr([b; 48]),
            pcr1: Pcr([2; 48]),
            pcr2: Pcr([3; 48]),
            pcr8: None,
        }
    }

    #[test]
    fn describe_must_report_every_expected_register() {
        let expected = m(1);
        assert_eq!(check_described(&to_map(&expected), &expected), Ok(()));
        let err = check_described(&to_map(&m(9)), &expected).unwrap_err();
        assert!(err.contains("PCR0 is 0909090909090909…"), "{err}");
        assert!(check_described(&BTreeMap::new(), &expected)
            .unwrap_err()
            .contains("no Measurements"));
        let mut partial = to_map(&expected);
        partial.remove("PCR2");
        assert!(check_described(&partial, &expected)
            .unwrap_err()
            .contains("incomplete"));
        let mut signed = to_map(&expected);
        signed.insert("PCR8".into(), Pcr([8; 48]).to_hex());
        assert!(check_described(&signed, &expected)
            .unwrap_err()
            .contains("PCR8 is 08"));
    }
}
