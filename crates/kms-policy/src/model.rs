//! The typed subset of the IAM policy language our key policies use, parsed strictly.
//!
//! Anything outside the subset (NotAction, NotPrincipal, NotResource, service principals,
//! operators and condition keys we do not evaluate, duplicate JSON keys, duplicate Sids) is a
//! [`ParseError`]: misreading any of them would make the guards, the evaluator and the diff
//! silently wrong about the security boundary.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::pcr::PcrIndex;

/// Policy language versions IAM knows; they differ only in policy variables, which we never use.
pub const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// A key policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub version: String,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

/// One policy statement. Lists keep their written order until [`crate::normalize()`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// `AWS` principals; `"Principal": "*"` parses as `["*"]`.
    pub principals: Vec<String>,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub conditions: Conditions,
}

/// Operator → key → values. IAM ANDs operators and keys and ORs the values of one key.
pub type Conditions = BTreeMap<Operator, BTreeMap<ConditionKey, Vec<String>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Effect {
    Allow,
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        })
    }
}

/// The string operators that make sense for PCR hex values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BaseOperator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
}

/// A condition operator, optionally with the `IfExists` suffix (true when the key is absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operator {
    pub base: BaseOperator,
    pub if_exists: bool,
}

impl Operator {
    /// Negated operators are NOR over the values and true when the key is absent.
    pub fn is_negated(self) -> bool {
        matches!(
            self.base,
            BaseOperator::StringNotEquals | BaseOperator::StringNotEqualsIgnoreCase
        )
    }

    pub fn ignores_case(self) -> bool {
        matches!(
            self.base,
            BaseOperator::StringEqualsIgnoreCase | BaseOperator::StringNotEqualsIgnoreCase
        )
    }

    pub fn name(self) -> String {
        let base = match self.base {
            BaseOperator::StringEquals => "StringEquals",
            BaseOperator::StringNotEquals => "StringNotEquals",
            BaseOperator::StringEqualsIgnoreCase => "StringEqualsIgnoreCase",
            BaseOperator::StringNotEqualsIgnoreCase => "StringNotEqualsIgnoreCase",
        };
        if self.if_exists {
            format!("{base}IfExists")
        } else {
            base.to_owned()
        }
    }

    /// Operator names are matched exactly, as IAM documents them.
    pub fn parse(name: &str) -> Option<Operator> {
        let (base, if_exists) = match name.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let base = match base {
            "StringEquals" => BaseOperator::StringEquals,
            "StringNotEquals" => BaseOperator::StringNotEquals,
            "StringEqualsIgnoreCase" => BaseOperator::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => BaseOperator::StringNotEqualsIgnoreCase,
            _ => return None,
        };
        Some(Operator { base, if_exists })
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

/// The Nitro Enclaves attestation condition keys (the only ones we evaluate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionKey {
    /// `kms:RecipientAttestation:ImageSha384`, which KMS documents as equal to PCR0.
    ImageSha384,
    /// `kms:RecipientAttestation:PCR<n>`.
    Pcr(PcrIndex),
}

const ATTESTATION_PREFIX: &str = "kms:RecipientAttestation:";

impl ConditionKey {
    /// The register the key reads: `ImageSha384` is PCR0.
    pub fn register(self) -> PcrIndex {
        match self {
            ConditionKey::Pcr(index) => index,
            ConditionKey::ImageSha384 => PcrIndex::PCR0,
        }
    }

    /// Condition key names are case-insensitive in IAM; the PCR number must be plain decimal
    /// (`PCR00` is a different key that no request carries).
    pub fn parse(name: &str) -> Option<ConditionKey> {
        let prefix = name.get(..ATTESTATION_PREFIX.len())?;
        if !prefix.eq_ignore_ascii_case(ATTESTATION_PREFIX) {
            return None;
        }
        let rest = &name[ATTESTATION_PREFIX.len()..];
        if rest.eq_ignore_ascii_case("ImageSha384") {
            return Some(ConditionKey::ImageSha384);
        }
        let digits = rest
            .get(..3)
            .filter(|p| p.eq_ignore_ascii_case("PCR"))
            .map(|_| &rest[3..])?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        let index = digits.parse::<u32>().ok().filter(|_| canonical)?;
        PcrIndex::new(index).ok().map(ConditionKey::Pcr)
    }
}

impl fmt::Display for ConditionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionKey::ImageSha384 => write!(f, "{ATTESTATION_PREFIX}ImageSha384"),
            ConditionKey::Pcr(index) => write!(f, "{ATTESTATION_PREFIX}PCR{index}"),
        }
    }
}

