//! Issue 13 item 5, writer side: `secret put|list|rm` through the real binary against a real
//! moto server. The parameter must hold the base64 of a KMS ciphertext that moto's own Decrypt
//! opens with the deployment/parameter encryption context (and with no other); values never
//! reach stdout or stderr, not even at trace level; bad names, oversize and empty values,
//! overwrites and deletions without consent are refused with exit 1 and nothing written.

mod moto_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;
use harness::Moto;
use moto_support::{aws, np, text};
use nitro_provision::aws::{Aws, AwsOptions};
use serde_json::Value;

const DEPLOYMENT: &str = "hello-enclave";
const TOKEN: &str = "/hello-enclave/api-token";
const DB: &str = "/hello-enclave/db-password";

/// Where the deployment's key comes from.
#[derive(PartialEq)]
enum KeyFrom {
    /// `apply` creates the stack, its key and alias.
    Stack,
    /// The test creates a key with the alias in moto (fast).
    Test,
    /// No key: nothing was applied.
    Nowhere,
}

struct Setup {
    moto: Moto,
    _dir: tempfile::TempDir,
    config: PathBuf,
    rt: tokio::runtime::Runtime,
    aws: Aws,
    ssm: aws_sdk_ssm::Client,
}

impl Setup {
    /// The example deployment with a second secret, its key (`alias/hello-enclave`) from `key`.
    fn new(key: KeyFrom) -> Setup {
        let moto = Moto::start();
        let dir = tempfile::tempdir().unwrap();
        let config = harness::example_deployment(dir.path());
        let yaml = std::fs::read_to_string(&config).unwrap().replace(
            "  /hello-enclave/api-token: API_TOKEN\n",
            &format!("  {TOKEN}: API_TOKEN\n  {DB}: DB_PASSWORD\n"),
        );
        std::fs::write(&config, yaml).unwrap();
        let (rt, aws) = aws(&moto);
        let conf = rt
            .block_on(nitro_provision::aws::sdk_config(&AwsOptions {
                region: "us-east-1".into(),
                profile: None,
                endpoint_url: Some(moto.url()),
                max_attempts: 1,
            }))
            .unwrap();
        let s = Setup {
            ssm: aws_sdk_ssm::Client::new(&conf),
            moto,
            _dir: dir,
            config,
            rt,
            aws,
        };
        if key == KeyFrom::Stack {
            let o = np(&s.moto, &s.config, &["apply", "--yes"]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        } else if key == KeyFrom::Test {
            s.rt.block_on(async {
                let key = s.aws.kms.create_key().send().await.unwrap();
                s.aws
                    .kms
                    .create_alias()
                    .alias_name(format!("alias/{DEPLOYMENT}"))
                    .target_key_id(key.key_metadata().unwrap().key_id())
                    .send()
                    .await
                    .unwrap();
            });
        }
        s
    }

    /// `nitro-provision ARGS…` with `input` on stdin.
    fn np_input(&self, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
            .arg("-f")
            .arg(&self.config)
            .args(args)
            .envs(self.moto.env())
            .env_remove("AWS_PROFILE")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        eprintln!("$ nitro-provision {}\n{}", args.join(" "), text(&out));
        out
    }

    fn np(&self, args: &[&str]) -> Output {
        np(&self.moto, &self.config, args)
    }

    /// The parameter's (type, value, version), `None` when it does not exist.
    fn parameter(&self, name: &str) -> Option<(String, String, i64)> {
        let out = self
            .rt
            .block_on(self.ssm.get_parameter().name(name).send())
            .ok()?;
        let p = out.parameter.unwrap();
        Some((
            p.r#type.unwrap().as_str().to_string(),
            p.value.unwrap(),
            p.version,
        ))
    }

    /// moto's KMS Decrypt of the parameter's ciphertext under `context`.
    fn decrypt(&self, name: &str, context: &[(&str, &str)]) -> Result<Vec<u8>, String> {
        let (_, value, _) = self.parameter(name).expect("parameter exists");
        let blob = base64::engine::general_purpose::STANDARD
            .decode(value)
            .expect("standard base64");
        let mut req = self.aws.kms.decrypt().ciphertext_blob(Blob::new(blob));
        for (k, v) in context {
            req = req.encryption_context(*k, *v);
        }
        self.rt
            .block_on(req.send())
            .map(|o| o.plaintext.unwrap().into_inner())
            .map_err(|e| format!("{:?}", e.into_service_error()))
    }
}

fn the_context(parameter: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("nitro-provision:deployment", DEPLOYMENT),
        ("nitro-provision:parameter", parameter),
    ]
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

/// Neither the value nor its base64 appears in what the command printed.
fn assert_not_echoed(o: &Output, value: &[u8]) {
    let t = text(o);
    let raw = String::from_utf8_lossy(value);
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    assert!(
        !t.contains(raw.trim()) && !t.contains(&b64),
        "the value leaked:\n{t}"
    );
}

#[test]
fn put_seals_under_the_deployment_context_the_stack_key_opens_it() {
    let s = Setup::new(KeyFrom::Stack);
    let value = b"tok-3f9a1c7e5b2d\n";
    // Trace-level logs of the CLI and the SDK: the value must not be in them either.
    let o = s.np_input(
        &["-vv", "secret", "put", TOKEN],
        value,
        &[("RUST_LOG", "trace")],
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert_not_echoed(&o, value);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("Sealed {TOKEN} for API_TOKEN: 17 bytes encrypted with arn:aws:kms:us-east-1:123456789012:key/"))
            && out.contains("version 1 (Standard tier"),
        "{out}"
    );
    assert!(
        text(&o).contains("ends with a line break"),
        "a trailing newline is pointed out"
    );

