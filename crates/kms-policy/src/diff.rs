//! Semantic, order-insensitive policy diff: the artifact security reviewers approve.
//!
//! Both sides are normalized, statements are matched by Sid (statements without a Sid by
//! content), and every difference becomes one atomic [`Change`] classified as broadening or
//! narrowing access. [`apply`] replays a diff, which is how the property tests show the diff
//! is complete.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::model::{ConditionKey, Effect, Operator, Policy, Statement};
use crate::normalize::normalize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Removed,
    Added,
}

impl Direction {
    fn sign(self) -> char {
        match self {
            Direction::Removed => '-',
            Direction::Added => '+',
        }
    }
}

/// Whether a change lets more requests through (broadening) or fewer (narrowing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    Broadening,
    Narrowing,
    /// Version or Id.
    Neutral,
}

impl Impact {
    fn flip(self) -> Impact {
        match self {
            Impact::Broadening => Impact::Narrowing,
            Impact::Narrowing => Impact::Broadening,
            Impact::Neutral => Impact::Neutral,
        }
    }
}

/// What a change adds or removes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "element", rename_all = "snake_case")]
pub enum Element {
    Version {
        value: String,
    },
    Id {
        value: String,
    },
    /// A whole statement (new Sid, removed Sid, changed Effect, or a Sid-less statement).
    Statement {
        statement: Statement,
    },
    Principal {
        value: String,
    },
    Action {
        value: String,
    },
    Resource {
        value: String,
    },
    /// A condition key that appears or disappears under an operator, with all its values.
    Condition {
        operator: Operator,
        key: ConditionKey,
        values: Vec<String>,
    },
    /// One value of a condition key present on both sides.
    ConditionValue {
        operator: Operator,
        key: ConditionKey,
        value: String,
    },
}

/// One atomic difference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    /// Sid of the statement the change belongs to; `None` at policy level or for a
    /// Sid-less statement.
    pub sid: Option<String>,
    #[serde(flatten)]
    pub element: Element,
    pub direction: Direction,
    /// Effect of the statement the change belongs to (`None` at policy level).
    pub effect: Option<Effect>,
    pub impact: Impact,
}

/// The differences between two policies; empty when they are semantically equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    pub changes: Vec<Change>,
}

impl PolicyDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, impact: Impact) -> usize {
        self.changes.iter().filter(|c| c.impact == impact).count()
    }
}

/// The impact of adding `element` to an Allow statement, flipped for Deny and for removal.
fn impact(direction: Direction, effect: Option<Effect>, element: &Element) -> Impact {
    let added_to_allow = match element {
        Element::Version { .. } | Element::Id { .. } => Impact::Neutral,
        Element::Statement { .. }
        | Element::Principal { .. }
        | Element::Action { .. }
        | Element::Resource { .. } => Impact::Broadening,
        // A new condition key is a new constraint.
        Element::Condition { .. } => Impact::Narrowing,
        // Values are ORed for positive operators; negated operators exclude them.
        Element::ConditionValue { operator, .. } if operator.is_negated() => Impact::Narrowing,
        Element::ConditionValue { .. } => Impact::Broadening,
    };
    let for_effect = if effect == Some(Effect::Deny) {
        added_to_allow.flip()
    } else {
        added_to_allow
    };
    match direction {
        Direction::Added => for_effect,
        Direction::Removed => for_effect.flip(),
    }
}

fn change(direction: Direction, statement: Option<&Statement>, element: Element) -> Change {
    let sid = statement.and_then(|s| s.sid.clone());
    let effect = statement.map(|s| s.effect);
    let impact = impact(direction, effect, &element);
    Change {
        sid,
        element,
        direction,
        effect,
        impact,
    }
}

/// What changes from `from` to `to`.
pub fn diff(from: &Policy, to: &Policy) -> PolicyDiff {
    let (from, to) = (normalize(from), normalize(to));
    let mut changes = Vec::new();
    if from.version != to.version {
        changes.push(change(
            Direction::Removed,
            None,
            Element::Version {
                value: from.version.clone(),
            },
        ));
        changes.push(change(
            Direction::Added,
            None,
            Element::Version {
                value: to.version.clone(),
            },
        ));
    }
    if from.id != to.id {
        if let Some(value) = from.id.clone() {
            changes.push(change(Direction::Removed, None, Element::Id { value }));
        }
        if let Some(value) = to.id.clone() {
            changes.push(change(Direction::Added, None, Element::Id { value }));
        }
    }
    let by_sid = |p: &Policy| -> BTreeMap<String, Statement> {
        p.statements
            .iter()
            .filter_map(|s| Some((s.sid.clone()?, s.clone())))
            .collect()
    };
    let (old, new) = (by_sid(&from), by_sid(&to));
    for sid in old.keys().chain(new.keys()).collect::<BTreeSet<_>>() {
        match (old.get(sid), new.get(sid)) {
            (Some(a), Some(b)) if a.effect == b.effect => statement_changes(a, b, &mut changes),
            // A new or dropped Sid, or a changed Effect: the whole statement changes.
            (a, b) => {
                whole_statements(Direction::Removed, a, &mut changes);
                whole_statements(Direction::Added, b, &mut changes);
            }
        }
    }
    let anonymous = |p: &Policy| -> BTreeSet<Statement> {
        p.statements
            .iter()
            .filter(|s| s.sid.is_none())
            .cloned()
            .collect()
    };
    let (old, new) = (anonymous(&from), anonymous(&to));
    whole_statements(Direction::Removed, old.difference(&new), &mut changes);
    whole_statements(Direction::Added, new.difference(&old), &mut changes);
    changes.sort();
    PolicyDiff { changes }
}

