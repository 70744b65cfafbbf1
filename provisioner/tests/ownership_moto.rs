//! Item 1 of issue 10, through the real binary against a real moto server: a stack with the
//! deployment's name that nitro-provision did not create for this deployment is refused by
//! plan, apply, destroy and status, and only `--adopt-stack` takes it over.

mod moto_support;

use harness::Moto;
use moto_support::{aws, change_sets, existing_network, np, stack_status, text};
use nitro_provision::aws::stack;

fn cfn_tags(tags: &[(&str, &str)]) -> Vec<aws_sdk_cloudformation::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_cloudformation::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
        })
        .collect()
}

/// Creates stack `hello-enclave` holding one SQS queue, with `tags`.
fn foreign_stack(
    rt: &tokio::runtime::Runtime,
    aws: &nitro_provision::aws::Aws,
    tags: &[(&str, &str)],
    metadata: Option<&str>,
) {
    let mut template = serde_json::json!({
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}}}
    });
    if let Some(d) = metadata {
        template["Metadata"] = serde_json::json!({"nitro-provision": {"Deployment": d}});
    }
    rt.block_on(async {
        aws.cfn
            .create_stack()
            .stack_name("hello-enclave")
            .template_body(template.to_string())
            .set_tags(Some(cfn_tags(tags)))
            .send()
            .await
            .unwrap();
    });
}

fn queue_exists(rt: &tokio::runtime::Runtime, aws: &nitro_provision::aws::Aws) -> bool {
    rt.block_on(stack::resources(aws, "hello-enclave"))
        .map(|r| r.contains_key("Queue"))
        .unwrap_or(false)
}

#[test]
fn a_foreign_stack_is_never_planned_applied_or_destroyed() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);
    foreign_stack(&rt, &aws, &[("team", "orders")], None);

    for args in [
        &["plan"][..],
        &["apply", "--yes"],
        &["destroy", "--yes"],
        &["status"],
    ] {
        let o = np(&moto, &config, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let t = text(&o);
        assert!(
            t.contains("stack hello-enclave was not created by nitro-provision for deployment hello-enclave: it has no `managed-by: nitro-provision` tag")
                && t.contains("--adopt-stack"),
            "{args:?}: {t}"
        );
    }
    // Through the AWS API: untouched, no change set was even created.
    assert!(
        queue_exists(&rt, &aws),
        "destroy left the foreign stack alone"
    );
    assert_eq!(
        stack_status(&rt, &aws, "hello-enclave").as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert!(change_sets(&rt, &aws, "hello-enclave").is_empty());
}

#[test]
fn another_deployments_stack_is_refused_with_its_name() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);
    // Our tool's tags, but another deployment's (both in the tags and in the metadata).
    foreign_stack(
        &rt,
        &aws,
        &[
            ("managed-by", "nitro-provision"),
            ("nitro-provision:deployment", "billing"),
        ],
        Some("billing"),
    );
    let o = np(&moto, &config, &["plan"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("its `nitro-provision:deployment` tag names deployment `billing`"),
        "{}",
        text(&o)
    );
    let o = np(&moto, &config, &["destroy", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(queue_exists(&rt, &aws));
}

#[test]
fn adopt_stack_takes_a_foreign_stack_over_on_purpose() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);
    existing_network(&rt, &aws, &config);
    foreign_stack(&rt, &aws, &[("team", "orders")], None);

    let saved = dir.path().join("adopt.json");
    let o = np(
        &moto,
        &config,
        &["plan", "--adopt-stack", "--out", saved.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("adopting stack hello-enclave (--adopt-stack)"),
        "{t}"
    );
    assert!(
        t.contains("- Queue"),
        "the foreign queue is shown as destroyed: {t}"
    );
    assert!(t.contains("+ EnclaveKey"), "{t}");
    assert!(queue_exists(&rt, &aws), "planning changes nothing");

    let o = np(&moto, &config, &["apply", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !queue_exists(&rt, &aws),
        "the queue went with the foreign template"
    );
    // The template is ours now (its metadata names the deployment). CloudFormation sets the
    // stack tags of an executed change set; moto 5.2.5 does that only for CREATE change sets, so
    // the test sets them as AWS would have before checking that the stack is now the
    // deployment's (the canned-response test `adopted_stack_gets_the_ownership_tags` covers the
    // tags on the AWS side).
    let body = rt
        .block_on(stack::deployed_template(&aws, "hello-enclave"))
        .unwrap();
    assert_eq!(
        nitro_provision::reconcile::refresh::parse_deployed(&body)
            .deployment
            .as_deref(),
        Some("hello-enclave")
    );
    rt.block_on(async {
        aws.cfn
            .update_stack()
            .stack_name("hello-enclave")
            .use_previous_template(true)
            .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
            .set_tags(Some(cfn_tags(&[
                ("managed-by", "nitro-provision"),
                ("nitro-provision:deployment", "hello-enclave"),
            ])))
            .send()
            .await
            .unwrap();
    });
    let o = np(&moto, &config, &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = np(&moto, &config, &["plan", "--adopt-stack"]);
    assert!(
        text(&o).contains(
            "--adopt-stack has nothing to adopt: stack hello-enclave is already this deployment's"
        ),
        "{}",
        text(&o)
    );
    let o = np(&moto, &config, &["destroy", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stack_status(&rt, &aws, "hello-enclave"), None);
}

#[test]
fn someone_elses_pending_create_is_not_deleted() {
    // A stack that only holds another tool's CREATE change set has no template to read: its
    // tags alone decide, and without ours plan refuses instead of clearing it away.
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);
    let template = serde_json::json!({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}});
    rt.block_on(
        aws.cfn
            .create_change_set()
            .stack_name("hello-enclave")
            .change_set_name("theirs")
            .change_set_type(aws_sdk_cloudformation::types::ChangeSetType::Create)
            .template_body(template.to_string())
            .send(),
    )
    .unwrap();
    for args in [&["plan"][..], &["destroy", "--yes"]] {
        let o = np(&moto, &config, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            text(&o).contains("no `managed-by: nitro-provision` tag"),
            "{}",
            text(&o)
        );
    }
    assert_eq!(
        stack_status(&rt, &aws, "hello-enclave").as_deref(),
        Some("REVIEW_IN_PROGRESS")
    );
    let sets = change_sets(&rt, &aws, "hello-enclave");
    assert_eq!(sets.len(), 1, "{sets:?}");
}
