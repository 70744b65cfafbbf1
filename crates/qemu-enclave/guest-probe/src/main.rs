//! `qemu-guest-probe [PORT]`: connects to the parent (CID 3) on PORT (default 7000), reads a
//! nonce and user data (each `u32` big-endian length + bytes), asks the NSM for an attestation
//! document carrying both and sends it back the same way. Exit 0 on success; on failure a
//! message on the console and exit 1, which AWS's init reports as "child exited with error".

use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver::{nsm_exit, nsm_init, nsm_process_request};
use serde_bytes::ByteBuf;

const PARENT_CID: u32 = 3;
const DEFAULT_PORT: u32 = 7000;
const MAX_FIELD: usize = 1024;

fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|p| p.parse()) {
        None => DEFAULT_PORT,
        Some(Ok(port)) => port,
        Some(Err(e)) => {
            eprintln!("qemu-guest-probe: bad port: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qemu-guest-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(port: u32) -> io::Result<()> {
    let mut parent = vsock_connect(PARENT_CID, port)?;
    let nonce = read_field(&mut parent)?;
    let user_data = read_field(&mut parent)?;
    let document = attest(nonce, user_data)?;
    write_field(&mut parent, &document)?;
    println!(
        "qemu-guest-probe: sent a {}-byte attestation document",
        document.len()
    );
    Ok(())
}

fn attest(nonce: Vec<u8>, user_data: Vec<u8>) -> io::Result<Vec<u8>> {
    let fd = nsm_init();
    if fd < 0 {
        return Err(io::Error::other("cannot open /dev/nsm"));
    }
    let response = nsm_process_request(
        fd,
        Request::Attestation {
            user_data: Some(ByteBuf::from(user_data)),
            nonce: Some(ByteBuf::from(nonce)),
            public_key: None,
        },
    );
    nsm_exit(fd);
    match response {
        Response::Attestation { document } => Ok(document),
        other => Err(io::Error::other(format!("NSM answered {other:?}"))),
    }
}

fn read_field(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FIELD {
        return Err(io::Error::other(format!("field of {len} bytes")));
    }
    let mut field = vec![0; len];
    stream.read_exact(&mut field)?;
    Ok(field)
}

fn write_field(stream: &mut impl Write, field: &[u8]) -> io::Result<()> {
    let len = u32::try_from(field.len()).map_err(io::Error::other)?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(field)?;
    stream.flush()
}

/// A connected AF_VSOCK stream socket.
fn vsock_connect(cid: u32, port: u32) -> io::Result<std::fs::File> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket this function owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_vm is plain data; all-zero is a valid starting value.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = cid;
    addr.svm_port = port;
    // SAFETY: `addr` is a valid sockaddr_vm of the length passed.
    let rc = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("connect(vsock {cid}:{port}): {err}"),
        ));
    }
    Ok(std::fs::File::from(owned))
}
