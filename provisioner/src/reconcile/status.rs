//! `status`: what CloudFormation reports for the deployment (only a stack that is the
//! deployment's, see `ownership`).

use std::collections::BTreeMap;

use super::health::{self, InstanceHealth};
use super::{refresh, unix_now_ms};
use crate::aws::stack::{self, ChangeSetSummary, StackInfo};
use crate::aws::Aws;
use crate::config::Loaded;
use crate::render::log_group_name;

#[derive(Debug)]
pub struct Status {
    pub stack: StackInfo,
    /// Every declared output; `None` where CloudFormation reports no value.
    pub outputs: BTreeMap<String, Option<String>>,
    /// (logical id, type, physical id) of instances and Auto Scaling groups.
    pub compute: Vec<(String, String, String)>,
    /// Change sets that can still be executed: saved plans not applied (or discarded) yet.
    pub pending: Vec<ChangeSetSummary>,
    /// PCR0 of the newest release the deployed template admits: what should run.
    pub planned_pcr0: Option<String>,
    /// Each instance's newest health record, judged against `planned_pcr0`.
    pub health: Vec<InstanceHealth>,
}

impl Status {
    /// The stack only holds a pending CREATE change set: nothing is deployed yet.
    pub fn only_pending(&self) -> bool {
        self.stack.is_empty_review()
    }
}

pub async fn status(loaded: &Loaded, aws: &Aws) -> anyhow::Result<Option<Status>> {
    let name = &loaded.config.name;
    let Some(existing) = refresh::existing(aws, name, name, false).await? else {
        return Ok(None);
    };
    let info = existing.stack;
    let pending = stack::list_change_sets(aws, &info.id)
        .await?
        .into_iter()
        .filter(|c| c.execution_status == "AVAILABLE")
        .collect();
    if info.is_empty_review() {
        return Ok(Some(Status {
            stack: info,
            outputs: BTreeMap::new(),
            compute: Vec::new(),
            pending,
            planned_pcr0: None,
            health: Vec::new(),
        }));
    }
    let compute = stack::resources(aws, &info.id)
        .await?
        .into_iter()
        .filter(|(_, (ty, _))| {
            ty == "AWS::EC2::Instance" || ty == "AWS::AutoScaling::AutoScalingGroup"
        })
        .map(|(id, (ty, physical))| (id, ty, physical))
        .collect();
    let outputs = super::apply::outputs(aws, &info.id).await?;
    let planned_pcr0 = refresh::deployed(aws, &info)
        .await?
        .releases
        .last()
        .and_then(|r| r.pcrs.get(&0).cloned());
    let group = log_group_name(name);
    let now = unix_now_ms();
    let ids = health::instances(aws, &info.id, &group, now).await?;
    let health = health::fleet(aws, &group, &ids, planned_pcr0.as_deref(), now).await?;
    Ok(Some(Status {
        stack: info,
        outputs,
        compute,
        pending,
        planned_pcr0,
        health,
    }))
}
