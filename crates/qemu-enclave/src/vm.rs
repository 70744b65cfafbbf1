//! One boot of an EIF: the vsock backend and heartbeat ([`Launch`]), then QEMU ([`Vm`]), then
//! what the boot showed ([`VmExit`]). Dropping any of them stops every process it started.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::accel::Accel;
use crate::console::{Console, ConsoleFailure};
use crate::stack::VmStack;
use crate::vsock::{Heartbeat, VsockHost};

/// Kernel parameters a local boot needs and Nitro does not, passed with `-append` (after the
/// EIF's cmdline, outside every PCR; the last of a repeated parameter wins):
/// - `reboot=t`: without an i8042 in QEMU's microvm, AWS's `reboot=k` loops through the BIOS;
///   a triple fault ends the VM (`-no-reboot`).
/// - `tsc_early_khz=2500000`: TCG on a busy host otherwise hangs calibrating the TSC.
/// - `panic=1`: a failed init ends the VM after 1 s instead of AWS's 30 s.
pub const TEST_KNOBS: [&str; 3] = ["reboot=t", "tsc_early_khz=2500000", "panic=1"];

/// A Nitro-shaped module id (`-M nitro-enclave,id=`): the NSM reports it as `module_id`.
pub const DEFAULT_MODULE_ID: &str = "i-0123456789abcdef0-enc0123456789abcdef";

/// How to run one EIF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub eif: PathBuf,
    /// Sockets and logs (`vhost.socket`, `vsock`, `vsock_PORT`, `console.log`, `qemu.log`,
    /// `vhost-device-vsock.log`); created if missing.
    pub workdir: PathBuf,
    pub module_id: String,
    /// The enclave's own CID (Nitro assigns 4 and up; nitro-cli's default is 16).
    pub guest_cid: u32,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
    /// Extra kernel parameters, never part of the measured cmdline ([`TEST_KNOBS`] by default).
    pub append: Vec<String>,
    /// Copy console lines to stderr as they arrive.
    pub echo_console: bool,
}

impl VmConfig {
    /// Defaults: [`DEFAULT_MODULE_ID`], CID 16, 512 MiB, 2 vCPUs, [`Accel::detect`],
    /// [`TEST_KNOBS`].
    pub fn new(eif: impl Into<PathBuf>, workdir: impl Into<PathBuf>) -> Self {
        VmConfig {
            eif: eif.into(),
            workdir: workdir.into(),
            module_id: DEFAULT_MODULE_ID.into(),
            guest_cid: 16,
            memory_mib: 512,
            cpus: 2,
            accel: Accel::detect(),
            append: TEST_KNOBS.iter().map(|k| k.to_string()).collect(),
            echo_console: false,
        }
    }
}

/// Why a VM could not be run, or what went wrong in it.
#[derive(Debug, Error)]
pub enum VmError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("vhost-device-vsock did not create {socket} within {timeout:?}; its log:\n{log}")]
    VsockBackend {
        socket: PathBuf,
        timeout: Duration,
        log: String,
    },
    #[error("the VM did not exit within {after:?}; console tail:\n{console}\nQEMU:\n{qemu}")]
    Timeout {
        after: Duration,
        console: String,
        qemu: String,
    },
    #[error("the enclave failed ({failure:?}): {line}\nconsole tail:\n{console}")]
    Failed {
        failure: ConsoleFailure,
        line: String,
        console: String,
    },
    #[error("AWS init never sent its heartbeat; console tail:\n{console}\nQEMU:\n{qemu}")]
    NoHeartbeat { console: String, qemu: String },
    #[error("QEMU exited with {status}:\n{qemu}")]
    Qemu { status: ExitStatus, qemu: String },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> VmError {
    let context = context.into();
    move |source| VmError::Io { context, source }
}

/// A child process killed and reaped when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The backend half of a boot: vhost-device-vsock runs and the heartbeat is answered; bind the
/// host ports the enclave will dial ([`Launch::vsock`]) before [`Launch::boot`].
pub struct Launch {
    qemu: PathBuf,
    config: VmConfig,
    vsock: VsockHost,
    heartbeat: Heartbeat,
    /// vhost-device-vsock, stopped when the launch (or the VM that owns it) is dropped.
    _backend: Process,
}

/// How long vhost-device-vsock may take to create its socket.
const BACKEND_START: Duration = Duration::from_secs(10);

