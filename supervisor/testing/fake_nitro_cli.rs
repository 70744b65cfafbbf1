//! A stand-in `nitro-cli` for tests and laptops: the same command line, JSON and `[ Exx ]`
//! errors as nitro-cli 1.5 for `run-enclave`, `describe-enclaves` and `terminate-enclave`, with
//! enclaves simulated by background "enclave processes" (one per enclave, in its own session,
//! like nitro-cli's daemonized process). State lives in `$FAKE_NITRO_CLI_DIR`:
//!
//! - `enclaves/<n>.json` — one record per enclave; its process exits when the record goes.
//!   Killing the process (`kill -9`) leaves the record behind like nitro-cli's stale socket:
//!   listings then omit it and fail with E39.
//! - `script/<command>` — optional outcomes, one per line, the first consumed by each call:
//!   `ok`, `hang`, or a code (`E29`, `E36`, `E39`, `E26`, …). `command` is `run-enclave`,
//!   `describe-enclaves` or `terminate-enclave`.
//! - `measurements.json` — optional `{"PCR0": …}` reported instead of the EIF's own PCRs
//!   (which are computed from the EIF, as nitro-cli does).
//! - `calls.log` — every invocation's arguments.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{exit, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__enclave-process") {
        return enclave_process(Path::new(&args[1]));
    }
    let Some(dir) = std::env::var_os("FAKE_NITRO_CLI_DIR").map(PathBuf::from) else {
        fail(
            None,
            "E00",
            "Unspecified error. FAKE_NITRO_CLI_DIR is not set.",
        );
    };
    let _ = fs::create_dir_all(dir.join("enclaves"));
    if let Ok(mut log) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("calls.log"))
    {
        let _ = writeln!(log, "{}", args.join(" "));
    }
    let command = args.first().cloned().unwrap_or_default();
    let scripted = next_script(&dir, &command);
    match scripted.as_deref() {
        Some("hang") => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        Some(code) if code.starts_with('E') && command != "describe-enclaves" => fail(
            Some(&dir),
            code,
            &format!("{} Scripted failure.", title(code)),
        ),
        _ => {}
    }
    match command.as_str() {
        "run-enclave" => run(&dir, &args[1..]),
        "describe-enclaves" => describe(&dir, scripted.as_deref()),
        "terminate-enclave" => terminate(&dir, &args[1..]),
        other => fail(Some(&dir), "E14", &format!("Invalid command. `{other}`")),
    }
}

fn title(code: &str) -> &'static str {
    match code {
        "E11" => "Socket error.",
        "E19" => "File operation failure.",
        "E26" => "Insufficient memory requested.",
        "E29" => "Ioctl failure.",
        "E35" => "EIF file parsing error.",
        "E36" => "Enclave boot failure.",
        "E39" => "Enclave process connection failure.",
        _ => "Error.",
    }
}

/// Prints nitro-cli's error block and exits with the code's number.
fn fail(dir: Option<&Path>, code: &str, text: &str) -> ! {
    let n: i32 = code[1..].parse().unwrap_or(1);
    eprintln!("[ {code} ] {text}");
    eprintln!();
    eprintln!("For more details, please visit https://docs.aws.amazon.com/enclaves/latest/user/cli-errors.html#{code}");
    if let Some(dir) = dir {
        let log = dir.join("err.log");
        let _ = fs::write(
            &log,
            format!("Action: fake nitro-cli\nSubactions: {text}\n"),
        );
        eprintln!();
        eprintln!(
            "If you open a support ticket, please provide the error log found at \"{}\"",
            log.display()
        );
    }
    exit(n)
}

