//! The image's `User` (`name`, `uid`, `name:group`, `uid:gid`) resolved against the image's own
//! `/etc/passwd` and `/etc/group`, as Docker does.

use std::path::Path;

/// Numeric ids the application runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("user `{0}` is not in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("group `{0}` is not in the image's /etc/group")]
    UnknownGroup(String),
}

/// Resolves `spec` with the passwd and group files under `etc` (`/etc` in the enclave).
pub fn resolve(spec: &str, etc: &Path) -> Result<Ids, UserError> {
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(etc.join("group")).unwrap_or_default();
    resolve_in(spec, &passwd, &group)
}

fn resolve_in(spec: &str, passwd: &str, group: &str) -> Result<Ids, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // name:x:uid:gid:...
    let entry = find(passwd, user);
    let (uid, primary) = match (user.parse::<u32>(), entry) {
        (_, Some(f)) => (field(&f, 2), field(&f, 3)),
        // A numeric uid without an entry runs with gid 0, as under Docker.
        (Ok(uid), None) => (Some(uid), Some(0)),
        (Err(_), None) => (None, None),
    };
    let uid = uid.ok_or_else(|| UserError::UnknownUser(user.into()))?;
    let gid = match grp {
        None => primary.unwrap_or(0),
        Some(g) => match (g.parse::<u32>(), find(group, g)) {
            (_, Some(f)) => field(&f, 2).ok_or_else(|| UserError::UnknownGroup(g.into()))?,
            (Ok(gid), None) => gid,
            (Err(_), None) => return Err(UserError::UnknownGroup(g.into())),
        },
    };
    Ok(Ids { uid, gid })
}

/// The entry whose name (or numeric id) is `key`.
fn find(file: &str, key: &str) -> Option<Vec<String>> {
    file.lines()
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f.len() > 3 && (f[0] == key || f[2] == key))
}

fn field(f: &[String], i: usize) -> Option<u32> {
    f.get(i)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1001:\nstaff:x:50:\n";

    #[test]
    fn docker_forms() {
        let r = |s| resolve_in(s, PASSWD, GROUP);
        assert_eq!(
            r("app"),
            Ok(Ids {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            r("1000"),
            Ok(Ids {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(r("app:staff"), Ok(Ids { uid: 1000, gid: 50 }));
        assert_eq!(r("4242"), Ok(Ids { uid: 4242, gid: 0 }));
        assert_eq!(r("4242:77"), Ok(Ids { uid: 4242, gid: 77 }));
        assert_eq!(r("nobody"), Err(UserError::UnknownUser("nobody".into())));
        assert_eq!(r("app:wheel"), Err(UserError::UnknownGroup("wheel".into())));
    }
}
