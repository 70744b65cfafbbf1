//! A strict parser for the OpenMetrics text format (the subset prometheus-client emits):
//! families declared once with HELP and TYPE before their samples, sample names that match the
//! family's type (`_total` for counters, `_bucket/_sum/_count` for histograms, `_info`), valid
//! names and escaped label values, no duplicate series, cumulative buckets, and `# EOF` last.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Family {
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

pub type Families = BTreeMap<String, Family>;

fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let (name, r) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !valid_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, '\\')) => value.push('\\'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        rest = &r[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by ,".into());
        }
    }
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "gauge" | "unknown" => &[""],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        "info" => &["_info"],
        _ => &[],
    }
}

pub fn parse(text: &str) -> Result<Families, String> {
    let Some(body) = text.strip_suffix("# EOF\n") else {
        return Err("does not end with `# EOF`".into());
    };
    let mut families = Families::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    for (n, line) in body.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, arg) = (parts.next(), parts.next(), parts.next());
            let (Some(kw), Some(name)) = (kw, name) else {
                return Err(at("short comment".into()));
            };
            if !valid_name(name, true) {
                return Err(at("bad metric name".into()));
            }
            let started_here = current.as_deref() == Some(name);
            if !started_here {
                if families.contains_key(name) {
                    return Err(at("family declared twice / interleaved".into()));
                }
                families.insert(name.to_string(), Family::default());
                current = Some(name.to_string());
            }
            let f = families.get_mut(name).unwrap();
            if !f.samples.is_empty() {
                return Err(at("metadata after samples".into()));
            }
            match (kw, arg) {
                ("HELP", Some(h)) if f.help.is_none() => f.help = Some(h.to_string()),
                ("TYPE", Some(t)) if f.kind.is_empty() => {
                    if suffixes(t).is_empty() {
                        return Err(at(format!("unsupported type {t}")));
                    }
                    f.kind = t.to_string()
                }
                ("UNIT", Some(_)) => {}
                _ => return Err(at("bad or repeated metadata".into())),
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => return Err(at("sample without value".into())),
        };
        let (labels, rest) = match rest.strip_prefix('{') {
            Some(r) => parse_labels(r).map_err(at)?,
            None => (BTreeMap::new(), rest),
        };
        let value_text = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before value".into()))?;
        if value_text.contains(' ') {
            return Err(at("timestamps or exemplars are not expected".into()));
        }
        let value = parse_value(value_text).map_err(at)?;
        let family_name = current
            .clone()
            .ok_or_else(|| at("sample before any TYPE".into()))?;
        let f = families.get_mut(&family_name).unwrap();
        if f.kind.is_empty() {
            return Err(at("sample before its TYPE".into()));
        }
        let suffix = name
            .strip_prefix(family_name.as_str())
            .ok_or_else(|| at(format!("sample outside its family {family_name}")))?;
        if !suffixes(&f.kind).contains(&suffix) {
            return Err(at(format!("suffix {suffix:?} does not fit a {}", f.kind)));
        }
        if f.kind == "counter" && suffix == "_total" && (value.is_nan() || value < 0.0) {
            return Err(at("negative counter".into()));
        }
        if suffix == "_bucket" && !labels.contains_key("le") {
            return Err(at("bucket without le".into()));
        }
        if !series.insert(format!("{name}{labels:?}")) {
            return Err(at("duplicate series".into()));
        }
        f.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    for (name, f) in &families {
        if f.kind.is_empty() || f.help.is_none() {
            return Err(format!("{name}: missing TYPE or HELP"));
        }
        if f.kind == "histogram" {
            check_histogram(name, f)?;
        }
    }
    Ok(families)
}

/// Buckets cumulative per series, ending in +Inf = _count.
fn check_histogram(name: &str, f: &Family) -> Result<(), String> {
    let mut by_series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for s in &f.samples {
        let mut key = s.labels.clone();
        if s.name.ends_with("_bucket") {
            let le = parse_value(&key.remove("le").unwrap_or_default())?;
            by_series.entry(key).or_default().push((le, s.value));
        } else if s.name.ends_with("_count") {
            counts.insert(key, s.value);
        }
    }
    for (key, buckets) in by_series {
        let mut prev = (f64::NEG_INFINITY, 0.0);
        for b in &buckets {
            if b.0 <= prev.0 || b.1 < prev.1 {
                return Err(format!("{name}{key:?}: buckets not cumulative"));
            }
            prev = *b;
        }
        if prev.0 != f64::INFINITY || counts.get(&key) != Some(&prev.1) {
            return Err(format!(
                "{name}{key:?}: +Inf bucket missing or not equal to _count"
            ));
        }
    }
    Ok(())
}

/// The value of one series (`name` with exactly these labels).
pub fn value(fs: &Families, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    find(fs, name, &want)
}

/// The value of one series written as exposed: `name` or `name{k="v",...}` (any label order).
pub fn sample_value(fs: &Families, sample: &str) -> Option<f64> {
    match sample.split_once('{') {
        Some((name, rest)) => match parse_labels(rest) {
            Ok((labels, "")) => find(fs, name, &labels),
            _ => panic!("not a sample name: {sample:?}"),
        },
        None => find(fs, sample, &BTreeMap::new()),
    }
}

fn find(fs: &Families, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
    fs.values()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == name && &s.labels == labels)
        .map(|s| s.value)
}

#[test]
fn the_parser_rejects_what_breaks_the_format() {
    let good = "# HELP a_x Help.\n# TYPE a_x counter\na_x_total{k=\"v\\\"\"} 1\n# EOF\n";
    let f = parse(good).unwrap();
    assert_eq!(f["a_x"].samples[0].labels["k"], "v\"");
    for bad in [
        "# HELP a Help.\n# TYPE a counter\na 1\n# EOF\n",
        "# TYPE a gauge\na 1\n# EOF\n",
        "# HELP a H\n# TYPE a gauge\na 1\n",
        "# HELP a H\n# TYPE a gauge\na 1\na 2\n# EOF\n",
        "# HELP a H\n# TYPE a gauge\na{1=\"x\"} 1\n# EOF\n",
        "# HELP a H\n# TYPE a gauge\na one\n# EOF\n",
        "# HELP a H\n# TYPE a gauge\nb 1\n# EOF\n",
        "# HELP a H\n# TYPE a counter\na_total -1\n# EOF\n",
        "# HELP h H\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n# EOF\n",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad:?}");
    }
}