impl Serialize for ConditionKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a document is not a policy of our subset. `path` is a JSON path like `Statement[2].Action`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("{path}: duplicate JSON key {key:?} (parsers disagree on which one wins)")]
    DuplicateKey { path: String, key: String },
    #[error("{path}: expected {expected}")]
    WrongType {
        path: String,
        expected: &'static str,
    },
    #[error("{path}: required element is missing")]
    Missing { path: String },
    #[error("{path}: must not be empty")]
    Empty { path: String },
    #[error("{path}: unknown element")]
    UnknownElement { path: String },
    #[error(
        "{path}: {element} is not supported (it inverts the meaning of the list; we never emit it)"
    )]
    Negated { path: String, element: &'static str },
    #[error("{path}: unsupported policy Version {0:?} (expected 2012-10-17)", .version)]
    Version { path: String, version: String },
    #[error("{path}: Effect must be \"Allow\" or \"Deny\", got {value:?}")]
    Effect { path: String, value: String },
    #[error("{path}: principal type {kind:?} is not supported (only \"AWS\" principals)")]
    PrincipalType { path: String, kind: String },
    #[error("{path}: condition operator {operator:?} is not supported (String[Not]Equals[IgnoreCase][IfExists] only)")]
    Operator { path: String, operator: String },
    #[error("{path}: condition key {key:?} is not supported (kms:RecipientAttestation:PCR<0-31>/ImageSha384 only)")]
    ConditionKey { path: String, key: String },
    #[error("{path}: Sid {sid:?} is used by more than one statement")]
    DuplicateSid { path: String, sid: String },
}

impl Policy {
    /// Parses a key policy document; never panics (see the `policy_parse` fuzz target).
    pub fn from_json(text: &str) -> Result<Policy, ParseError> {
        let json: Json = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
        parse_policy(&json)
    }

    /// The document in AWS's shape: a one-element list is written as a plain string.
    pub fn to_json_value(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("Version".into(), Value::String(self.version.clone()));
        if let Some(id) = &self.id {
            doc.insert("Id".into(), Value::String(id.clone()));
        }
        let statements = self
            .statements
            .iter()
            .map(Statement::to_json_value)
            .collect();
        doc.insert("Statement".into(), Value::Array(statements));
        Value::Object(doc)
    }

    pub fn to_json_pretty(&self) -> String {
        // Serializing a `Value` cannot fail.
        serde_json::to_string_pretty(&self.to_json_value()).unwrap_or_default()
    }
}

impl Statement {
    pub fn to_json_value(&self) -> Value {
        let mut st = Map::new();
        if let Some(sid) = &self.sid {
            st.insert("Sid".into(), Value::String(sid.clone()));
        }
        st.insert("Effect".into(), Value::String(self.effect.to_string()));
        let mut principal = Map::new();
        principal.insert("AWS".into(), one_or_list(&self.principals));
        st.insert("Principal".into(), Value::Object(principal));
        st.insert("Action".into(), one_or_list(&self.actions));
        st.insert("Resource".into(), one_or_list(&self.resources));
        if !self.conditions.is_empty() {
            let conditions = self
                .conditions
                .iter()
                .map(|(op, keys)| {
                    let keys = keys
                        .iter()
                        .map(|(k, v)| (k.to_string(), one_or_list(v)))
                        .collect();
                    (op.name(), Value::Object(keys))
                })
                .collect();
            st.insert("Condition".into(), Value::Object(conditions));
        }
        Value::Object(st)
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl Serialize for Statement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

fn one_or_list(values: &[String]) -> Value {
    match values {
        [one] => Value::String(one.clone()),
        many => Value::Array(many.iter().cloned().map(Value::String).collect()),
    }
}

/// A JSON tree that keeps every object member, so duplicate keys can be refused
/// (`serde_json::Value` silently keeps the last one).
enum Json {
    Scalar,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Json>()? {
            members.push(member);
        }
        Ok(Json::Object(members))
    }
}

/// The members of an object, refusing duplicates and members outside `allowed`.
fn members<'a>(
    json: &'a Json,
    path: &str,
    allowed: &[&str],
) -> Result<BTreeMap<&'a str, &'a Json>, ParseError> {
    let Json::Object(members) = json else {
        return Err(wrong_type(path, "an object"));
    };
    let mut out = BTreeMap::new();
    for (key, value) in members {
        if out.insert(key.as_str(), value).is_some() {
            return Err(ParseError::DuplicateKey {
                path: path.to_owned(),
                key: key.clone(),
            });
        }
        if !allowed.is_empty() && !allowed.contains(&key.as_str()) {
            let path = format!("{path}.{key}");
            return Err(match key.as_str() {
                "NotAction" => ParseError::Negated {
                    path,
                    element: "NotAction",
                },
                "NotPrincipal" => ParseError::Negated {
                    path,
                    element: "NotPrincipal",
                },
                "NotResource" => ParseError::Negated {
                    path,
                    element: "NotResource",
                },
                _ => ParseError::UnknownElement { path },
            });
        }
    }
    Ok(out)
}

