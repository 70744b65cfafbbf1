//! The attested-KMS front (`tests/harness/awsim/`, moto in the same Python process) on free
//! loopback ports, one per test, killed on drop. AWS calls go to [`Awsim::endpoint`] over TLS
//! (trust [`Awsim::tls_ca_pem`]); the harness drives the plain-HTTP control port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Awsim {
    child: Child,
    pub port: u16,
    pub control_port: u16,
    /// The CA of the endpoint's TLS certificate (`localhost`, `127.0.0.1`).
    pub tls_ca_pem: String,
    state: tempfile::TempDir,
}

/// Credentials of one identity created by [`Awsim::bootstrap`].
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// The admin user (inline `*` policy) and the enclave role's STS session.
#[derive(Debug, Clone)]
pub struct Identities {
    pub account: String,
    pub admin: Keys,
    pub role: Keys,
    pub role_arn: String,
    pub session_arn: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free loopback port")
        .port()
}

impl Awsim {
    /// Starts the front trusting attestation documents under `trusted_root_pem` (the NSM
    /// simulator's root); QEMU's unsigned documents are refused.
    pub fn start(trusted_root_pem: &str) -> Awsim {
        Self::start_with(trusted_root_pem, false)
    }

    pub fn start_with(trusted_root_pem: &str, accept_unsigned_qemu: bool) -> Awsim {
        let state = tempfile::tempdir().expect("state dir");
        let root = state.path().join("attestation-root.pem");
        std::fs::write(&root, trusted_root_pem).expect("write root");
        let (port, control_port) = (free_port(), free_port());
        let script = crate::repo_root().join("tests/harness/awsim/awsim.py");
        let log = std::fs::File::create(state.path().join("awsim.log")).expect("log file");
        let mut command = Command::new(crate::tool("python3"));
        command
            .arg(script)
            .args(["--port", &port.to_string()])
            .args(["--control-port", &control_port.to_string()])
            .arg("--trusted-root")
            .arg(&root)
            .arg("--state-dir")
            .arg(state.path())
            .stdout(Stdio::null())
            .stderr(log);
        if accept_unsigned_qemu {
            command.arg("--accept-unsigned-qemu");
        }
        let child = command.spawn().expect("start awsim");
        let mut awsim = Awsim {
            child,
            port,
            control_port,
            tls_ca_pem: String::new(),
            state,
        };
        let ca = awsim.state.path().join("tls-ca.pem");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ca.exists() || awsim.control("GET", "/_awsim/health", None).is_err() {
            if let Ok(Some(status)) = awsim.child.try_wait() {
                panic!("awsim exited ({status}):\n{}", awsim.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "awsim did not start:\n{}",
                awsim.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        awsim.tls_ca_pem = std::fs::read_to_string(ca).expect("read TLS CA");
        awsim
    }

    /// `https://localhost:PORT`: KMS, SSM, S3, IAM, STS.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Resets moto, creates the admin and the enclave role with `role_policy`, then switches
    /// moto's SigV4/IAM checking on.
    pub fn bootstrap(&self, role_policy: Value) -> Identities {
        let body = serde_json::json!({ "role_policy": role_policy });
        let v = self
            .control("POST", "/_awsim/bootstrap", Some(&body))
            .unwrap_or_else(|e| panic!("bootstrap: {e}\n{}", self.log_text()));
        let keys = |v: &Value| Keys {
            access_key_id: v["access_key_id"].as_str().expect("key id").into(),
            secret_access_key: v["secret_access_key"].as_str().expect("secret").into(),
            session_token: v["session_token"].as_str().map(String::from),
        };
        Identities {
            account: v["account"].as_str().expect("account").into(),
            admin: keys(&v["admin"]),
            role: keys(&v["role"]),
            role_arn: v["role"]["arn"].as_str().expect("role arn").into(),
            session_arn: v["role"]["session_arn"]
                .as_str()
                .expect("session arn")
                .into(),
        }
    }

    /// Every request the front saw since the last bootstrap or clear: `target`, `recipient`,
    /// `status`, and for attested operations `decision` and `sid`.
    pub fn log(&self) -> Vec<Value> {
        match self.control("GET", "/_awsim/log", None) {
            Ok(Value::Array(entries)) => entries,
            other => panic!("log: {other:?}"),
        }
    }

    pub fn clear_log(&self) {
        self.control("POST", "/_awsim/log/clear", Some(&serde_json::json!({})))
            .expect("clear log");
    }

    /// `{"corruption": null|"flip"|"v0"|"pkcs1v15"|"trailing", "clear_plaintext": bool}`.
    pub fn set_mode(&self, mode: Value) {
        self.control("POST", "/_awsim/mode", Some(&mode))
            .unwrap_or_else(|e| panic!("mode: {e}"));
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state.path().to_path_buf()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.state.path().join("awsim.log")).unwrap_or_default()
    }

    fn control(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let mut s =
            TcpStream::connect(("127.0.0.1", self.control_port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP response")?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            return Err(format!("{head}\n{body}"));
        }
        serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))
    }
}

impl Drop for Awsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
