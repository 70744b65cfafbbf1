//! Rendering key policies from `policies/kms-key-policy.json.j2`, then parsing and guarding them.

use serde::Serialize;

use crate::guard::{self, GuardOverrides, Violations};
use crate::model::{ParseError, Policy};
use crate::pcr::{PcrError, PcrIndex, PcrSet, PcrValue};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("a release must pin PCR0 (it identifies the enclave image)")]
    MissingPcr0,
    #[error("the release's measurements have no PCR{0}")]
    MissingPcr(PcrIndex),
    #[error("both releases have label {0}: they are the same release")]
    SameRelease(String),
    #[error("measurements: {0}")]
    Measurements(String),
    #[error("measurements: {0}")]
    Pcr(#[from] PcrError),
    #[error("template: {0:#}")]
    Template(#[from] minijinja::Error),
    #[error("the rendered policy does not parse: {0}")]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Guard(#[from] Violations),
}

/// One enclave build: the registers its Allow statement pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pcrs: PcrSet,
}

impl Release {
    /// PCR0 is required: labels and the explicit Deny are keyed on it.
    pub fn new(pcrs: PcrSet) -> Result<Release, RenderError> {
        if !pcrs.contains_key(&PcrIndex::PCR0) {
            return Err(RenderError::MissingPcr0);
        }
        Ok(Release { pcrs })
    }

    /// Reads nitro-cli's `{"Measurements": {"HashAlgorithm": …, "PCR0": "…", …}}` (the
    /// output of `build-enclave`, or `describe-eif`, which has more members).
    pub fn from_nitro_cli_measurements(text: &str) -> Result<Release, RenderError> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| RenderError::Measurements(e.to_string()))?;
        let measurements = doc
            .get("Measurements")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| RenderError::Measurements("no \"Measurements\" object".into()))?;
        let mut pcrs = PcrSet::new();
        for (name, value) in measurements {
            let Some(index) = name.strip_prefix("PCR") else {
                continue;
            };
            let index = index
                .parse::<u32>()
                .map_err(|_| RenderError::Measurements(format!("bad register name {name:?}")))
                .and_then(|i| Ok(PcrIndex::new(i)?))?;
            let value = value
                .as_str()
                .ok_or_else(|| RenderError::Measurements(format!("{name} is not a string")))?;
            pcrs.insert(index, value.parse()?);
        }
        Release::new(pcrs)
    }

    /// The same release pinning only `registers` (the deployment's `kms.pcrs`), which must
    /// include PCR0 and be present in the measurements.
    pub fn pinned(&self, registers: &[PcrIndex]) -> Result<Release, RenderError> {
        let pcrs = registers
            .iter()
            .map(|i| {
                self.pcrs
                    .get(i)
                    .map(|v| (*i, *v))
                    .ok_or(RenderError::MissingPcr(*i))
            })
            .collect::<Result<PcrSet, _>>()?;
        Release::new(pcrs)
    }

    pub fn pcrs(&self) -> &PcrSet {
        &self.pcrs
    }

    pub fn pcr0(&self) -> PcrValue {
        // `new` guarantees PCR0.
        self.pcrs
            .get(&PcrIndex::PCR0)
            .copied()
            .unwrap_or(PcrValue::ZERO)
    }

    /// Stable, readable Sid suffix: the first 16 hex of PCR0 (the image), plus `Signer` and
    /// the first 8 hex of PCR8 when pinned, since re-signing an image changes only PCR8.
    pub fn label(&self) -> String {
        let image = &self.pcr0().to_hex()[..16];
        match PcrIndex::new(8).ok().and_then(|i| self.pcrs.get(&i)) {
            Some(signer) => format!("{image}Signer{}", &signer.to_hex()[..8]),
            None => image.to_owned(),
        }
    }
}

/// Who plays which part in a deployment's key policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    /// Keep `kms:PutKeyPolicy`; never get decrypting actions.
    pub admins: Vec<String>,
    /// The instance role(s) the enclave's KMS requests are signed with.
    pub enclave: Vec<String>,
    /// May `kms:Encrypt` (seal secrets for the enclave).
    pub writers: Vec<String>,
}

/// The template's context (see the header of `policies/kms-key-policy.json.j2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyContext {
    pub policy_id: String,
    pub admins: Vec<String>,
    pub enclave_principals: Vec<String>,
    pub releases: Vec<Release>,
    pub writers: Vec<String>,
    pub migration_principals: Vec<String>,
    pub deny_unattested: bool,
}

impl PolicyContext {
    /// One release; explicit Deny of unattested Decrypt on (turn off with `deny_unattested`).
    pub fn steady(policy_id: &str, principals: Principals, release: Release) -> PolicyContext {
        PolicyContext {
            policy_id: policy_id.to_owned(),
            admins: principals.admins,
            enclave_principals: principals.enclave,
            releases: vec![release],
            writers: principals.writers,
            migration_principals: Vec::new(),
            deny_unattested: true,
        }
    }

    /// Rotation: old and new release, one Allow statement each (never value lists, which
    /// would admit old PCR0 with new PCR2). Dropping `old` is a later, separate step.
    pub fn transitional(
        policy_id: &str,
        principals: Principals,
        old: Release,
        new: Release,
    ) -> Result<PolicyContext, RenderError> {
        if old.label() == new.label() {
            return Err(RenderError::SameRelease(new.label()));
        }
        let mut context = PolicyContext::steady(policy_id, principals, old);
        context.releases.push(new);
        Ok(context)
    }

