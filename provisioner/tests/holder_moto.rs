//! Items 5 and 6 of issue 10, through the real binary against a real moto server with two
//! accounts (moto keeps one per account id; the key holder's credentials come from STS
//! AssumeRole into their account, written to a profile): the caller's account must be the
//! holder's before any GetKeyPolicy or PutKeyPolicy, a missing profile is an error, and
//! `alias/NAME` / alias ARNs are resolved with DescribeKey, naming the key id.

mod moto_support;

use std::path::{Path, PathBuf};

use harness::Moto;
use moto_support::{aws, np_env, text};
use nitro_provision::aws::{kms, Aws, AwsOptions};
use sha2::{Digest, Sha384};

const HOLDER_ACCOUNT: &str = "210987654321";

fn measurements(dir: &Path, seed: &str) -> PathBuf {
    let pcr = |i: u8| hex::encode(Sha384::digest(format!("{seed}/{i}")));
    let path = dir.join(format!("{seed}.json"));
    let doc = serde_json::json!({"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": pcr(0), "PCR1": pcr(1), "PCR2": pcr(2)}});
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

struct Setup {
    moto: Moto,
    dir: tempfile::TempDir,
    config: PathBuf,
    credentials: PathBuf,
    holder_key: String,
    own_key: String,
    old: PathBuf,
    new: PathBuf,
    rt: tokio::runtime::Runtime,
    own: Aws,
    holder: Aws,
}

