//! Naming rules of the AWS resources a configuration value becomes. Checked up front so a bad
//! name fails `validate`, not a CloudFormation rollback twenty minutes later.

/// Longest region name in use (`ap-southeast-2`, `ap-northeast-3`, …), for bucket name budgets.
pub const MAX_BUCKET_SUFFIX: usize = "-123456789012-ap-southeast-2".len();

/// The deployment name becomes the stack name, the bucket prefix (`NAME-ACCOUNT-REGION`), IAM
/// role/profile names (`NAME-enclave`) and the KMS alias, so it must satisfy all of them: the
/// strictest is S3 (lowercase, digits, hyphens, ≤ 63 in all).
pub fn check_deployment_name(name: &str) -> Result<(), String> {
    let max = 63 - MAX_BUCKET_SUFFIX;
    if name.is_empty() || name.len() > max {
        return Err(format!(
            "must be 1–{max} characters (it prefixes the S3 bucket name)"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("may contain only lowercase letters, digits and hyphens".into());
    }
    if name.ends_with('-') || name.contains("--") {
        return Err("must not end with a hyphen or contain two in a row".into());
    }
    Ok(())
}

pub fn check_account(account: &str) -> Result<(), String> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("`{account}` is not a 12-digit AWS account id"))
    }
}

/// The ARN partition of a region.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// IAM principal ARNs accepted in key policies: roles, users and account roots.
pub fn check_principal_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && matches!(parts[1], "aws" | "aws-cn" | "aws-us-gov")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && check_account(parts[4]).is_ok()
        && (parts[5] == "root"
            || parts[5]
                .strip_prefix("role/")
                .is_some_and(|r| !r.is_empty())
            || parts[5]
                .strip_prefix("user/")
                .is_some_and(|r| !r.is_empty()));
    if arn.contains('*') {
        return Err("wildcards are not allowed in key policy principals".into());
    }
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{arn}` is not an IAM principal ARN (arn:aws:iam::ACCOUNT:root, :role/NAME or :user/NAME)"
        ))
    }
}

/// SSM parameter names: `/`-separated, ≤ 1011 characters, `[a-zA-Z0-9_.-/]`, not under `aws`/`ssm`.
pub fn check_ssm_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 1011 {
        return Err("must be 1–1011 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
    {
        return Err("may contain only letters, digits, `_ . - /`".into());
    }
    let first = name
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err("names beginning with `aws` or `ssm` are reserved by AWS".into());
    }
    if name.contains("//") || name.ends_with('/') {
        return Err("must not contain empty path segments".into());
    }
    Ok(())
}

/// POSIX-portable environment variable names.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ))
    }
}

/// IPv4 CIDR blocks (`10.0.0.0/16`); host bits must be zero, as EC2 requires.
pub fn check_cidr(cidr: &str) -> Result<(), String> {
    let bad = || format!("`{cidr}` is not an IPv4 CIDR block (e.g. 10.0.0.0/16)");
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    if u32::from(addr) & !mask != 0 {
        return Err(format!("`{cidr}` has host bits set"));
    }
    Ok(())
}

/// Lowercase hex of a fixed length: SHA-384 digests and PCR values (96 characters).
pub fn check_hex(value: &str, len: usize) -> Result<(), String> {
    if value.len() == len
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!(
            "expected {len} lowercase hex characters, got `{}`",
            abbreviate(value)
        ))
    }
}

fn abbreviate(s: &str) -> String {
    if s.chars().count() > 24 {
        format!("{}…", s.chars().take(24).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Tags per resource AWS accepts (EC2, S3, IAM, KMS, CloudFormation alike).
pub const MAX_TAGS: usize = 50;

/// Tag keys and values as every tagged service accepts them: keys 1–128 and values 0–256
/// Unicode characters of letters, digits, spaces and `_ . : / = + - @`; `aws:` is reserved.
pub fn check_tag(key: &str, value: &str) -> Result<(), String> {
    let keys = key.chars().count();
    if keys == 0 || keys > 128 {
        return Err(format!("tag keys must be 1–128 characters, got {keys}"));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err("tag keys beginning with `aws:` are reserved".into());
    }
    let values = value.chars().count();
    if values > 256 {
        return Err(format!(
            "tag values must be at most 256 characters, got {values}"
        ));
    }
    for (what, text) in [("key", key), ("value", value)] {
        if let Some(bad) = text.chars().find(|c| !is_tag_char(*c)) {
            return Err(format!(
                "tag {what} `{}` contains {bad:?}: AWS allows letters, digits, spaces and `_ . : / = + - @`",
                abbreviate(text)
            ));
        }
    }
    Ok(())
}

/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, the character class of AWS's tag pattern.
fn is_tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || "_.:/=+-@".contains(c)
}

/// An IPv4 CIDR block as the inclusive address range it covers (`check_cidr` must accept it).
pub fn cidr_range(cidr: &str) -> Option<(u32, u32)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr = u32::from(addr.parse::<std::net::Ipv4Addr>().ok()?);
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let host = if len == 0 {
        u32::MAX
    } else {
        (1u64 << (32 - len)) as u32 - 1
    };
    Some((addr & !host, addr | host))
}

/// Whether the blocks together cover every IPv4 address (`0.0.0.0/1` + `128.0.0.0/1` is `/0`).
pub fn covers_everything(cidrs: &[String]) -> bool {
    let mut ranges: Vec<(u32, u32)> = cidrs.iter().filter_map(|c| cidr_range(c)).collect();
    ranges.sort_unstable();
    let mut next: u64 = 0;
    for (lo, hi) in ranges {
        if u64::from(lo) > next {
            return false;
        }
        next = next.max(u64::from(hi) + 1);
    }
    next > u64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_names() {
        assert!(check_deployment_name("payments-prod").is_ok());
        assert!(check_deployment_name("Payments").is_err());
        assert!(check_deployment_name("a_b").is_err());
        assert!(check_deployment_name(&"a".repeat(36)).is_err());
        assert!(check_deployment_name(&"a".repeat(35)).is_ok());
        assert!(check_deployment_name("a-").is_err());
    }

    #[test]
    fn cidrs_and_arns() {
        assert!(check_cidr("10.0.0.0/16").is_ok());
        assert!(check_cidr("10.0.0.1/16").is_err());
        assert!(check_cidr("0.0.0.0/0").is_ok());
        assert!(check_cidr("10.0.0.0/33").is_err());
        assert!(check_principal_arn("arn:aws:iam::123456789012:role/admin").is_ok());
        assert!(check_principal_arn("arn:aws:iam::123456789012:role/*").is_err());
        assert!(check_principal_arn("arn:aws:s3:::bucket").is_err());
        assert!(check_ssm_name("/app/db-password").is_ok());
        assert!(check_ssm_name("/aws/x").is_err());
        assert_eq!(partition("cn-north-1"), "aws-cn");
    }

    #[test]
    fn tags_follow_aws_rules() {
        assert!(check_tag("team", "platform").is_ok());
        assert!(check_tag("cost-center/é", "Ünïcode ok = +@:").is_ok());
        assert!(
            check_tag("a", &"é".repeat(256)).is_ok(),
            "lengths count characters"
        );
        assert!(check_tag("a", &"é".repeat(257)).is_err());
        assert!(check_tag("owner", "a,b").is_err());
        assert!(check_tag("owner", "tab\there").is_err());
        assert!(check_tag("AWS:x", "v").is_err());
        assert!(check_tag("", "v").is_err());
    }

    #[test]
    fn cidr_unions() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(covers_everything(&v(&["0.0.0.0/0"])));
        assert!(covers_everything(&v(&["128.0.0.0/1", "0.0.0.0/1"])));
        assert!(covers_everything(&v(&[
            "0.0.0.0/2",
            "64.0.0.0/2",
            "128.0.0.0/1"
        ])));
        assert!(!covers_everything(&v(&["0.0.0.0/1", "128.0.0.0/2"])));
        assert!(!covers_everything(&v(&["10.0.0.0/8"])));
        assert!(!covers_everything(&[]));
        assert_eq!(cidr_range("10.0.0.0/8"), Some((0x0a00_0000, 0x0aff_ffff)));
    }
}