fn whole_statements<'a>(
    direction: Direction,
    statements: impl IntoIterator<Item = &'a Statement>,
    out: &mut Vec<Change>,
) {
    for st in statements {
        out.push(change(
            direction,
            Some(st),
            Element::Statement {
                statement: st.clone(),
            },
        ));
    }
}

fn statement_changes(a: &Statement, b: &Statement, out: &mut Vec<Change>) {
    set_changes(
        &a.principals,
        &b.principals,
        b,
        |value| Element::Principal { value },
        out,
    );
    set_changes(
        &a.actions,
        &b.actions,
        b,
        |value| Element::Action { value },
        out,
    );
    set_changes(
        &a.resources,
        &b.resources,
        b,
        |value| Element::Resource { value },
        out,
    );
    let keys = |s: &Statement| -> BTreeMap<(Operator, ConditionKey), Vec<String>> {
        s.conditions
            .iter()
            .flat_map(|(op, keys)| keys.iter().map(|(k, v)| ((*op, *k), v.clone())))
            .collect()
    };
    let (old, new) = (keys(a), keys(b));
    for &(operator, key) in old.keys().chain(new.keys()).collect::<BTreeSet<_>>() {
        match (old.get(&(operator, key)), new.get(&(operator, key))) {
            (Some(values), None) => out.push(change(
                Direction::Removed,
                Some(b),
                Element::Condition {
                    operator,
                    key,
                    values: values.clone(),
                },
            )),
            (None, Some(values)) => out.push(change(
                Direction::Added,
                Some(b),
                Element::Condition {
                    operator,
                    key,
                    values: values.clone(),
                },
            )),
            (Some(old), Some(new)) => set_changes(
                old,
                new,
                b,
                |value| Element::ConditionValue {
                    operator,
                    key,
                    value,
                },
                out,
            ),
            (None, None) => {}
        }
    }
}

fn set_changes(
    old: &[String],
    new: &[String],
    st: &Statement,
    element: impl Fn(String) -> Element,
    out: &mut Vec<Change>,
) {
    for value in old.iter().filter(|v| !new.contains(v)) {
        out.push(change(Direction::Removed, Some(st), element(value.clone())));
    }
    for value in new.iter().filter(|v| !old.contains(v)) {
        out.push(change(Direction::Added, Some(st), element(value.clone())));
    }
}

/// A diff that does not fit the policy it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("change does not apply: {0}")]
    Conflict(String),
    #[error("statement {0}: a required list would be empty")]
    Empty(String),
}

/// Replays `diff` on `policy`; `apply(&diff(a, b), a)` equals `normalize(b)`.
pub fn apply(diff: &PolicyDiff, policy: &Policy) -> Result<Policy, ApplyError> {
    let mut policy = normalize(policy);
    let ordered = diff
        .changes
        .iter()
        .filter(|c| c.direction == Direction::Removed)
        .chain(
            diff.changes
                .iter()
                .filter(|c| c.direction == Direction::Added),
        );
    for change in ordered {
        apply_change(change, &mut policy)
            .map_err(|()| ApplyError::Conflict(change_line(change)))?;
    }
    for st in &mut policy.statements {
        st.conditions.retain(|_, keys| !keys.is_empty());
        let empty_key = st
            .conditions
            .values()
            .flat_map(|k| k.values())
            .any(Vec::is_empty);
        if st.principals.is_empty() || st.actions.is_empty() || st.resources.is_empty() || empty_key
        {
            return Err(ApplyError::Empty(st.sid.clone().unwrap_or_default()));
        }
    }
    Ok(normalize(&policy))
}

/// Adds `value` if absent / removes it if present; `Err` otherwise.
fn toggle(values: &mut Vec<String>, value: &str, direction: Direction) -> Result<(), ()> {
    let position = values.iter().position(|v| v == value);
    match (direction, position) {
        (Direction::Added, None) => values.push(value.to_owned()),
        (Direction::Removed, Some(i)) => {
            values.remove(i);
        }
        _ => return Err(()),
    }
    Ok(())
}