    /// A new key during a locked-key migration: Encrypt + PutKeyPolicy for the migration
    /// principals, nobody can Decrypt.
    pub fn migration(
        policy_id: &str,
        admins: Vec<String>,
        migration_principals: Vec<String>,
    ) -> PolicyContext {
        PolicyContext {
            policy_id: policy_id.to_owned(),
            admins,
            enclave_principals: Vec::new(),
            releases: Vec::new(),
            writers: Vec::new(),
            migration_principals,
            deny_unattested: false,
        }
    }
}

#[derive(Serialize)]
struct TemplateContext<'a> {
    policy_id: &'a str,
    admins: &'a [String],
    enclave_principals: &'a [String],
    releases: Vec<TemplateRelease>,
    writers: &'a [String],
    migration_principals: &'a [String],
    deny_unattested: bool,
}

#[derive(Serialize)]
struct TemplateRelease {
    label: String,
    pcr0: String,
    pcrs: Vec<TemplatePcr>,
}

#[derive(Serialize)]
struct TemplatePcr {
    index: u8,
    value: String,
}

impl PolicyContext {
    fn template_context(&self) -> TemplateContext<'_> {
        let releases = self
            .releases
            .iter()
            .map(|r| TemplateRelease {
                label: r.label(),
                pcr0: r.pcr0().to_hex(),
                pcrs: r
                    .pcrs()
                    .iter()
                    .map(|(i, v)| TemplatePcr {
                        index: i.get(),
                        value: v.to_hex(),
                    })
                    .collect(),
            })
            .collect();
        TemplateContext {
            policy_id: &self.policy_id,
            admins: &self.admins,
            enclave_principals: &self.enclave_principals,
            releases,
            writers: &self.writers,
            migration_principals: &self.migration_principals,
            deny_unattested: self.deny_unattested,
        }
    }
}

/// A rendered policy: the exact text to send to PutKeyPolicy, and its parsed model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub json: String,
    pub policy: Policy,
}

/// Renders `template` (the provisioner embeds `policies/kms-key-policy.json.j2`) with
/// `context`, parses the result and runs every guard of [`guard::check`].
pub fn render(
    template: &str,
    context: &PolicyContext,
    overrides: &GuardOverrides,
) -> Result<Rendered, RenderError> {
    let mut env = minijinja::Environment::new();
    // A misspelt context variable must fail, not render as an empty principal list.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let json = env.render_str(template, context.template_context())?;
    let policy = Policy::from_json(&json)?;
    guard::check(&policy, overrides)?;
    Ok(Rendered { json, policy })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nitro-cli build-enclave` output for a signed image, from the Nitro Enclaves User Guide.
    const MEASUREMENTS: &str = r#"{"Measurements": {
        "HashAlgorithm": "Sha384 { ... }",
        "PCR0": "7fb5c55bc2ecbb68ed99a13d7122abfc0666b926a79d5379bc58b9445c84217f59cfdd36c08b2c79552928702efe23e4",
        "PCR1": "235c9e6050abf6b993c915505f3220e2d82b51aff830ad14cbecc2eec1bf0b4ae749d311c663f464cde9f718acca5286",
        "PCR2": "0f0ac32c300289e872e6ac4d19b0b5ac4a9b020c98295643ff3978610750ce6a86f7edff24e3c0a4a445f2ff8a9ea79d",
        "PCR8": "70da58334a884328944cd806127c7784677ab60a154249fd21546a217299ccfa1ebfe4fa96a163bf41d3bcfaebe68f6f"}}"#;

    fn index(i: u32) -> PcrIndex {
        PcrIndex::new(i).expect("valid index")
    }

    #[test]
    fn reads_nitro_cli_measurements_and_pins_registers() {
        let release =
            Release::from_nitro_cli_measurements(MEASUREMENTS).expect("measurements parse");
        assert_eq!(release.pcrs().len(), 4);
        assert_eq!(release.label(), "7fb5c55bc2ecbb68Signer70da5833");
        let pinned = release
            .pinned(&[index(0), index(2)])
            .expect("registers present");
        assert_eq!(
            pinned.pcrs().keys().copied().collect::<Vec<_>>(),
            [index(0), index(2)]
        );
        assert_eq!(pinned.label(), "7fb5c55bc2ecbb68");
        assert!(
            matches!(release.pinned(&[index(0), index(3)]), Err(RenderError::MissingPcr(i)) if i == index(3))
        );
        assert!(matches!(
            release.pinned(&[index(1)]),
            Err(RenderError::MissingPcr0)
        ));
        assert!(matches!(
            Release::from_nitro_cli_measurements(r#"{"PCR0": "00"}"#),
            Err(RenderError::Measurements(_))
        ));
    }

    #[test]
    fn undefined_template_variables_fail() {
        let release =
            Release::from_nitro_cli_measurements(MEASUREMENTS).expect("measurements parse");
        let context = PolicyContext::steady("key", Principals::default(), release);
        let result = render("{{ admin }}", &context, &GuardOverrides::default());
        assert!(
            matches!(result, Err(RenderError::Template(_))),
            "{result:?}"
        );
    }
}
