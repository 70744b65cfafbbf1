//! The real driver against stand-in `nitro-cli` shell scripts: exit statuses, JSON on failure,
//! `[ Exx ]` classification, time bounds and serialization.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nitro_cli_driver::*;

const TIMEOUTS: Timeouts = Timeouts {
    describe: Duration::from_secs(5),
    terminate: Duration::from_secs(5),
    run: Some(Duration::from_secs(5)),
};

const ENTRY: &str = r#"{"EnclaveName":"demo","EnclaveID":"i-1-enc2","ProcessID":7,"EnclaveCID":16,"NumberOfCPUs":2,"CPUIDs":[1,3],"MemoryMiB":512,"State":"RUNNING","Flags":"NONE","Measurements":{"HashAlgorithm":"Sha384 { ... }","PCR0":"aa","PCR1":"bb","PCR2":"cc"}}"#;

/// A stand-in nitro-cli: `body` is a POSIX shell script; it records its arguments.
fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("nitro-cli");
    let args = dir.join("args");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n{body}\n", args.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn spec(debug: bool) -> RunSpec {
    RunSpec {
        name: "demo".into(),
        eif_path: "/srv/demo.eif".into(),
        cpu_count: 2,
        memory_mib: 512,
        cid: 16,
        debug,
    }
}