impl Setup {
    /// The holder's key (alias `alias/hello-enclave` in their account, admitting `old`) and, in
    /// the deployment's account, another key with the same alias: what a wrong account would hit.
    fn new() -> Setup {
        let moto = Moto::start();
        let dir = tempfile::tempdir().unwrap();
        let config = harness::example_deployment(dir.path());
        let (old, new) = (
            measurements(dir.path(), "old"),
            measurements(dir.path(), "new"),
        );
        let (rt, own) = aws(&moto);
        let creds = rt
            .block_on(
                own.sts
                    .assume_role()
                    .role_arn(format!("arn:aws:iam::{HOLDER_ACCOUNT}:role/key-admin"))
                    .role_session_name("auditor")
                    .send(),
            )
            .unwrap()
            .credentials
            .unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &credentials,
            format!(
                "[auditor]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n\n[wrong]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
                creds.access_key_id, creds.secret_access_key, creds.session_token
            ),
        )
        .unwrap();
        let mut s = Setup {
            moto,
            dir,
            config,
            credentials,
            holder_key: String::new(),
            own_key: String::new(),
            old,
            new,
            rt,
            holder: own.clone(),
            own,
        };
        s.holder = s.connect(&creds);
        let steady = s.np(&[
            "policy",
            "render",
            "--holder",
            "auditor",
            "--releases",
            s.old.to_str().unwrap(),
        ]);
        assert_eq!(steady.status.code(), Some(0), "{}", text(&steady));
        let steady = String::from_utf8(steady.stdout).unwrap();
        let make = |aws: &Aws, policy: String| {
            s.rt.block_on(async {
                let k = aws.kms.create_key().policy(policy).send().await.unwrap();
                let id = k.key_metadata().unwrap().key_id().to_string();
                aws.kms
                    .create_alias()
                    .alias_name("alias/hello-enclave")
                    .target_key_id(&id)
                    .send()
                    .await
                    .unwrap();
                id
            })
        };
        s.holder_key = make(&s.holder, steady.clone());
        s.own_key = make(&s.own, steady);
        s.set_holder("auditor", "alias/hello-enclave");
        s
    }

    /// In-process clients with the holder's assumed-role credentials. Passed directly, not
    /// through a profile file: tests run in parallel, and a process-wide
    /// AWS_SHARED_CREDENTIALS_FILE would let one test read another's (another moto's) keys.
    /// The binary, a process of its own, is what reads the profile.
    fn connect(&self, creds: &aws_sdk_sts::types::Credentials) -> Aws {
        let opts = AwsOptions {
            region: "us-east-1".into(),
            profile: None,
            endpoint_url: Some(self.moto.url()),
            max_attempts: 1,
        };
        let provider = aws_sdk_kms::config::Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "holder-test",
        );
        let conf = self.rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(opts.region.clone()))
                .endpoint_url(self.moto.url())
                .credentials_provider(provider)
                .load(),
        );
        Aws::from_config(&conf, &opts)
    }

    /// Sets the holder's `profile` and `key` in enclave.yaml.
    fn set_holder(&self, profile: &str, key: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let start = text
            .find("      # profile:")
            .or_else(|| text.find("      profile:"))
            .unwrap();
        let end = text[start..].find("\n\n").map(|e| start + e).unwrap();
        let text = format!(
            "{}      profile: {profile}\n      key: {key}{}",
            &text[..start],
            &text[end..]
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn np(&self, args: &[&str]) -> std::process::Output {
        np_env(
            &self.moto,
            &self.config,
            args,
            &[(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.credentials.display().to_string(),
            )],
        )
    }

    /// `policy apply --holder auditor --releases RELEASES EXTRA…`
    fn apply(&self, releases: &str, extra: &[&str]) -> std::process::Output {
        let mut args = vec![
            "policy",
            "apply",
            "--holder",
            "auditor",
            "--releases",
            releases,
        ];
        args.extend_from_slice(extra);
        self.np(&args)
    }

    fn policy(&self, aws: &Aws, key: &str) -> String {
        self.rt.block_on(kms::get_key_policy(aws, key)).unwrap()
    }
}

#[test]
fn the_holders_key_is_read_and_written_only_in_the_holders_account() {
    let s = Setup::new();
    let own_before = s.policy(&s.own, &s.own_key);
    let both = format!("{},{}", s.old.display(), s.new.display());

    // Item 6: alias/NAME resolves to the holder's key, and the id is named.
    let o = s.apply(s.old.to_str().unwrap(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "key holder auditor: alias/hello-enclave resolved to key {}",
            s.holder_key
        )) && t.contains("No differences"),
        "{t}"
    );

    // Item 5: credentials of another account are refused before any key call.
    s.set_holder("wrong", "alias/hello-enclave");
    for args in [
        &[
            "policy",
            "apply",
            "--holder",
            "auditor",
            "--releases",
            &both,
            "--yes",
        ][..],
        &["policy", "diff", "--holder", "auditor"],
        &["policy", "explain", "--holder", "auditor"],
    ] {
        let o = s.np(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            text(&o).contains(&format!("the credentials of profile `wrong` are for account 123456789012, but key holder auditor's account is {HOLDER_ACCOUNT}; refusing")),
            "{args:?}: {}",
            text(&o)
        );
    }
    assert_eq!(
        s.policy(&s.own, &s.own_key),
        own_before,
        "the deployment's own key is untouched"
    );

    // A profile that does not exist is an error, never a fall back to the environment's
    // credentials (which moto would accept).
    s.set_holder("nosuch", "alias/hello-enclave");
    let o = s.apply(&both, &["--yes"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("AWS profile `nosuch` cannot be used"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("nosuch"), "{}", text(&o));

    // The alias ARN works as well; the transitional policy goes on the holder's key only.
    s.set_holder(
        "auditor",
        &format!("arn:aws:kms:us-east-1:{HOLDER_ACCOUNT}:alias/hello-enclave"),
    );
    let o = s.apply(&both, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("pass --yes"), "{}", text(&o));
    let o = s.apply(&both, &["--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains(&format!("resolved to key {}", s.holder_key)));
    let holder_policy = s.policy(&s.holder, &s.holder_key);
    assert_eq!(
        holder_policy.matches("EnclaveRelease").count(),
        2,
        "{holder_policy}"
    );
    assert_eq!(s.policy(&s.own, &s.own_key), own_before);

    // Dropping the release the live policy admits (old) needs the explicit flag.
    let new = s.new.to_str().unwrap();
    let o = s.apply(new, &["--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("running release"), "{}", text(&o));
    let o = s.apply(new, &["--yes", "--allow-dropping-running-release"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let d = s.np(&["policy", "diff", "--holder", "auditor", "--to", "/dev/null"]);
    assert_eq!(d.status.code(), Some(1), "an empty file is not a policy");
    let _ = &s.dir;
}

#[test]
fn the_deployments_own_key_is_found_by_alias_in_its_account() {
    let s = Setup::new();
    // --live alias/NAME without a holder: the deployment's account, the default credentials.
    let o = s.np(&[
        "policy",
        "explain",
        "--live",
        "alias/hello-enclave",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "deployment hello-enclave: alias/hello-enclave resolved to key {}",
            s.own_key
        )),
        "{}",
        text(&o)
    );
    // The deployment's default key is its alias too.
    let o = s.np(&["policy", "diff"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "the holder-shaped policy differs from the deployment's: {}",
        text(&o)
    );
    assert!(
        text(&o).contains(&format!("resolved to key {}", s.own_key)),
        "{}",
        text(&o)
    );
    // A global --profile that does not exist is an error too, before any AWS call.
    let o = s.np(&["--profile", "nosuch", "status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("AWS profile `nosuch` cannot be used"),
        "{}",
        text(&o)
    );
    // A key that does not exist names itself.
    let o = s.np(&["policy", "explain", "--live", "alias/nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("kms:DescribeKey") && text(&o).contains("alias/nope"),
        "{}",
        text(&o)
    );
}
