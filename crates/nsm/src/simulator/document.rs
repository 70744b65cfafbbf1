//! Encoding of a simulated attestation document in the real NSM's exact shape: an untagged
//! COSE_Sign1 `[h'a1013822', {}, payload, signature]` whose payload is an indefinite-length map
//! (as current NSMs emit) holding all nine fields in the NSM's order, absent optionals as null.

use std::collections::BTreeMap;

use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};

/// `{1: -35}`: ES384.
const PROTECTED_ES384: [u8; 4] = [0xa1, 0x01, 0x38, 0x22];

/// The payload fields, in the order the NSM writes them.
pub(crate) struct Payload<'a> {
    pub(crate) module_id: &'a str,
    pub(crate) timestamp_ms: u64,
    pub(crate) pcrs: &'a BTreeMap<u16, Vec<u8>>,
    pub(crate) certificate: &'a [u8],
    pub(crate) cabundle: &'a [Vec<u8>],
    pub(crate) public_key: Option<&'a [u8]>,
    pub(crate) user_data: Option<&'a [u8]>,
    pub(crate) nonce: Option<&'a [u8]>,
}

impl Payload<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![0xbf]; // map, indefinite length
        text(&mut out, "module_id");
        text(&mut out, self.module_id);
        text(&mut out, "digest");
        text(&mut out, "SHA384");
        text(&mut out, "timestamp");
        head(&mut out, 0, self.timestamp_ms);
        text(&mut out, "pcrs");
        head(&mut out, 5, self.pcrs.len() as u64);
        for (index, value) in self.pcrs {
            head(&mut out, 0, u64::from(*index));
            bytes(&mut out, value);
        }
        text(&mut out, "certificate");
        bytes(&mut out, self.certificate);
        text(&mut out, "cabundle");
        head(&mut out, 4, self.cabundle.len() as u64);
        for cert in self.cabundle {
            bytes(&mut out, cert);
        }
        for (key, value) in [
            ("public_key", self.public_key),
            ("user_data", self.user_data),
            ("nonce", self.nonce),
        ] {
            text(&mut out, key);
            match value {
                Some(v) => bytes(&mut out, v),
                None => out.push(0xf6),
            }
        }
        out.push(0xff);
        out
    }
}

/// Signs the payload with the leaf key and wraps it in the COSE_Sign1 array.
pub(crate) fn sign(payload: &Payload<'_>, key: &SigningKey) -> Vec<u8> {
    let payload = payload.encode();
    let mut to_sign = vec![0x84];
    text(&mut to_sign, "Signature1");
    bytes(&mut to_sign, &PROTECTED_ES384);
    bytes(&mut to_sign, &[]);
    bytes(&mut to_sign, &payload);
    let signature: Signature = key.sign(&to_sign);
    let mut out = vec![0x84];
    bytes(&mut out, &PROTECTED_ES384);
    out.push(0xa0);
    bytes(&mut out, &payload);
    bytes(&mut out, &signature.to_bytes());
    out
}

/// A CBOR head with the shortest argument encoding.
fn head(out: &mut Vec<u8>, major: u8, value: u64) {
    let major = major << 5;
    match value {
        0..=23 => out.push(major | value as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, value as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    head(out, 2, value.len() as u64);
    out.extend_from_slice(value);
}

fn text(out: &mut Vec<u8>, value: &str) {
    head(out, 3, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}
