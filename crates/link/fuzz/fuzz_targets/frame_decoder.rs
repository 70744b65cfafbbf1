//! Arbitrary bytes, fed in arbitrary chunks, into every service's frame decoder. The decoder must
//! never panic nor buffer more than one frame; whatever it accepts must re-encode and decode to
//! the same message.
#![no_main]

use bytes::BytesMut;
use enclave_link::control::ControlMsg;
use enclave_link::credentials::CredentialsMsg;
use enclave_link::egress::EgressMsg;
use enclave_link::frame::{decode, encode, Message, HEADER_LEN, MAX_PAYLOAD};
use enclave_link::logs::LogMsg;
use libfuzzer_sys::fuzz_target;

fn run<M: Message + PartialEq + std::fmt::Debug>(chunk: usize, data: &[u8]) {
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decode::<M>(&mut buf) {
                Ok(Some(msg)) => {
                    let mut again = BytesMut::new();
                    encode(&msg, &mut again).expect("an accepted message re-encodes");
                    let back = decode::<M>(&mut again).expect("re-decodes").expect("whole");
                    assert_eq!(back, msg);
                }
                Ok(None) => {
                    assert!(buf.len() < HEADER_LEN + MAX_PAYLOAD);
                    break;
                }
                Err(_) => return, // the connection would be closed here
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(selector >> 2) + 1;
    match selector & 3 {
        0 => run::<ControlMsg>(chunk, rest),
        1 => run::<LogMsg>(chunk, rest),
        2 => run::<CredentialsMsg>(chunk, rest),
        _ => run::<EgressMsg>(chunk, rest),
    }
});