fn apply_change(change: &Change, policy: &mut Policy) -> Result<(), ()> {
    let added = change.direction == Direction::Added;
    match &change.element {
        Element::Version { value } if added => policy.version = value.clone(),
        Element::Version { value } => (policy.version == *value).then_some(()).ok_or(())?,
        Element::Id { value } => match (added, &policy.id) {
            (true, None) => policy.id = Some(value.clone()),
            (false, Some(id)) if id == value => policy.id = None,
            _ => return Err(()),
        },
        Element::Statement { statement } if added => {
            if statement.sid.is_some() && policy.statements.iter().any(|s| s.sid == statement.sid) {
                return Err(());
            }
            policy.statements.push(statement.clone());
        }
        Element::Statement { statement } => {
            let index = policy
                .statements
                .iter()
                .position(|s| s == statement)
                .ok_or(())?;
            policy.statements.remove(index);
        }
        element => {
            let sid = change.sid.as_ref().ok_or(())?;
            let st = policy
                .statements
                .iter_mut()
                .find(|s| s.sid.as_ref() == Some(sid))
                .ok_or(())?;
            match element {
                Element::Principal { value } => {
                    toggle(&mut st.principals, value, change.direction)?
                }
                Element::Action { value } => toggle(&mut st.actions, value, change.direction)?,
                Element::Resource { value } => toggle(&mut st.resources, value, change.direction)?,
                Element::Condition {
                    operator,
                    key,
                    values,
                } => {
                    let keys = st.conditions.entry(*operator).or_default();
                    match (added, keys.get(key)) {
                        (true, None) => {
                            keys.insert(*key, values.clone());
                        }
                        (false, Some(current)) if current == values => {
                            keys.remove(key);
                        }
                        _ => return Err(()),
                    }
                }
                Element::ConditionValue {
                    operator,
                    key,
                    value,
                } => {
                    let values = st
                        .conditions
                        .get_mut(operator)
                        .and_then(|k| k.get_mut(key))
                        .ok_or(())?;
                    toggle(values, value, change.direction)?;
                }
                Element::Version { .. } | Element::Id { .. } | Element::Statement { .. } => {
                    return Err(())
                }
            }
        }
    }
    Ok(())
}

fn impact_tag(impact: Impact) -> &'static str {
    match impact {
        Impact::Broadening => "   [BROADENING]",
        Impact::Narrowing => "   [narrowing]",
        Impact::Neutral => "",
    }
}

/// One line for an in-place change, e.g.
/// `+ StringEqualsIgnoreCase kms:RecipientAttestation:PCR0 = 1a2b…   [BROADENING]`.
fn change_line(change: &Change) -> String {
    let sign = change.direction.sign();
    let what = match &change.element {
        Element::Version { value } => format!("Version {value}"),
        Element::Id { value } => format!("Id {value}"),
        Element::Statement { statement } => format!("statement {}", statement_title(statement)),
        Element::Principal { value } => format!("Principal {value}"),
        Element::Action { value } => format!("Action {value}"),
        Element::Resource { value } => format!("Resource {value}"),
        Element::Condition {
            operator,
            key,
            values,
        } => format!("{operator} {key} = {}", values.join(" | ")),
        Element::ConditionValue {
            operator,
            key,
            value,
        } => format!("{operator} {key} value {value}"),
    };
    format!("{sign} {what}{}", impact_tag(change.impact))
}

fn statement_title(st: &Statement) -> String {
    format!(
        "{} ({})",
        st.sid.as_deref().unwrap_or("(no Sid)"),
        st.effect
    )
}

/// Human form: a summary line, then one `+`/`-` line per change, grouped by statement.
/// Whole statements are spelled out with every line signed, so nothing is implicit.
impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        writeln!(
            f,
            "{} change(s): {} broadening, {} narrowing",
            self.changes.len(),
            self.count(Impact::Broadening),
            self.count(Impact::Narrowing)
        )?;
        let mut current: Option<&Option<String>> = None;
        for change in &self.changes {
            if let Element::Statement { statement } = &change.element {
                current = None;
                writeln!(f, "{}", change_line(change))?;
                let sign = change.direction.sign();
                writeln!(
                    f,
                    "{sign}     Principal {}",
                    statement.principals.join(", ")
                )?;
                writeln!(f, "{sign}     Action {}", statement.actions.join(", "))?;
                writeln!(f, "{sign}     Resource {}", statement.resources.join(", "))?;
                for (operator, keys) in &statement.conditions {
                    for (key, values) in keys {
                        writeln!(f, "{sign}     {operator} {key} = {}", values.join(" | "))?;
                    }
                }
                continue;
            }
            if change.sid.is_some() && current != Some(&change.sid) {
                let effect = change.effect.map(|e| e.to_string()).unwrap_or_default();
                writeln!(
                    f,
                    "  statement {} ({effect}):",
                    change.sid.as_deref().unwrap_or_default()
                )?;
                current = Some(&change.sid);
            }
            let indent = if change.sid.is_some() { "    " } else { "" };
            writeln!(f, "{indent}{}", change_line(change))?;
        }
        Ok(())
    }
}
