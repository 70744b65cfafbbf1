//! Archive path normalization: the only place paths from untrusted archives are interpreted.

/// Normalizes an archive path: strips a leading `/` and `./`, drops empty and `.` components,
/// and rejects `..` and NUL. Returns `Ok(None)` for the root itself.
///
/// Absolute paths are made relative rather than refused, as tar does; the result can never
/// point outside the image root, and nothing is ever extracted to the host anyway.
pub fn normalize(raw: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    if raw.contains(&0) {
        return Err("path contains a NUL byte");
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("path contains '..'"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

/// The parent of a normalized path (`None` for a top-level entry).
pub(crate) fn parent(path: &[u8]) -> Option<&[u8]> {
    path.iter().rposition(|&b| b == b'/').map(|i| &path[..i])
}

/// The last component of a normalized path.
pub(crate) fn file_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_rejects() {
        let n = |s: &str| normalize(s.as_bytes()).map(|o| o.map(|v| String::from_utf8(v).unwrap()));
        assert_eq!(n("./usr//bin/./sh"), Ok(Some("usr/bin/sh".into())));
        assert_eq!(n("/etc/passwd"), Ok(Some("etc/passwd".into())));
        assert_eq!(n("./"), Ok(None));
        assert!(n("a/../../etc").is_err());
        assert!(n("..").is_err());
        assert!(normalize(b"a\0b").is_err());
        assert_eq!(parent(b"a/b/c"), Some(&b"a/b"[..]));
        assert_eq!(parent(b"a"), None);
        assert_eq!(file_name(b"a/b/c"), b"c");
    }
}
