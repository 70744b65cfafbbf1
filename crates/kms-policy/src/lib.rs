//! Typed KMS key policy model for Nitro Enclaves: render, guard, evaluate and diff
//! attestation-conditioned policies.
//!
//! The key policy is the security boundary: it decides which enclave build may decrypt.
//! Everything here works on one strictly parsed model ([`Policy`]) of the IAM subset we emit:
//!
//! - [`render()`] fills `policies/kms-key-policy.json.j2` from a [`PolicyContext`]
//!   (steady, transitional or migration), parses the result and runs the [`guard`]s;
//! - [`evaluate`] / [`explain`] answer "who can decrypt, with which enclave", and who can give
//!   themselves Decrypt (PutKeyPolicy, CreateGrant, ReEncryptFrom);
//! - [`diff()`] / [`apply`] give the reviewer-facing, order-insensitive difference;
//! - [`pcr`] holds the PCR value type and the PCR3/PCR4 derivations.
//!
//! What the `nitro-provision policy …` commands call:
//!
//! - `render`: [`Release::from_nitro_cli_measurements`] (then [`Release::pinned`] with
//!   `kms.pcrs`), [`PolicyContext::steady`] / [`PolicyContext::transitional`] /
//!   [`PolicyContext::migration`], then [`render()`]; send [`Rendered::json`] as is.
//! - `diff`: [`Policy::from_json`] on both sides, [`diff()`]; `Display` is the reviewer
//!   text, `serde_json` gives `--json`, [`PolicyDiff::is_empty`] decides exit 0 / 2.
//! - `explain`: [`explain`] (`Display` or `serde_json`).
//! - `apply`: `render` and `diff` as above, plus [`check_rotation`] against the live policy
//!   with the PCRs of the release that is running.

pub mod diff;
pub mod eval;
pub mod guard;
pub mod model;
pub mod normalize;
pub mod pcr;
pub mod render;

pub use diff::{apply, diff, ApplyError, Change, Direction, Element, Impact, PolicyDiff};
pub use eval::{
    evaluate, explain, Decider, Decision, DecryptAccess, Explanation, IndirectAccess, Request,
    ESCALATIONS,
};
pub use guard::{check, check_rotation, GuardOverrides, Violation, Violations};
pub use model::{
    BaseOperator, ConditionKey, Conditions, Effect, Operator, ParseError, Policy, Statement,
};
pub use normalize::normalize;
pub use pcr::{pcr3_for_role_arn, pcr4_for_instance_id, PcrError, PcrIndex, PcrSet, PcrValue};
pub use render::{render, PolicyContext, Principals, Release, RenderError, Rendered};