fn wrong_type(path: &str, expected: &'static str) -> ParseError {
    ParseError::WrongType {
        path: path.to_owned(),
        expected,
    }
}

fn required<'a>(
    members: &BTreeMap<&str, &'a Json>,
    key: &str,
    path: &str,
) -> Result<&'a Json, ParseError> {
    members
        .get(key)
        .copied()
        .ok_or_else(|| ParseError::Missing {
            path: format!("{path}.{key}"),
        })
}

fn string(json: &Json, path: &str) -> Result<String, ParseError> {
    match json {
        Json::String(s) => Ok(s.clone()),
        _ => Err(wrong_type(path, "a string")),
    }
}

/// IAM's "one value or a list of values", never empty.
fn strings(json: &Json, path: &str) -> Result<Vec<String>, ParseError> {
    let values = match json {
        Json::String(s) => vec![s.clone()],
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| string(item, &format!("{path}[{i}]")))
            .collect::<Result<_, _>>()?,
        _ => return Err(wrong_type(path, "a string or a list of strings")),
    };
    if values.is_empty() {
        return Err(ParseError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(values)
}

fn parse_policy(json: &Json) -> Result<Policy, ParseError> {
    let root = "$";
    let doc = members(json, root, &["Version", "Id", "Statement"])?;
    let version = string(required(&doc, "Version", root)?, "$.Version")?;
    if !VERSIONS.contains(&version.as_str()) {
        return Err(ParseError::Version {
            path: "$.Version".into(),
            version,
        });
    }
    let id = doc.get("Id").map(|id| string(id, "$.Id")).transpose()?;
    let statements = match required(&doc, "Statement", root)? {
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_statement(item, &format!("$.Statement[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        single @ Json::Object(_) => vec![parse_statement(single, "$.Statement")?],
        _ => {
            return Err(wrong_type(
                "$.Statement",
                "a statement or a list of statements",
            ))
        }
    };
    let mut sids = BTreeSet::new();
    for (i, sid) in statements
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.sid.as_ref()?)))
    {
        if !sids.insert(sid) {
            let path = format!("$.Statement[{i}].Sid");
            return Err(ParseError::DuplicateSid {
                path,
                sid: sid.clone(),
            });
        }
    }
    Ok(Policy {
        version,
        id,
        statements,
    })
}

