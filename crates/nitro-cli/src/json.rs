//! nitro-cli's JSON (stdout) and error lines (stderr). The JSON is parsed whatever the exit
//! status: `describe-enclaves` prints the enclaves it reached before failing with E39.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::types::{Enclave, EnclaveId, EnclaveState, Started};

/// The fields `run-enclave` and `describe-enclaves` share (nitro-cli 1.5 `EnclaveRunInfo`).
#[derive(Debug, Deserialize)]
struct Common {
    #[serde(rename = "EnclaveName")]
    name: Option<String>,
    #[serde(rename = "EnclaveID")]
    id: String,
    #[serde(rename = "ProcessID")]
    process_id: u32,
    #[serde(rename = "EnclaveCID")]
    cid: u64,
    #[serde(rename = "NumberOfCPUs")]
    cpu_count: u64,
    #[serde(rename = "CPUIDs", default)]
    cpu_ids: Vec<u32>,
    #[serde(rename = "MemoryMiB")]
    memory_mib: u64,
}

/// `describe-enclaves` entries (`EnclaveDescribeInfo`); unknown fields ignored.
#[derive(Debug, Deserialize)]
struct DescribeEntry {
    #[serde(flatten)]
    common: Common,
    #[serde(rename = "State")]
    state: String,
    #[serde(rename = "Flags", default)]
    flags: String,
    #[serde(rename = "Measurements", default)]
    measurements: BTreeMap<String, serde_json::Value>,
}

/// The first JSON value on stdout (anything before it, such as stray progress lines, skipped).
fn first_json<T: for<'de> Deserialize<'de>>(stdout: &str, open: char) -> Option<T> {
    let start = stdout.find(open)?;
    let mut values = serde_json::Deserializer::from_str(&stdout[start..]).into_iter::<T>();
    values.next()?.ok()
}

pub fn parse_describe(stdout: &str) -> Option<Vec<Enclave>> {
    let entries: Vec<DescribeEntry> = first_json(stdout, '[')?;
    Some(
        entries
            .into_iter()
            .map(|e| Enclave {
                name: e.common.name,
                id: EnclaveId(e.common.id),
                process_id: e.common.process_id,
                cid: e.common.cid,
                cpu_count: e.common.cpu_count,
                cpu_ids: e.common.cpu_ids,
                memory_mib: e.common.memory_mib,
                state: EnclaveState::parse(&e.state),
                debug: e.flags.split(['|', ',', ' ']).any(|f| f == "DEBUG_MODE"),
                measurements: e
                    .measurements
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("PCR"))
                    .filter_map(|(k, v)| Some((k, v.as_str()?.to_ascii_lowercase())))
                    .collect(),
            })
            .collect(),
    )
}

pub fn parse_run(stdout: &str) -> Option<Started> {
    let e: Common = first_json(stdout, '{')?;
    Some(Started {
        name: e.name.unwrap_or_default(),
        id: EnclaveId(e.id),
        process_id: e.process_id,
        cid: e.cid,
        cpu_count: e.cpu_count,
        cpu_ids: e.cpu_ids,
        memory_mib: e.memory_mib,
    })
}

/// `terminate-enclave`'s `{"EnclaveID": …, "Terminated": true}`.
pub fn parse_terminated(stdout: &str) -> Option<bool> {
    #[derive(Deserialize)]
    struct T {
        #[serde(rename = "Terminated")]
        terminated: bool,
    }
    first_json::<T>(stdout, '{').map(|t| t.terminated)
}

/// Every `[ Exx ] text` line on stderr, in order.
pub fn error_lines(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("[ ")?;
            let (code, text) = rest.split_once(" ]")?;
            let valid = code.len() == 3
                && code.starts_with('E')
                && code[1..].bytes().all(|b| b.is_ascii_digit());
            valid.then(|| (code.to_string(), text.trim().to_string()))
        })
        .collect()
}

/// The log file nitro-cli names for a failure: `... error log found at "<path>"`.
pub fn error_log_path(stderr: &str) -> Option<&str> {
    let (_, rest) = stderr.split_once("error log found at \"")?;
    rest.split_once('"').map(|(path, _)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCRIBE: &str = r#"[
  {
    "EnclaveName": "demo",
    "EnclaveID": "i-0a1b2c3d4e5f60708-enc17aab64b3f7703d",
    "ProcessID": 4242,
    "EnclaveCID": 16,
    "NumberOfCPUs": 2,
    "CPUIDs": [1, 3],
    "MemoryMiB": 1024,
    "State": "RUNNING",
    "Flags": "DEBUG_MODE",
    "Measurements": {
      "HashAlgorithm": "Sha384 { ... }",
      "PCR0": "AAAA",
      "PCR1": "bbbb",
      "PCR2": "cccc"
    },
    "SomethingNew": 1
  }
]
"#;

    #[test]
    fn describe_entries_with_unknown_fields_and_measurements() {
        let v = parse_describe(DESCRIBE).unwrap();
        assert_eq!(v.len(), 1);
        let e = &v[0];
        assert_eq!(e.name.as_deref(), Some("demo"));
        assert_eq!(e.process_id, 4242);
        assert_eq!(e.state, EnclaveState::Running);
        assert!(e.debug);
        assert_eq!(e.cpu_ids, vec![1, 3]);
        assert_eq!(e.measurements.len(), 3, "HashAlgorithm dropped");
        assert_eq!(e.measurements["PCR0"], "aaaa", "lowercased");
        assert_eq!(parse_describe("[]\n"), Some(vec![]));
        assert_eq!(parse_describe("not json"), None);
        assert_eq!(parse_describe("[{\"EnclaveID\": 3}]"), None);
    }

    #[test]
    fn run_output_after_stray_lines() {
        let out = "Start allocating memory...\n{\"EnclaveName\":\"demo\",\"EnclaveID\":\"i-1-enc2\",\"ProcessID\":7,\"EnclaveCID\":16,\"NumberOfCPUs\":2,\"CPUIDs\":[1,3],\"MemoryMiB\":512}\n";
        let s = parse_run(out).unwrap();
        assert_eq!(s.id.0, "i-1-enc2");
        assert_eq!(s.memory_mib, 512);
        assert_eq!(parse_run(""), None);
        assert_eq!(
            parse_terminated("{\"EnclaveID\":\"x\",\"Terminated\":true}"),
            Some(true)
        );
    }

    #[test]
    fn error_lines_in_order_and_log_path() {
        let err = "[ E29 ] Ioctl failure. Ioctl failed.\nFailed connections: 1\n[ E39 ] Enclave process connection failure. Failed to connect to at least one enclave process.\n\nFor more details, please visit https://docs.aws.amazon.com/enclaves/latest/user/cli-errors.html#E39\n\nIf you open a support ticket, please provide the error log found at \"/var/log/nitro_enclaves/err2024-01-01T00:00:00.log\"\n[ Ebad ] nope\n";
        let lines = error_lines(err);
        assert_eq!(
            lines.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
            ["E29", "E39"]
        );
        assert!(lines[0].1.starts_with("Ioctl failure"));
        assert_eq!(
            error_log_path(err),
            Some("/var/log/nitro_enclaves/err2024-01-01T00:00:00.log")
        );
        assert_eq!(error_log_path("nothing"), None);
    }
}
