//! Shared fixtures: the real template, principals and PCR strategies.
#![allow(dead_code)] // each test crate uses a different part of this module

use kms_policy::{PcrIndex, PcrSet, PcrValue, Principals, Release};
use proptest::prelude::*;

pub const TEMPLATE: &str = include_str!("../../../../policies/kms-key-policy.json.j2");

pub const ACCOUNT: &str = "111122223333";
pub const ADMIN: &str = "arn:aws:iam::111122223333:role/admin";
pub const ENCLAVE_ROLE: &str = "arn:aws:iam::111122223333:role/enclave";
/// How the enclave's requests arrive: signed with the instance role's session.
pub const ENCLAVE_SESSION: &str =
    "arn:aws:sts::111122223333:assumed-role/enclave/i-0123456789abcdef0";
pub const WRITER: &str = "arn:aws:iam::111122223333:role/writer";
pub const MIGRATOR: &str = "arn:aws:iam::444455556666:role/migrator";
pub const OUTSIDER: &str = "arn:aws:iam::999999999999:role/enclave";

pub fn principals() -> Principals {
    Principals {
        admins: vec![ADMIN.into()],
        enclave: vec![ENCLAVE_ROLE.into()],
        writers: vec![WRITER.into()],
    }
}

pub fn index(i: u32) -> PcrIndex {
    PcrIndex::new(i).expect("valid PCR index")
}

pub fn pcr(byte: u8) -> PcrValue {
    PcrValue::from_bytes([byte; 48])
}

pub fn release(values: &[(u32, PcrValue)]) -> Release {
    Release::new(values.iter().map(|(i, v)| (index(*i), *v)).collect()).expect("release has PCR0")
}

/// Registers a release pins: image, kernel, application, signing certificate.
pub const REGISTERS: [u32; 4] = [0, 1, 2, 8];

pub fn pcr_value() -> impl Strategy<Value = PcrValue> {
    prop::array::uniform32(any::<u8>())
        .prop_flat_map(|head| {
            prop::array::uniform16(any::<u8>()).prop_map(move |tail| (head, tail))
        })
        .prop_map(|(head, tail)| {
            let mut bytes = [0u8; 48];
            bytes[..32].copy_from_slice(&head);
            bytes[32..].copy_from_slice(&tail);
            PcrValue::from_bytes(bytes)
        })
        .prop_filter("not a debug register", |v| !v.is_zero())
}

pub fn pcr_set() -> impl Strategy<Value = PcrSet> {
    prop::array::uniform4(pcr_value()).prop_map(|values| {
        REGISTERS
            .iter()
            .zip(values)
            .map(|(i, v)| (index(*i), v))
            .collect()
    })
}

/// An old and a new release: each register of the new one either keeps the old value
/// (kernels and signing keys often do; a re-signed image keeps PCR0) or changes. Image or
/// signer differ, as for any two releases.
pub fn release_pair() -> impl Strategy<Value = (PcrSet, PcrSet)> {
    (pcr_set(), pcr_set(), prop::array::uniform4(any::<bool>()))
        .prop_map(|(old, fresh, keep)| {
            let new: PcrSet = REGISTERS
                .iter()
                .zip(keep)
                .map(|(i, keep)| {
                    let i = index(*i);
                    (i, if keep { old[&i] } else { fresh[&i] })
                })
                .collect();
            (old, new)
        })
        .prop_filter("a different image or signer", |(old, new)| {
            old[&index(0)] != new[&index(0)] || old[&index(8)] != new[&index(8)]
        })
}
