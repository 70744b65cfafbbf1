//! The real supervisor binary (stand-in nitro-cli, a runtime played by the test) reporting to
//! moto's CloudWatch Logs: its own records and health records appear in the group, one stream
//! per instance and source, the instance id coming from the IMDSv2 simulator.

mod common;

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::config::Credentials;
use aws_sdk_cloudwatchlogs::Client;
use common::*;
use companion_config::health::HealthRecord;
use companion_config::RolloutTarget;
use harness::{ImdsSim, Moto};

const INSTANCE: &str = "i-0fedcba9876543210";

/// Messages of one stream, oldest first (empty while it does not exist).
async fn messages(client: &Client, group: &str, stream: &str) -> Vec<String> {
    match client
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(true)
        .send()
        .await
    {
        Ok(out) => out
            .events()
            .iter()
            .map(|e| e.message().unwrap_or_default().to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn ships_its_records_and_health_records_to_the_log_group() {
    let moto = Moto::start();
    let imds = ImdsSim::start(&["--instance-id", INSTANCE]);
    let mut env = Env::new();
    env.config.link.credentials.imds_endpoint = imds.endpoint();
    env.config.rollout = Some(RolloutTarget {
        stack_name: "demo".into(),
        logical_id: "Instance".into(),
    });
    env.write_config();
    let group = env.config.log_group.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shared = rt.block_on(
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(moto.url())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load(),
    );
    let client = Client::new(&shared);
    rt.block_on(client.create_log_group().log_group_name(&group).send())
        .unwrap();
    let run_dir = env.dir.path().join("run");
    let moto_env: Vec<(&str, String)> = moto.env();
    let mut extra: Vec<(&str, &str)> = moto_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    extra.push(("RUNTIME_DIRECTORY", run_dir.to_str().unwrap()));
    let s = env.spawn_with(&extra);
    s.wait("booting", |i| i["state"] == "booting");
    let mut runtime = env.runtime();
    runtime.ready();
    s.wait("ready", |i| i["state"] == "ready");

    let deadline = Instant::now() + Duration::from_secs(60);
    let healthy = loop {
        let lines = rt.block_on(messages(&client, &group, &format!("{INSTANCE}/health")));
        let records: Vec<HealthRecord> = lines
            .iter()
            .map(|l| HealthRecord::parse(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if let Some(r) = records.iter().find(|r| r.is_healthy()) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no healthy record: {lines:#?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(healthy.instance_id, INSTANCE);
    assert_eq!(healthy.deployment, env.config.deployment);
    assert_eq!(
        healthy.measured_pcrs.as_ref().unwrap().pcr0,
        env.measurements.pcr0.to_hex()
    );
    let own = rt.block_on(messages(&client, &group, &format!("{INSTANCE}/supervisor")));
    assert!(
        own.iter().any(|l| l.contains("management API listening")),
        "{own:#?}"
    );
    let first: serde_json::Value = serde_json::from_str(&own[0]).unwrap();
    assert!(
        first["level"].is_string() && first["message"].is_string(),
        "{first}"
    );
    drop(runtime);
}
