//! The real Nitro Secure Module: `/dev/nsm` through AWS's driver crate.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;

use aws_nitro_enclaves_nsm_api::api::{Digest, ErrorCode, Request, Response};
use aws_nitro_enclaves_nsm_api::driver;
use serde_bytes::ByteBuf;

use crate::{AttestationRequest, Description, Nsm, NsmError, PcrState};

/// An open `/dev/nsm`, closed on drop. Requests are serialised: the driver's ioctl buffer is
/// per call, but one request at a time keeps the device's answers in order.
pub struct Device {
    fd: Mutex<i32>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Device(/dev/nsm)")
    }
}

impl Device {
    pub fn open() -> Result<Self, NsmError> {
        let fd = driver::nsm_init();
        if fd < 0 {
            return Err(NsmError::Unavailable(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        Ok(Self { fd: Mutex::new(fd) })
    }

    fn call(&self, request: Request) -> Result<Response, NsmError> {
        let fd = self.fd.lock().unwrap_or_else(|e| e.into_inner());
        match driver::nsm_process_request(*fd, request) {
            Response::Error(code) => Err(refused(code)),
            response => Ok(response),
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let fd = *self.fd.get_mut().unwrap_or_else(|e| e.into_inner());
        driver::nsm_exit(fd);
    }
}

fn refused(code: ErrorCode) -> NsmError {
    match code {
        ErrorCode::InputTooLarge => NsmError::Refused("input too large".into()),
        other => NsmError::Refused(format!("{other:?}")),
    }
}

fn unexpected(response: &Response) -> NsmError {
    NsmError::UnexpectedResponse(format!("{response:?}"))
}

impl Nsm for Device {
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        let response = self.call(Request::Attestation {
            user_data: request.user_data().map(|b| ByteBuf::from(b.to_vec())),
            nonce: request.nonce().map(|b| ByteBuf::from(b.to_vec())),
            public_key: request.public_key().map(|b| ByteBuf::from(b.to_vec())),
        })?;
        match response {
            Response::Attestation { document } => Ok(document),
            other => Err(unexpected(&other)),
        }
    }

    fn random(&self) -> Result<Vec<u8>, NsmError> {
        match self.call(Request::GetRandom)? {
            Response::GetRandom { random } => Ok(random),
            other => Err(unexpected(&other)),
        }
    }

    fn describe(&self) -> Result<Description, NsmError> {
        match self.call(Request::DescribeNSM)? {
            Response::DescribeNSM {
                version_major,
                version_minor,
                version_patch,
                module_id,
                max_pcrs,
                locked_pcrs,
                digest,
            } => Ok(Description {
                module_id,
                version: (version_major, version_minor, version_patch),
                max_pcrs,
                locked_pcrs: locked_pcrs.into_iter().collect::<BTreeSet<_>>(),
                digest: digest_name(digest).into(),
            }),
            other => Err(unexpected(&other)),
        }
    }

    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError> {
        match self.call(Request::DescribePCR { index }) {
            Ok(Response::DescribePCR { lock, data }) => Ok(PcrState {
                locked: lock,
                value: data,
            }),
            Ok(other) => Err(unexpected(&other)),
            Err(NsmError::Refused(code)) if code == "InvalidIndex" => {
                Err(NsmError::NoSuchPcr(index))
            }
            Err(e) => Err(e),
        }
    }

    fn is_simulated(&self) -> bool {
        false
    }
}

fn digest_name(digest: Digest) -> &'static str {
    match digest {
        Digest::SHA256 => "SHA256",
        Digest::SHA384 => "SHA384",
        Digest::SHA512 => "SHA512",
    }
}
