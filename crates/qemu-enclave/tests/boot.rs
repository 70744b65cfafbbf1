//! Boots a real EIF in QEMU's nitro-enclave machine: built by our EIF library from the real
//! blobs (kernel built with AWS's config, AWS's init, nsm.ko, AWS's cmdline) and a rootfs
//! holding a static guest program that attests through /dev/nsm for a nonce we choose. The
//! document must carry the PCRs our build computed. Needs the VM stack
//! (`scripts/test-tools/vm-*.sh`); when it is absent the test fails, unless
//! `NP_VM_TESTS_MAY_SKIP=1` allows skipping. `NP_VM_KEEP_WORKDIR=1` keeps the EIF, console log
//! and document for inspection.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use nitro_attestation::{verify, verify_qemu_unsigned, Policy, UNSIGNED_QEMU_VERDICT};
use nitro_eif::format::Arch;
use nitro_eif::image::{Command as ImageCommand, ImageSource};
use nitro_eif::{build_eif, BuildOutput, BuildSpec, ImageSpec, NoProgress, DEFAULT_MAX_UNPACKED};
use qemu_enclave::{Launch, VmConfig, VmStack, PARENT_CID};

const PROBE_PORT: u32 = 7000;
const GUEST_TARGET: &str = "x86_64-unknown-linux-musl";
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The stack, or `None` when it is absent and skipping was explicitly allowed.
fn stack_or_skip() -> Option<VmStack> {
    match VmStack::locate() {
        Ok(stack) => Some(stack),
        Err(e) if std::env::var("NP_VM_TESTS_MAY_SKIP").as_deref() == Ok("1") => {
            eprintln!(
                "\n!!!!!!!! SKIPPED: QEMU boot test: the VM stack is not installed ({e}).\n\
                 !!!!!!!! NP_VM_TESTS_MAY_SKIP=1 allows this; scripts/test.sh installs the stack.\n"
            );
            None
        }
        Err(e) => {
            panic!("{e}\n(set NP_VM_TESTS_MAY_SKIP=1 to skip VM tests where no stack is installed)")
        }
    }
}

/// The cargo target dir this test was built in (`…/debug/deps/boot-…` → `…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// Builds the guest program static for musl, in a target dir of its own (the outer cargo may
/// still hold the workspace's).
fn build_guest_probe() -> PathBuf {
    let target = target_dir().join("qemu-guest");
    let started = Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "--locked",
            "--release",
            "-p",
            "qemu-guest-probe",
        ])
        .args(["--target", GUEST_TARGET])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building qemu-guest-probe for {GUEST_TARGET} failed"
    );
    eprintln!("guest probe built in {:.1?}", started.elapsed());
    target.join(GUEST_TARGET).join("release/qemu-guest-probe")
}

