//! The IMDSv2 simulator (`imds_sim.py`, standard-library Python) on a free loopback port, one per
//! test, killed on drop. It enforces IMDSv2's token rules, which moto does not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

pub struct ImdsSim {
    child: Child,
    pub port: u16,
}

impl ImdsSim {
    /// Starts the simulator with extra command-line knobs (`--expiry-secs 60`, …).
    pub fn start(args: &[&str]) -> ImdsSim {
        let script = crate::repo_root().join("tests/harness/imds_sim.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 tests/harness/imds_sim.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the simulator's first line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from imds_sim.py: {line:?}"));
        ImdsSim { child, port }
    }

    /// `http://127.0.0.1:PORT`, as `link.credentials.imds_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The simulator's counters (`credential_gets`, `token_puts`, `serial`, …) as JSON text.
    pub fn stats(&self) -> String {
        self.http("GET", "/_sim/stats", "")
    }

    /// Changes knobs at run time: a JSON object such as `{"fail_credentials": 2}`.
    pub fn configure(&self, knobs: &str) {
        self.http("POST", "/_sim/config", knobs);
    }

    fn http(&self, method: &str, path: &str, body: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to imds_sim");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write to imds_sim");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read from imds_sim");
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }
}

impl Drop for ImdsSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
