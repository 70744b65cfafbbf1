//! `status`: what CloudFormation reports for the deployment.

use std::collections::BTreeMap;

use crate::aws::stack::{self, StackInfo};
use crate::aws::Aws;
use crate::config::Loaded;

#[derive(Debug)]
pub struct Status {
    pub stack: StackInfo,
    pub outputs: BTreeMap<String, String>,
    /// (logical id, type, physical id) of instances and Auto Scaling groups.
    pub compute: Vec<(String, String, String)>,
}

pub async fn status(loaded: &Loaded, aws: &Aws) -> anyhow::Result<Option<Status>> {
    let Some(info) = stack::describe(aws, &loaded.config.name).await? else {
        return Ok(None);
    };
    let compute = stack::resources(aws, &info.id)
        .await?
        .into_iter()
        .filter(|(_, (ty, _))| {
            ty == "AWS::EC2::Instance" || ty == "AWS::AutoScaling::AutoScalingGroup"
        })
        .map(|(id, (ty, physical))| (id, ty, physical))
        .collect();
    let outputs = super::apply::outputs(aws, &info.id).await?;
    Ok(Some(Status {
        stack: info,
        outputs,
        compute,
    }))
}