fn parse_statement(json: &Json, path: &str) -> Result<Statement, ParseError> {
    let allowed = [
        "Sid",
        "Effect",
        "Principal",
        "Action",
        "Resource",
        "Condition",
    ];
    let st = members(json, path, &allowed)?;
    let sid = st
        .get("Sid")
        .map(|s| string(s, &format!("{path}.Sid")))
        .transpose()?;
    let effect_path = format!("{path}.Effect");
    let effect = match string(required(&st, "Effect", path)?, &effect_path)?.as_str() {
        "Allow" => Effect::Allow,
        "Deny" => Effect::Deny,
        other => {
            return Err(ParseError::Effect {
                path: effect_path,
                value: other.to_owned(),
            })
        }
    };
    let principals = parse_principal(
        required(&st, "Principal", path)?,
        &format!("{path}.Principal"),
    )?;
    let actions = strings(required(&st, "Action", path)?, &format!("{path}.Action"))?;
    let resources = strings(
        required(&st, "Resource", path)?,
        &format!("{path}.Resource"),
    )?;
    let conditions = match st.get("Condition") {
        Some(json) => parse_conditions(json, &format!("{path}.Condition"))?,
        None => Conditions::new(),
    };
    Ok(Statement {
        sid,
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

fn parse_principal(json: &Json, path: &str) -> Result<Vec<String>, ParseError> {
    if let Json::String(s) = json {
        return if s == "*" {
            Ok(vec!["*".to_owned()])
        } else {
            Err(wrong_type(path, "\"*\" or {\"AWS\": …}"))
        };
    }
    let kinds = members(json, path, &[])?;
    if let Some(kind) = kinds.keys().find(|k| **k != "AWS") {
        return Err(ParseError::PrincipalType {
            path: path.to_owned(),
            kind: (*kind).to_owned(),
        });
    }
    strings(required(&kinds, "AWS", path)?, &format!("{path}.AWS"))
}

fn parse_conditions(json: &Json, path: &str) -> Result<Conditions, ParseError> {
    let mut conditions = Conditions::new();
    for (op_name, keys_json) in members(json, path, &[])? {
        let op_path = format!("{path}.{op_name}");
        let operator = Operator::parse(op_name).ok_or_else(|| ParseError::Operator {
            path: op_path.clone(),
            operator: op_name.to_owned(),
        })?;
        let mut keys = BTreeMap::new();
        for (key_name, values) in members(keys_json, &op_path, &[])? {
            let key_path = format!("{op_path}.{key_name}");
            let key = ConditionKey::parse(key_name).ok_or_else(|| ParseError::ConditionKey {
                path: key_path.clone(),
                key: key_name.to_owned(),
            })?;
            let values = strings(values, &key_path)?;
            if keys.insert(key, values).is_some() {
                // Same key spelled in two casings: IAM treats them as one key.
                return Err(ParseError::DuplicateKey {
                    path: op_path,
                    key: key_name.to_owned(),
                });
            }
        }
        if keys.is_empty() {
            return Err(ParseError::Empty { path: op_path });
        }
        conditions.insert(operator, keys);
    }
    if conditions.is_empty() {
        return Err(ParseError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, ParseError> {
        Policy::from_json(text)
    }

    const MINIMAL: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}}"#;

    #[test]
    fn single_values_and_lists() {
        let p = parse(MINIMAL).expect("minimal policy parses");
        assert_eq!(p.statements[0].principals, ["*"]);
        assert_eq!(p.statements[0].actions, ["kms:Decrypt"]);
        let reparsed = parse(&p.to_json_pretty()).expect("serialized policy parses");
        assert_eq!(reparsed, p);
    }

    #[test]
    fn refuses_what_we_do_not_evaluate() {
        let with = |from: &str, to: &str| parse(&MINIMAL.replace(from, to));
        assert!(matches!(
            with("\"Action\"", "\"NotAction\""),
            Err(ParseError::Negated {
                element: "NotAction",
                ..
            })
        ));
        assert!(matches!(
            with("\"Principal\"", "\"NotPrincipal\""),
            Err(ParseError::Negated {
                element: "NotPrincipal",
                ..
            })
        ));
        assert!(matches!(
            with("\"Resource\"", "\"NotResource\""),
            Err(ParseError::Negated {
                element: "NotResource",
                ..
            })
        ));
        assert!(matches!(
            with(
                r#""Principal":"*""#,
                r#""Principal":{"Service":"ec2.amazonaws.com"}"#
            ),
            Err(ParseError::PrincipalType { .. })
        ));
        assert!(matches!(
            with(
                r#""Resource":"*""#,
                r#""Resource":"*","Condition":{"StringLike":{"kms:RecipientAttestation:PCR0":"a*"}}"#
            ),
            Err(ParseError::Operator { .. })
        ));
        assert!(matches!(
            with(
                r#""Resource":"*""#,
                r#""Resource":"*","Condition":{"StringEquals":{"aws:SourceIp":"1.2.3.4"}}"#
            ),
            Err(ParseError::ConditionKey { .. })
        ));
        assert!(matches!(
            with(
                r#""Resource":"*""#,
                r#""Resource":"*","Condition":{"StringEquals":{"kms:RecipientAttestation:PCR00":"a"}}"#
            ),
            Err(ParseError::ConditionKey { .. })
        ));
        assert!(matches!(
            with(r#""Effect":"Allow""#, r#""Effect":"allow""#),
            Err(ParseError::Effect { .. })
        ));
        assert!(matches!(
            with(r#""Action":"kms:Decrypt""#, r#""Action":[]"#),
            Err(ParseError::Empty { .. })
        ));
        assert!(matches!(
            with(r#""Effect":"Allow""#, r#""Effect":"Allow","Effect":"Deny""#),
            Err(ParseError::DuplicateKey { .. })
        ));
        assert!(matches!(
            with("2012-10-17", "2020-01-01"),
            Err(ParseError::Version { .. })
        ));
    }

    #[test]
    fn condition_keys_are_case_insensitive_and_unique() {
        let cond = r#""Resource":"*","Condition":{"StringEqualsIgnoreCase":{"KMS:recipientattestation:pcr8":"a","kms:RecipientAttestation:imagesha384":"b"}}"#;
        let p = parse(&MINIMAL.replace(r#""Resource":"*""#, cond)).expect("parses");
        let keys: Vec<String> = p.statements[0].conditions
            [&Operator::parse("StringEqualsIgnoreCase").expect("known")]
            .keys()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            keys,
            [
                "kms:RecipientAttestation:ImageSha384",
                "kms:RecipientAttestation:PCR8"
            ]
        );
        let dup = r#""Resource":"*","Condition":{"StringEquals":{"kms:RecipientAttestation:PCR0":"a","KMS:RecipientAttestation:PCR0":"b"}}"#;
        assert!(matches!(
            parse(&MINIMAL.replace(r#""Resource":"*""#, dup)),
            Err(ParseError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn duplicate_sids_are_refused() {
        let st =
            r#"{"Sid":"A","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}"#;
        let doc = format!(r#"{{"Version":"2012-10-17","Statement":[{st},{st}]}}"#);
        assert!(matches!(parse(&doc), Err(ParseError::DuplicateSid { .. })));
    }
}