#[tokio::test]
async fn describe_keeps_the_listing_of_a_failed_call() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("err.log");
    std::fs::write(&log, "backtrace: stale socket /run/nitro_enclaves/x.sock").unwrap();
    let cli = NitroCli::with_program(
        script(
            dir.path(),
            &format!(
                "echo '[{ENTRY}]'\necho 'Failed connections: 1' >&2\necho '[ E39 ] Enclave process connection failure.' >&2\necho 'If you open a support ticket, please provide the error log found at \"{}\"' >&2\nexit 39",
                log.display()
            ),
        ),
        TIMEOUTS,
    );
    match cli.describe().await {
        Described::Partial(v, e) => {
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].measurements["PCR0"], "aa");
            assert_eq!(e.codes, ["E39"]);
            assert_eq!(e.exit_status, Some(39));
            assert_eq!(e.kind, ErrorKind::Transient);
            assert!(e.log_excerpt.unwrap().contains("stale socket"));
            assert!(e.stderr_tail.contains("Failed connections: 1"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn describe_complete_empty_and_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let cli = NitroCli::with_program(script(dir.path(), "echo '[]'"), TIMEOUTS);
    assert!(matches!(cli.describe().await, Described::Complete(v) if v.is_empty()));
    let cli = NitroCli::with_program(script(dir.path(), "echo 'Segmentation fault'"), TIMEOUTS);
    match cli.describe().await {
        Described::Failed(e) => assert_eq!(e.kind, ErrorKind::Protocol),
        other => panic!("{other:?}"),
    }
    let cli = NitroCli::with_program(script(dir.path(), "exit 3"), TIMEOUTS);
    match cli.describe().await {
        Described::Failed(e) => {
            assert_eq!((e.kind, e.exit_status), (ErrorKind::Transient, Some(3)));
            assert_eq!(e.label(), "exit");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn run_passes_the_spec_and_classifies_failures() {
    let dir = tempfile::tempdir().unwrap();
    let ok = format!("echo 'Start allocating memory...' >&2\necho '{ENTRY}'");
    let cli = NitroCli::with_program(script(dir.path(), &ok), TIMEOUTS);
    let started = cli.run(&spec(false)).await.unwrap();
    assert_eq!((started.id.0.as_str(), started.process_id), ("i-1-enc2", 7));
    cli.run(&spec(true)).await.unwrap();
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    let lines: Vec<&str> = args.lines().collect();
    assert_eq!(
        lines[0],
        "run-enclave --eif-path /srv/demo.eif --cpu-count 2 --memory 512 --enclave-cid 16 --enclave-name demo"
    );
    assert!(lines[1].ends_with("--enclave-name demo --debug-mode"));

    for (code, kind) in [
        ("E29", ErrorKind::Transient),
        ("E36", ErrorKind::Transient),
        ("E26", ErrorKind::Config),
        ("E19", ErrorKind::Config),
    ] {
        let n: i32 = code[1..].parse().unwrap();
        let body =
            format!("echo '[ {code} ] it failed.' >&2\necho '[ E39 ] follow-up' >&2\nexit {n}");
        let cli = NitroCli::with_program(script(dir.path(), &body), TIMEOUTS);
        let e = cli.run(&spec(false)).await.unwrap_err();
        assert_eq!(e.kind, kind, "{code}");
        assert_eq!(e.codes, [code, "E39"], "root cause first");
        assert_eq!(e.label(), code);
        assert_eq!(e.message, "it failed.");
    }
}

#[tokio::test]
async fn terminate_treats_a_missing_enclave_as_gone() {
    let dir = tempfile::tempdir().unwrap();
    let id = EnclaveId("i-1-enc2".into());
    let ok = r#"echo '{"EnclaveID":"i-1-enc2","Terminated":true}'"#;
    let cli = NitroCli::with_program(script(dir.path(), ok), TIMEOUTS);
    assert_eq!(cli.terminate(&id).await.unwrap(), Terminated::Terminated);
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(args.trim(), "terminate-enclave --enclave-id i-1-enc2");

    let gone = "echo '[ E11 ] Socket error. Failed to connect to specific enclave process: Os { code: 2, kind: NotFound, message: \"No such file or directory\" }' >&2\nexit 11";
    let cli = NitroCli::with_program(script(dir.path(), gone), TIMEOUTS);
    assert_eq!(cli.terminate(&id).await.unwrap(), Terminated::AlreadyGone);

    let denied =
        "echo '[ E11 ] Socket error. Os { code: 13, kind: PermissionDenied }' >&2\nexit 11";
    let cli = NitroCli::with_program(script(dir.path(), denied), TIMEOUTS);
    assert_eq!(
        cli.terminate(&id).await.unwrap_err().kind,
        ErrorKind::Transient
    );
}

#[tokio::test]
async fn a_hanging_call_is_killed_at_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let body = format!("echo $$ > '{}'\nexec sleep 30", pidfile.display());
    let cli = NitroCli::with_program(
        script(dir.path(), &body),
        Timeouts {
            describe: Duration::from_millis(300),
            ..TIMEOUTS
        },
    );
    let started = Instant::now();
    match cli.describe().await {
        Described::Failed(e) => {
            assert!(e.timed_out);
            assert_eq!(e.label(), "timeout");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The kill is asynchronous: wait (bounded) for the process to be reaped.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!pid_alive(pid), "the timed-out nitro-cli was not killed");
}

#[tokio::test]
async fn calls_are_serialized() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    let overlap = dir.path().join("overlap");
    // mkdir is atomic: it fails when another call is inside.
    let body = format!(
        "mkdir '{l}' 2>/dev/null || touch '{o}'\nsleep 0.2\nrmdir '{l}'\necho '[]'",
        l = lock.display(),
        o = overlap.display()
    );
    let cli = NitroCli::with_program(script(dir.path(), &body), TIMEOUTS);
    let id = EnclaveId("x".into());
    let (a, b, _) = tokio::join!(cli.describe(), cli.describe(), cli.terminate(&id));
    assert!(matches!(a, Described::Complete(_)));
    assert!(matches!(b, Described::Complete(_)));
    assert!(!overlap.exists(), "two nitro-cli calls ran at once");
    let calls = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(calls.lines().count(), 3);
}

#[tokio::test]
async fn a_missing_nitro_cli_is_unavailable() {
    let cli = NitroCli::with_program("/nonexistent/nitro-cli", TIMEOUTS);
    let e = cli.run(&spec(false)).await.unwrap_err();
    assert_eq!((e.kind, e.label()), (ErrorKind::Unavailable, "spawn"));
    assert!(!cli.process_alive(u32::MAX));
    assert!(cli.process_alive(std::process::id()));
}
