//! A real `moto_server` on a free loopback port, one per test, killed on drop: the AWS wire
//! protocol without an AWS account.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub port: u16,
    _log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts moto_server and waits until it answers (usually 2–3 s).
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free loopback port")
            .port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = spawn(port, &log);
        let moto = Moto {
            child,
            port,
            _log: log,
        };
        moto.wait_ready();
        moto
    }

    /// Kills the server: clients now see connection refused, as in an outage.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A fresh server on the same port (all state is gone, as after a regional outage with
    /// data loss: callers must re-create what they need).
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(self.port, &self._log);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.request("GET", "/moto-api/").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Wipes every service's state.
    pub fn reset(&self) {
        self.request("POST", "/moto-api/reset").expect("reset moto");
    }

    /// Environment for a client process: static test credentials, no IMDS, fast polling.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("NITRO_PROVISION_POLL_MS", "50".into()),
        ]
    }

    /// A minimal HTTP/1.0 request; the status line's code when 2xx.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        )
        .ok()?;
        let mut head = [0u8; 64];
        let n = s.read(&mut head).ok()?;
        let line = String::from_utf8_lossy(&head[..n]);
        let code: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        (200..300).contains(&code).then_some(code)
    }
}

fn spawn(port: u16, log: &tempfile::NamedTempFile) -> Child {
    Command::new(crate::tool("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("log file"))
        .spawn()
        .expect("start moto_server")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
