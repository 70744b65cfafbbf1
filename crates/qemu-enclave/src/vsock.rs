//! The host side of the enclave's vsock under vhost-device-vsock's unix-socket backend (the
//! Firecracker hybrid-vsock convention): the enclave's `connect(cid, PORT)` reaches a listener
//! on `<uds>_PORT`; the host reaches an enclave port by connecting to `<uds>` and sending
//! `CONNECT PORT\n`. Also answers the boot heartbeat of AWS's init.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The parent's CID on Nitro, which AWS's init and the runtime dial (served here by the host
/// side thanks to the CID-3 patch of vhost-device-vsock).
pub const PARENT_CID: u32 = 3;
/// AWS's init connects here once the NSM module is loaded, before it runs anything.
pub const HEARTBEAT_PORT: u32 = 9000;
/// The byte init sends and expects back (nitro-cli's `enclave_ready`).
pub const HEARTBEAT_BYTE: u8 = 0xb7;

/// The host end of one VM's vsock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsockHost {
    uds: PathBuf,
}

impl VsockHost {
    pub(crate) fn new(uds: PathBuf) -> Self {
        VsockHost { uds }
    }

    /// The backend's socket for host-initiated connections.
    pub fn uds(&self) -> &Path {
        &self.uds
    }

    /// The unix socket the enclave's connections to `port` arrive on.
    pub fn port_path(&self, port: u32) -> PathBuf {
        let mut path = self.uds.clone().into_os_string();
        path.push(format!("_{port}"));
        PathBuf::from(path)
    }

    /// Listens for the enclave's connections to `port` (any parent CID it dials).
    pub fn listen(&self, port: u32) -> io::Result<UnixListener> {
        let path = self.port_path(port);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        UnixListener::bind(path)
    }

    /// Connects to `port` inside the enclave (the enclave must be listening on it).
    pub fn connect(&self, port: u32) -> io::Result<UnixStream> {
        let mut stream = UnixStream::connect(&self.uds)?;
        stream.write_all(format!("CONNECT {port}\n").as_bytes())?;
        // Read the reply byte by byte: anything after its newline is the enclave's data.
        let mut reply = Vec::new();
        let mut byte = [0u8];
        while reply.len() < 64 {
            stream.read_exact(&mut byte)?;
            if byte[0] == b'\n' {
                break;
            }
            reply.push(byte[0]);
        }
        match std::str::from_utf8(&reply) {
            Ok(line) if line.starts_with("OK ") => Ok(stream),
            _ => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "vsock CONNECT {port}: backend answered {:?}",
                    String::from_utf8_lossy(&reply)
                ),
            )),
        }
    }
}

/// Answers AWS init's heartbeat on `<uds>_9000` and records when it came.
pub(crate) struct Heartbeat {
    received: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    pub(crate) fn answer(vsock: &VsockHost) -> io::Result<Self> {
        let listener = vsock.listen(HEARTBEAT_PORT)?;
        listener.set_nonblocking(true)?;
        let received = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if echo_heartbeat(stream).is_ok() {
                            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                            seen.get_or_insert_with(Instant::now);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(Heartbeat {
            received,
            stop,
            thread: Some(thread),
        })
    }

    /// When the first correct heartbeat was answered.
    pub(crate) fn received(&self) -> Option<Instant> {
        *self.received.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads init's byte and echoes it; anything else is refused (init then panics, as on Nitro).
fn echo_heartbeat(mut stream: UnixStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut byte = [0u8];
    stream.read_exact(&mut byte)?;
    if byte[0] != HEARTBEAT_BYTE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("heartbeat byte 0x{:02x}", byte[0]),
        ));
    }
    stream.write_all(&[HEARTBEAT_BYTE])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn heartbeat_is_echoed_and_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = VsockHost::new(dir.path().join("vsock"));
        let heartbeat = Heartbeat::answer(&host).expect("bind");
        assert_eq!(heartbeat.received(), None);
        let mut wrong = UnixStream::connect(host.port_path(HEARTBEAT_PORT)).expect("connect");
        wrong.write_all(&[0x00]).expect("write");
        let mut reply = [0u8];
        assert!(
            wrong.read_exact(&mut reply).is_err(),
            "a wrong byte gets no echo"
        );
        let mut init = UnixStream::connect(host.port_path(HEARTBEAT_PORT)).expect("connect");
        init.write_all(&[HEARTBEAT_BYTE]).expect("write");
        init.read_exact(&mut reply).expect("echo");
        assert_eq!(reply, [HEARTBEAT_BYTE]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while heartbeat.received().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(heartbeat.received().is_some());
    }

    #[test]
    fn port_paths_follow_the_hybrid_vsock_convention() {
        let host = VsockHost::new(PathBuf::from("/run/vm/vsock"));
        assert_eq!(host.port_path(9000), Path::new("/run/vm/vsock_9000"));
    }

    #[test]
    fn connect_speaks_the_backend_protocol() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = VsockHost::new(dir.path().join("vsock"));
        let backend = UnixListener::bind(host.uds()).expect("bind");
        let server = std::thread::spawn(move || {
            for reply in ["OK 1073741824\n", "ERR\n"] {
                let (stream, _) = backend.accept().expect("accept");
                let mut lines = BufReader::new(stream);
                let mut request = String::new();
                lines.read_line(&mut request).expect("request");
                assert_eq!(request, "CONNECT 5005\n");
                let mut stream = lines.into_inner();
                stream.write_all(reply.as_bytes()).expect("reply");
                stream.write_all(b"data").expect("data");
            }
        });
        let mut stream = host.connect(5005).expect("connected");
        let mut data = [0u8; 4];
        stream.read_exact(&mut data).expect("data after the reply");
        assert_eq!(&data, b"data");
        let refused = host.connect(5005).expect_err("refused");
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        server.join().expect("server");
    }
}