fn next_script(dir: &Path, command: &str) -> Option<String> {
    let path = dir.join("script").join(command);
    let text = fs::read_to_string(&path).ok()?;
    let mut lines = text.lines();
    let first = lines.next()?.trim().to_string();
    let rest: Vec<&str> = lines.collect();
    let _ = fs::write(&path, rest.join("\n"));
    (!first.is_empty()).then_some(first)
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

fn records(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out: Vec<(PathBuf, Value)> = fs::read_dir(dir.join("enclaves"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let v = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
            Some((e.path(), v))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn pid_of(v: &Value) -> u32 {
    v["ProcessID"].as_u64().unwrap_or(0) as u32
}

fn run(dir: &Path, args: &[String]) {
    let (Some(eif), Some(cpus), Some(memory), Some(cid), Some(name)) = (
        arg(args, "--eif-path"),
        arg(args, "--cpu-count"),
        arg(args, "--memory"),
        arg(args, "--enclave-cid"),
        arg(args, "--enclave-name"),
    ) else {
        fail(Some(dir), "E01", "Missing argument.");
    };
    let (Ok(cpus), Ok(memory), Ok(cid)) = (
        cpus.parse::<u64>(),
        memory.parse::<u64>(),
        cid.parse::<u64>(),
    ) else {
        fail(Some(dir), "E03", "Invalid argument.");
    };
    let debug = args.iter().any(|a| a == "--debug-mode");
    if !Path::new(eif).exists() {
        fail(
            Some(dir),
            "E19",
            &format!("File operation failure. Failed to open the EIF file: {eif}"),
        );
    }
    let measurements: Value = match fs::read(dir.join("measurements.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => match nitro_eif::describe(Path::new(eif)) {
            Ok(d) => json!({
                "HashAlgorithm": "Sha384 { ... }",
                "PCR0": d.measurements.pcr0.to_hex(),
                "PCR1": d.measurements.pcr1.to_hex(),
                "PCR2": d.measurements.pcr2.to_hex(),
            }),
            Err(e) => fail(Some(dir), "E35", &format!("EIF file parsing error. {e}")),
        },
    };
    for (_, r) in records(dir) {
        if r["EnclaveCID"].as_u64() == Some(cid) && alive(pid_of(&r)) {
            fail(
                Some(dir),
                "E29",
                "Ioctl failure. The enclave CID is already in use.",
            );
        }
    }
    eprintln!("Start allocating memory...");
    let counter = dir.join("next-slot");
    let slot: u64 = fs::read_to_string(&counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    let _ = fs::write(&counter, (slot + 1).to_string());
    let record_path = dir.join("enclaves").join(format!("{slot:04}.json"));
    let id = format!(
        "i-0fake{slot:012x}-enc{:016x}",
        u64::from(std::process::id()) * 7919 + slot
    );
    let mut child =
        Command::new(std::env::current_exe().unwrap_or_else(|_| "fake-nitro-cli".into()));
    child
        .arg("__enclave-process")
        .arg(&record_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let child = match child.spawn() {
        Ok(c) => c,
        Err(e) => fail(Some(dir), "E05", &format!("Process spawn failure. {e}")),
    };
    let cpu_ids: Vec<u64> = (1..=cpus).collect();
    let record = json!({
        "EnclaveName": name,
        "EnclaveID": id,
        "ProcessID": child.id(),
        "EnclaveCID": cid,
        "NumberOfCPUs": cpus,
        "CPUIDs": cpu_ids,
        "MemoryMiB": memory,
        "State": "RUNNING",
        "Flags": if debug { "DEBUG_MODE" } else { "NONE" },
        "Measurements": measurements,
    });
    let tmp = record_path.with_extension("tmp");
    let _ = fs::write(&tmp, serde_json::to_vec_pretty(&record).unwrap_or_default());
    let _ = fs::rename(&tmp, &record_path);
    eprintln!(
        "Started enclave with enclave-cid: {cid}, memory: {memory} MiB, cpu-ids: {cpu_ids:?}"
    );
    // run-enclave prints the record without State, Flags and Measurements.
    let mut info = record;
    if let Some(o) = info.as_object_mut() {
        for k in ["State", "Flags", "Measurements"] {
            o.remove(k);
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&info).unwrap_or_default()
    );
}

fn describe(dir: &Path, scripted: Option<&str>) {
    let mut listed = Vec::new();
    let mut failed = 0;
    for (_, r) in records(dir) {
        if alive(pid_of(&r)) {
            listed.push(r);
        } else {
            failed += 1;
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&listed).unwrap_or_default()
    );
    match scripted {
        Some(code) if code.starts_with('E') => fail(
            Some(dir),
            code,
            &format!("{} Scripted failure.", title(code)),
        ),
        _ if failed > 0 => {
            eprintln!("Failed connections: {failed}");
            fail(Some(dir), "E39", "Enclave process connection failure. Failed to connect to at least one enclave process.")
        }
        _ => {}
    }
}

fn terminate(dir: &Path, args: &[String]) {
    let Some(id) = arg(args, "--enclave-id") else {
        fail(Some(dir), "E01", "Missing argument.");
    };
    let Some((path, record)) = records(dir).into_iter().find(|(_, r)| r["EnclaveID"] == id) else {
        fail(Some(dir), "E11", "Socket error. Failed to connect to specific enclave process: Os { code: 2, kind: NotFound, message: \"No such file or directory\" }");
    };
    let pid = pid_of(&record);
    if !alive(pid) {
        fail(Some(dir), "E11", "Socket error. Failed to connect to specific enclave process: Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }");
    }
    let _ = fs::remove_file(&path);
    // SAFETY: plain signal delivery to the enclave process we started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("Successfully terminated enclave {id}.");
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "EnclaveName": record["EnclaveName"],
            "EnclaveID": id,
            "Terminated": true,
        }))
        .unwrap_or_default()
    );
}

/// The enclave: lives until its record disappears (terminated, or "exited" by a test).
fn enclave_process(record: &Path) {
    // Wait for `run` to write the record, then watch it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !record.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    while record.exists() {
        std::thread::sleep(Duration::from_millis(25));
    }
}