/// An EIF whose command is the probe, from the stack's real blobs (pinned by their listing).
fn build_test_eif(stack: &VmStack, probe: &Path, dir: &Path) -> (PathBuf, BuildOutput) {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("rootfs");
    std::fs::copy(probe, rootfs.join("probe")).expect("copy probe");
    std::fs::set_permissions(rootfs.join("probe"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let blobs = &stack.blobs;
    let listing = blobs.sha384().expect("blobs listing");
    let pinned_sha384 = BTreeMap::from([
        ("kernel".to_owned(), listing["bzImage"].clone()),
        ("init".to_owned(), listing["init"].clone()),
        ("nsm.ko".to_owned(), listing["nsm.ko"].clone()),
    ]);
    let spec = BuildSpec {
        name: "qemu-boot-test".into(),
        version: Some("1".into()),
        arch: Arch::X86_64,
        kernel: blobs.kernel(),
        cmdline: std::fs::read_to_string(blobs.cmdline()).expect("cmdline"),
        init: blobs.init(),
        nsm_ko: blobs.nsm_ko(),
        image: ImageSpec {
            source: ImageSource::RootfsDir(rootfs),
            reference: None,
            platform: None,
            digest: None,
            extra_files: vec![],
            command: ImageCommand {
                prefix: vec![],
                entrypoint: Some(vec!["/probe".into(), PROBE_PORT.to_string()]),
                cmd: None,
                env: vec![],
            },
            source_date_epoch: 0,
            max_unpacked: DEFAULT_MAX_UNPACKED,
        },
        signing: None,
        pinned_sha384,
    };
    let eif = dir.join("boot-test.eif");
    let output = build_eif(&spec, &eif, &NoProgress).expect("build the test EIF");
    (eif, output)
}

/// The host side of the probe's exchange: sends the nonce and user data, returns the document.
fn serve_probe(listener: UnixListener, nonce: Vec<u8>, user_data: Vec<u8>) -> io::Result<Vec<u8>> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    for field in [&nonce, &user_data] {
        stream.write_all(&(field.len() as u32).to_be_bytes())?;
        stream.write_all(field)?;
    }
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut document = vec![0; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut document)?;
    Ok(document)
}

#[test]
fn eif_boots_with_aws_init_and_attests_with_our_pcrs() {
    let Some(stack) = stack_or_skip() else {
        return;
    };
    let probe = build_guest_probe();
    let dir = tempfile::tempdir().expect("tempdir");
    let (eif, build) = build_test_eif(&stack, &probe, dir.path());

    let config = VmConfig::new(&eif, dir.path().join("vm"));
    let module_id = config.module_id.clone();
    eprintln!(
        "booting {} ({} bytes) under {:?}",
        eif.display(),
        build.eif_size,
        config.accel
    );
    let launch = Launch::new(&stack, config).expect("start vhost-device-vsock");
    let listener = launch
        .vsock()
        .listen(PROBE_PORT)
        .expect("bind the probe port");
    let nonce: Vec<u8> = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
        .to_be_bytes()
        .to_vec();
    let user_data = b"qemu-enclave boot test".to_vec();
    let (n, u) = (nonce.clone(), user_data.clone());
    let host = std::thread::spawn(move || serve_probe(listener, n, u));

    let vm = launch.boot().expect("start QEMU");
    let exit = vm.wait(BOOT_TIMEOUT).expect("the VM ends");
    eprintln!(
        "boot: QEMU exited {} after {:.2?}; init's heartbeat (CID {PARENT_CID}, port 9000) at {:?}",
        exit.status, exit.elapsed, exit.heartbeat
    );
    exit.ensure_clean().expect("a clean boot");
    assert!(
        exit.console.text().contains("qemu-guest-probe: sent a"),
        "the probe did not report success:\n{}",
        exit.console.text()
    );
    let document = host
        .join()
        .expect("host thread")
        .expect("the probe's document");
    std::fs::write(dir.path().join("attestation.cose"), &document).expect("keep the document");

    let m = &build.measurements;
    let policy = Policy {
        expected_pcrs: BTreeMap::from([
            (0, m.pcr0.0.to_vec()),
            (1, m.pcr1.0.to_vec()),
            (2, m.pcr2.0.to_vec()),
        ]),
        nonce: Some(nonce),
        user_data: Some(user_data),
        max_age: Some(Duration::from_secs(600)),
        ..Policy::default()
    };
    let accepted = verify_qemu_unsigned(&document, &policy, &module_id, SystemTime::now())
        .expect("QEMU's document carries our PCRs, nonce and user data");
    assert_eq!(accepted.verdict(), UNSIGNED_QEMU_VERDICT);
    assert!(
        verify(&document, &policy, SystemTime::now()).is_err(),
        "a QEMU document must never pass the real verification"
    );
    eprintln!("{accepted}: PCR0 {}", m.pcr0.to_hex());
    if std::env::var_os("NP_VM_KEEP_WORKDIR").is_some() {
        eprintln!(
            "kept the EIF, console and document in {}",
            dir.keep().display()
        );
    }
}
