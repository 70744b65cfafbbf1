//! The real `enclave-supervisor` binary against the stand-in `nitro-cli` (`fake-nitro-cli`,
//! first on PATH as `nitro-cli`): one test's world ([`Env`]: EIF, config, state, the fake's
//! state) and a running supervisor ([`Supervisor`]) read through its management API and logs.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use companion_config::{ConfigFile, SupervisorConfig};
use nitro_eif::format::Arch;
use nitro_eif::pcr::Measurements;
use serde_json::Value;

use super::http::{http, Response};
use super::openmetrics;
use super::runtime::Runtime;
use super::DEADLINE;

/// A small but real EIF; its measurements are what nitro-eif (and so nitro-cli) computes.
pub fn build_eif(path: &Path, seed: &str) -> Measurements {
    let file = std::fs::File::create(path).unwrap();
    let kernel = format!("kernel {seed}").repeat(64);
    let mut w = nitro_eif::writer::EifWriter::new(
        file,
        Arch::X86_64,
        &mut kernel.as_bytes(),
        "console=ttyS0",
        b"{}",
    )
    .unwrap();
    w.add_ramdisk_from(&mut format!("init ramdisk {seed}").as_bytes())
        .unwrap();
    w.add_ramdisk_from(&mut format!("app ramdisk {seed}").as_bytes())
        .unwrap();
    w.finish(None).unwrap().1
}

pub fn pcr_config(m: &Measurements) -> companion_config::Measurements {
    companion_config::Measurements {
        pcr0: m.pcr0.to_hex(),
        pcr1: m.pcr1.to_hex(),
        pcr2: m.pcr2.to_hex(),
        pcr8: m.pcr8.map(|p| p.to_hex()),
    }
}

/// One test's world: EIF, config (the link on unix sockets in `dir`), state directory, the
/// fake nitro-cli's state.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub eif: PathBuf,
    pub measurements: Measurements,
    pub config: SupervisorConfig,
    pub config_path: PathBuf,
    pub fake_dir: PathBuf,
    pub bin_dir: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let mut config = super::config(dir.path());
        let eif = config.eif_path.clone();
        let measurements = build_eif(&eif, "v1");
        config.expected_measurements = Some(pcr_config(&measurements));
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir(&bin_dir).unwrap();
        symlink(
            env!("CARGO_BIN_EXE_fake-nitro-cli"),
            bin_dir.join("nitro-cli"),
        )
        .unwrap();
        let fake_dir = dir.path().join("fake");
        std::fs::create_dir(&fake_dir).unwrap();
        let config_path = dir.path().join("supervisor.json");
        let env = Env {
            dir,
            eif,
            measurements,
            config,
            config_path,
            fake_dir,
            bin_dir,
        };
        env.write_config();
        env
    }

    /// The enclave's runtime, connected to the running supervisor's control service (a new
    /// connection is what a new boot, or a runtime meeting a new supervisor, makes).
    pub fn runtime(&self) -> Runtime {
        Runtime::connect(super::enclave_side(self.dir.path()))
    }

    pub fn write_config(&self) {
        std::fs::write(&self.config_path, self.config.to_json()).unwrap();
    }

    /// Queues outcomes for the fake's next calls of `command`.
    pub fn script(&self, command: &str, lines: &[&str]) {
        let dir = self.fake_dir.join("script");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(command), lines.join("\n")).unwrap();
    }

    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.fake_dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    pub fn runs(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with("run-enclave"))
            .count()
    }

    /// Live enclave records of the fake (process alive).
    pub fn live_enclaves(&self) -> Vec<Value> {
        let Ok(entries) = std::fs::read_dir(self.fake_dir.join("enclaves")) else {
            return vec![];
        };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).ok()?).ok())
            .filter(|v| pid_alive(v["ProcessID"].as_u64().unwrap_or(0) as i32))
            .collect()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.config.state_dir.join("api-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn spawn(&self) -> Supervisor {
        self.spawn_with(&[])
    }

    pub fn spawn_with(&self, extra_env: &[(&str, &str)]) -> Supervisor {
        let log = self.dir.path().join(format!("supervisor-{}.log", unique()));
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_enclave-supervisor"));
        cmd.arg("--config")
            .arg(&self.config_path)
            .env("PATH", path)
            .env("FAKE_NITRO_CLI_DIR", &self.fake_dir)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut s = Supervisor {
            child,
            log,
            port: 0,
        };
        s.port = s.wait_for_port();
        s
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

pub struct Supervisor {
    pub child: Child,
    pub log: PathBuf,
    pub port: u16,
}

impl Supervisor {
    fn wait_for_port(&mut self) -> u16 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(f) = std::fs::File::open(&self.log) {
                for line in BufReader::new(f).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["message"] == "management API listening" {
                            let listen = v["listen"].as_str().unwrap();
                            return listen.rsplit(':').next().unwrap().parse().unwrap();
                        }
                    }
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the supervisor exited ({status}): {}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "no API address logged: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Response {
        http(self.port, "GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, token: &str) -> Response {
        let auth = format!("Bearer {token}");
        http(self.port, "POST", path, &[("Authorization", &auth)], b"")
    }

    /// `GET /metrics`, which must parse as OpenMetrics.
    pub fn metrics(&self) -> openmetrics::Families {
        let text = self.get("/metrics").text();
        openmetrics::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    pub fn info(&self) -> Value {
        let r = self.get("/v1/enclave-info");
        assert_eq!(r.status, 200);
        r.json()
    }

    /// Polls /v1/enclave-info until `pred` holds (deadline: a failure, not a timing check).
    pub fn wait(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let info = self.info();
            if pred(&info) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "never reached: {what}\nlast: {info:#}\nlogs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    pub fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Enclave processes of the fake outlive supervisors by design: end them.
        for e in self.live_enclaves() {
            let pid = e["ProcessID"].as_u64().unwrap_or(0) as i32;
            if pid > 0 {
                // SAFETY: the fake's enclave process, started for this test.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}