    let (kind, _, version) = s.parameter(TOKEN).unwrap();
    assert_eq!((kind.as_str(), version), ("String", 1));
    assert_eq!(s.decrypt(TOKEN, &the_context(TOKEN)).unwrap(), value);
    // The ciphertext is bound to its parameter and deployment.
    for wrong in [
        the_context(DB),
        vec![
            ("nitro-provision:deployment", "other-enclave"),
            ("nitro-provision:parameter", TOKEN),
        ],
        vec![("nitro-provision:deployment", DEPLOYMENT)],
        vec![],
    ] {
        let e = s.decrypt(TOKEN, &wrong).unwrap_err();
        assert!(e.contains("InvalidCiphertext"), "{wrong:?}: {e}");
    }
}

#[test]
fn file_input_overwrite_only_when_asked_and_trim_newline() {
    let s = Setup::new(KeyFrom::Test);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db.txt");
    std::fs::write(&file, b"first-pw\n").unwrap();
    let f = file.to_str().unwrap();
    let o = s.np(&["secret", "put", DB, "--value-file", f, "--trim-newline"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert_not_echoed(&o, b"first-pw");
    assert!(!text(&o).contains("ends with a line break"));
    assert_eq!(s.decrypt(DB, &the_context(DB)).unwrap(), b"first-pw");

    std::fs::write(&file, b"second-pw").unwrap();
    let o = s.np(&["secret", "put", DB, "--value-file", f]);
    assert_eq!(code(&o), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("parameter {DB} already exists: pass --overwrite")),
        "{}",
        text(&o)
    );
    assert_eq!(s.decrypt(DB, &the_context(DB)).unwrap(), b"first-pw");

    let o = s.np(&["secret", "put", DB, "--value-file", f, "--overwrite"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert_not_echoed(&o, b"second-pw");
    assert_eq!(s.parameter(DB).unwrap().2, 2);
    assert_eq!(s.decrypt(DB, &the_context(DB)).unwrap(), b"second-pw");

    let o = s.np(&["secret", "put", DB, "--value-file", "/nonexistent/v"]);
    assert_eq!(code(&o), Some(1));
    assert!(text(&o).contains("cannot read the value from /nonexistent/v"));
}

#[test]
fn unknown_names_oversize_and_empty_values_are_refused_and_nothing_is_written() {
    let s = Setup::new(KeyFrom::Test);
    let o = s.np_input(&["secret", "put", "/hello-enclave/typo"], b"v", &[]);
    assert_eq!(code(&o), Some(1));
    assert!(
        text(&o).contains(&format!(
            "`/hello-enclave/typo` is not one of enclave.yaml's secrets; configured: {TOKEN}, {DB}"
        )),
        "{}",
        text(&o)
    );
    assert!(s.parameter("/hello-enclave/typo").is_none());

    let over = vec![b'x'; 4097];
    let o = s.np_input(&["secret", "put", TOKEN], &over, &[]);
    assert_eq!(code(&o), Some(1));
    assert!(text(&o).contains("larger than 4096 bytes"), "{}", text(&o));
    for bad in [&b""[..], b"a\0b"] {
        let o = s.np_input(&["secret", "put", TOKEN], bad, &[]);
        assert_eq!(code(&o), Some(1), "{}", text(&o));
    }
    assert!(s.parameter(TOKEN).is_none(), "nothing written");

    // The largest value KMS seals: its base64 ciphertext needs SSM's Advanced tier.
    let max = vec![b'y'; 4096];
    let o = s.np_input(&["secret", "put", TOKEN], &max, &[]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert!(text(&o).contains("(Advanced tier"), "{}", text(&o));
    assert_eq!(s.decrypt(TOKEN, &the_context(TOKEN)).unwrap(), max);
}

#[test]
fn list_shows_present_missing_and_not_sealed_and_require_all_fails_until_complete() {
    let s = Setup::new(KeyFrom::Test);
    let o = s.np_input(&["secret", "put", TOKEN], b"t0k", &[]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));

    let o = s.np(&["secret", "list"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let t = text(&o);
    let line = |p: &str| t.lines().find(|l| l.contains(p)).unwrap_or("").to_string();
    assert!(
        line(TOKEN).contains("API_TOKEN") && line(TOKEN).contains("present"),
        "{t}"
    );
    assert!(
        line(DB).contains("DB_PASSWORD") && line(DB).contains("missing"),
        "{t}"
    );

    let o = s.np(&["secret", "list", "--require-all"]);
    assert_eq!(code(&o), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&format!("1 of 2 secrets are not sealed: {DB}")));

    // A plain value someone wrote by hand is not a sealed secret.
    s.rt.block_on(
        s.ssm
            .put_parameter()
            .name(DB)
            .value("plain text!")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send(),
    )
    .unwrap();
    let o = s.np(&["secret", "list", "--json"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["deployment"], DEPLOYMENT);
    assert_eq!(doc["key"], "alias/hello-enclave");
    let by_name = |p: &str| {
        doc["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["parameter"] == p)
            .unwrap()
            .clone()
    };
    let token = by_name(TOKEN);
    assert_eq!(token["env"], "API_TOKEN");
    assert_eq!(token["state"], "present");
    assert_eq!(token["version"], 1);
    assert!(token["last_modified"].as_str().unwrap().starts_with("20"));
    assert_eq!(by_name(DB)["state"], "not-sealed");
    assert_eq!(code(&s.np(&["secret", "list", "--require-all"])), Some(1));

    let o = s.np_input(&["secret", "put", DB, "--overwrite"], b"pw", &[]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let o = s.np(&["secret", "list", "--require-all"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
}

#[test]
fn rm_needs_confirmation_and_a_missing_secret_is_an_error() {
    let s = Setup::new(KeyFrom::Test);
    let o = s.np_input(&["secret", "put", TOKEN], b"t0k", &[]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));

    // No terminal, no --yes: refused, the parameter stays.
    let o = s.np(&["secret", "rm", TOKEN]);
    assert_eq!(code(&o), Some(1));
    assert!(
        text(&o).contains("needs confirmation") && text(&o).contains("--yes"),
        "{}",
        text(&o)
    );
    assert!(s.parameter(TOKEN).is_some());

    let o = s.np(&["secret", "rm", TOKEN, "--yes"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert!(s.parameter(TOKEN).is_none());

    let o = s.np(&["secret", "rm", TOKEN, "--yes"]);
    assert_eq!(code(&o), Some(1));
    assert!(text(&o).contains(&format!("parameter {TOKEN} does not exist")));
    let o = s.np(&["secret", "rm", "/not/configured", "--yes"]);
    assert_eq!(code(&o), Some(1));
    assert!(text(&o).contains("is not one of enclave.yaml's secrets"));
}

#[test]
fn no_key_yet_says_apply_first() {
    let s = Setup::new(KeyFrom::Nowhere);
    let o = s.np_input(&["secret", "put", TOKEN], b"v", &[]);
    assert_eq!(code(&o), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("the deployment's key alias/hello-enclave does not exist"),
        "{}",
        text(&o)
    );
    assert!(s.parameter(TOKEN).is_none());
}

/// A value typed at a terminal (a real pseudo-terminal): the prompt shows, the terminal does not
/// echo what is typed, and the line break is not part of the value.
#[test]
fn typed_at_a_terminal_the_value_is_not_echoed() {
    let s = Setup::new(KeyFrom::Test);
    let (mut master, slave) = pty();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .arg("-f")
        .arg(&s.config)
        .args(["--no-color", "secret", "put", TOKEN])
        .envs(s.moto.env())
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut reader = master.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads until the child's side closes (EIO on Linux), forwarding each chunk.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Vec::new();
    while !String::from_utf8_lossy(&screen).contains("Value (not echoed") {
        let chunk = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no prompt: {}", String::from_utf8_lossy(&screen)));
        screen.extend(chunk);
    }
    master.write_all(b"typed-s3cret-9\n").unwrap();
    let status = child.wait().unwrap();
    while let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_secs(2)) {
        screen.extend(chunk);
    }
    let screen = String::from_utf8_lossy(&screen);
    eprintln!("{screen}");
    assert!(status.success(), "{screen}");
    assert!(!screen.contains("typed-s3cret"), "echoed: {screen}");
    assert!(
        screen.contains(&format!("Sealed {TOKEN} for API_TOKEN: 14 bytes")),
        "{screen}"
    );
    assert_eq!(
        s.decrypt(TOKEN, &the_context(TOKEN)).unwrap(),
        b"typed-s3cret-9"
    );
}

/// A pseudo-terminal: (master, slave).
fn pty() -> (std::fs::File, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two fds into the pointers; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened by openpty and are owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    }
}

/// moto with SigV4 and IAM checks on (`/moto-api/reset-auth`): a user whose policy allows SSM
/// but not kms:Encrypt — what a principal outside `kms.writers` meets in AWS.
#[test]
fn a_principal_that_may_not_encrypt_is_pointed_at_kms_writers() {
    let s = Setup::new(KeyFrom::Test);
    let (access, secret) = user_who_may_not_encrypt(&s);
    moto_auth_on(&s.moto);
    let o = s.np_input(
        &["secret", "put", TOKEN],
        b"v4lue",
        &[
            ("AWS_ACCESS_KEY_ID", access.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ],
    );
    assert_eq!(code(&o), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("arn:aws:iam::123456789012:user/bob may not kms:Encrypt with alias/hello-enclave: add that principal to `kms.writers`"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("(kms:Encrypt: HTTP 403 Forbidden)"),
        "{}",
        text(&o)
    );
    assert_not_echoed(&o, b"v4lue");
    assert!(s.parameter(TOKEN).is_none());
}

/// Switches moto's request authentication on for every later request.
fn moto_auth_on(moto: &Moto) {
    let mut s = TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    write!(
        s,
        "POST /moto-api/reset-auth HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n0"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
}

/// An IAM user (made through a CloudFormation stack: the provisioner has no IAM client) whose
/// policy allows SSM and STS but not KMS: (access key id, secret access key).
fn user_who_may_not_encrypt(s: &Setup) -> (String, String) {
    let template = serde_json::json!({
        "Resources": {
            "Bob": {"Type": "AWS::IAM::User", "Properties": {
                "UserName": "bob",
                "Policies": [{"PolicyName": "no-kms", "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": ["ssm:*", "sts:GetCallerIdentity"], "Resource": "*"}]
                }}]
            }},
            "BobKey": {"Type": "AWS::IAM::AccessKey", "Properties": {"UserName": {"Ref": "Bob"}}}
        },
        "Outputs": {
            "Id": {"Value": {"Ref": "BobKey"}},
            "Secret": {"Value": {"Fn::GetAtt": ["BobKey", "SecretAccessKey"]}}
        }
    });
    s.rt.block_on(async {
        s.aws
            .cfn
            .create_stack()
            .stack_name("test-writer")
            .template_body(template.to_string())
            .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
            .send()
            .await
            .unwrap();
        let out = s
            .aws
            .cfn
            .describe_stacks()
            .stack_name("test-writer")
            .send()
            .await
            .unwrap();
        let outputs = out.stacks()[0].outputs();
        let get = |k: &str| {
            outputs
                .iter()
                .find(|o| o.output_key() == Some(k))
                .and_then(|o| o.output_value())
                .unwrap_or_else(|| panic!("output {k}: {outputs:?}"))
                .to_string()
        };
        (get("Id"), get("Secret"))
    })
}