impl Launch {
    /// Starts vhost-device-vsock for `config` and the heartbeat listener.
    pub fn new(stack: &VmStack, config: VmConfig) -> Result<Self, VmError> {
        let dir = &config.workdir;
        std::fs::create_dir_all(dir).map_err(io_err(dir.display().to_string()))?;
        let socket = dir.join("vhost.socket");
        let vsock = VsockHost::new(dir.join("vsock"));
        for stale in [&socket, &vsock.uds().to_path_buf()] {
            let _ = std::fs::remove_file(stale);
        }
        let heartbeat = Heartbeat::answer(&vsock).map_err(io_err("binding the heartbeat port"))?;
        let log_path = dir.join("vhost-device-vsock.log");
        let log = File::create(&log_path).map_err(io_err(log_path.display().to_string()))?;
        let child = Command::new(&stack.vhost_device_vsock)
            .arg("--guest-cid")
            .arg(config.guest_cid.to_string())
            .arg("--socket")
            .arg(&socket)
            .arg("--uds-path")
            .arg(vsock.uds())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err("vhost-device-vsock log"))?)
            .stderr(log)
            .spawn()
            .map_err(io_err(stack.vhost_device_vsock.display().to_string()))?;
        let mut backend = Process(child);
        wait_for_socket(&mut backend, &socket, &log_path)?;
        Ok(Launch {
            qemu: stack.qemu.clone(),
            config,
            vsock,
            heartbeat,
            _backend: backend,
        })
    }

    /// The host end of the enclave's vsock.
    pub fn vsock(&self) -> &VsockHost {
        &self.vsock
    }

    /// The QEMU command line this launch boots with.
    pub fn qemu_command(&self) -> Command {
        let c = &self.config;
        let mut cmd = Command::new(&self.qemu);
        cmd.arg("-M")
            .arg(format!("nitro-enclave,vsock=vsock0,id={}", c.module_id))
            .args(c.accel.args())
            .arg("-kernel")
            .arg(&c.eif)
            .args(["-m", &format!("{}M", c.memory_mib)])
            .args(["-smp", &c.cpus.to_string()])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .arg("-no-reboot")
            .arg("-chardev")
            .arg(format!(
                "socket,id=vsock0,path={}",
                c.workdir.join("vhost.socket").display()
            ));
        if !c.append.is_empty() {
            cmd.arg("-append").arg(c.append.join(" "));
        }
        cmd
    }

    /// Starts QEMU.
    pub fn boot(self) -> Result<Vm, VmError> {
        let dir = &self.config.workdir;
        let qemu_log = dir.join("qemu.log");
        let stderr = File::create(&qemu_log).map_err(io_err(qemu_log.display().to_string()))?;
        let console_log = dir.join("console.log");
        let log = File::create(&console_log).map_err(io_err(console_log.display().to_string()))?;
        let started = Instant::now();
        let mut child = self
            .qemu_command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(io_err(self.qemu.display().to_string()))?;
        let stdout = child.stdout.take().ok_or_else(|| VmError::Io {
            context: "QEMU's serial console".into(),
            source: io::Error::other("no stdout pipe"),
        })?;
        let (console, reader) = Console::capture(stdout, log, self.config.echo_console);
        Ok(Vm {
            qemu: Process(child),
            qemu_log,
            console,
            reader: Some(reader),
            started,
            launch: self,
        })
    }
}

fn wait_for_socket(backend: &mut Process, socket: &Path, log: &Path) -> Result<(), VmError> {
    let deadline = Instant::now() + BACKEND_START;
    loop {
        if socket.exists() {
            return Ok(());
        }
        let exited = backend.0.try_wait().map_err(io_err("vhost-device-vsock"))?;
        if exited.is_some() || Instant::now() >= deadline {
            return Err(VmError::VsockBackend {
                socket: socket.to_path_buf(),
                timeout: BACKEND_START,
                log: std::fs::read_to_string(log).unwrap_or_default(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running VM.
pub struct Vm {
    qemu: Process,
    qemu_log: PathBuf,
    console: Console,
    reader: Option<JoinHandle<()>>,
    started: Instant,
    launch: Launch,
}

impl Vm {
    pub fn console(&self) -> &Console {
        &self.console
    }

    pub fn vsock(&self) -> &VsockHost {
        &self.launch.vsock
    }

    /// QEMU's process id (what a driver's `describe` reports).
    pub fn pid(&self) -> u32 {
        self.qemu.0.id()
    }

    /// When AWS init's heartbeat was answered, counted from QEMU's start.
    pub fn heartbeat(&self) -> Option<Duration> {
        self.launch
            .heartbeat
            .received()
            .map(|t| t.saturating_duration_since(self.started))
    }

    /// QEMU's exit status once it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, VmError> {
        self.qemu.0.try_wait().map_err(io_err("QEMU"))
    }

    /// Waits up to `timeout` for the VM to end (init reboots when its command exits), killing
    /// it on timeout.
    pub fn wait(mut self, timeout: Duration) -> Result<VmExit, VmError> {
        let deadline = self.started + timeout;
        let status = loop {
            if let Some(status) = self.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                self.terminate();
                return Err(VmError::Timeout {
                    after: timeout,
                    console: self.console.tail(30),
                    qemu: self.qemu_stderr(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Ok(VmExit {
            status,
            elapsed,
            heartbeat: self.heartbeat(),
            failure: self.console.failure(),
            console: self.console.clone(),
            qemu_stderr: self.qemu_stderr(),
        })
    }

    /// Kills QEMU (the enclave ends as on `nitro-cli terminate-enclave`: no shutdown inside).
    pub fn terminate(&mut self) {
        let _ = self.qemu.0.kill();
        let _ = self.qemu.0.wait();
    }

    fn qemu_stderr(&self) -> String {
        std::fs::read_to_string(&self.qemu_log).unwrap_or_default()
    }
}

/// What one boot showed.
#[derive(Clone)]
pub struct VmExit {
    pub status: ExitStatus,
    /// From QEMU's start to its exit.
    pub elapsed: Duration,
    /// When init's heartbeat was answered, from QEMU's start.
    pub heartbeat: Option<Duration>,
    /// The first failure marker on the console.
    pub failure: Option<(ConsoleFailure, String)>,
    pub console: Console,
    pub qemu_stderr: String,
}

impl VmExit {
    /// Ok when QEMU exited 0, init's heartbeat came and the console shows no failure marker.
    pub fn ensure_clean(&self) -> Result<(), VmError> {
        if let Some((failure, line)) = &self.failure {
            return Err(VmError::Failed {
                failure: *failure,
                line: line.clone(),
                console: self.console.tail(30),
            });
        }
        if self.heartbeat.is_none() {
            return Err(VmError::NoHeartbeat {
                console: self.console.tail(30),
                qemu: self.qemu_stderr.clone(),
            });
        }
        if !self.status.success() {
            return Err(VmError::Qemu {
                status: self.status,
                qemu: self.qemu_stderr.clone(),
            });
        }
        Ok(())
    }
}
