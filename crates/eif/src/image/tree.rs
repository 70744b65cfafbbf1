//! The flattened filesystem: an ordered index of paths (byte order, so parents come first), with
//! OCI layer semantics applied as each layer's entries arrive.

use std::collections::BTreeMap;

use super::path::parent;
use super::ImageError;

/// Symlink hops allowed while resolving an entry's parent (as Linux's `MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: usize = 40;

/// Where a regular file's bytes are: `size` bytes at `offset` in input `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRef {
    pub source: u32,
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File(DataRef),
    Symlink(Vec<u8>),
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
}

/// One path of the flattened tree. `mode` holds permission bits only (`0o7777`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Node {
    /// A directory the image implies but does not list (a missing parent).
    pub fn implicit_dir() -> Self {
        Node {
            kind: NodeKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }
}

/// What one layer entry asks for.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create or replace `path` with `node`.
    Put { path: Vec<u8>, node: Node },
    /// A tar hardlink: `path` becomes a copy of `target`'s node (same data, independent entry).
    Link { path: Vec<u8>, target: Vec<u8> },
    /// `.wh.NAME`: delete `path` and its subtree from lower layers.
    Whiteout(Vec<u8>),
    /// `.wh..wh..opq` in `dir` (empty: the root): delete `dir`'s children from lower layers.
    Opaque(Vec<u8>),
}

impl Change {
    fn path(&self) -> &[u8] {
        match self {
            Change::Put { path, .. }
            | Change::Link { path, .. }
            | Change::Whiteout(path)
            | Change::Opaque(path) => path,
        }
    }
}

/// The flattened image, keyed by normalized path.
#[derive(Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<Vec<u8>, Node>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, path: &[u8]) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Entries in byte order of their paths, which puts every parent before its children.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Node)> {
        self.nodes.iter()
    }

    /// Applies one layer. Whiteouts (opaque ones included) only remove entries of *lower*
    /// layers, wherever they appear in the layer's tar; the other changes are then applied in
    /// tar order, a later duplicate replacing an earlier one.
    pub fn apply_layer(&mut self, layer: usize, changes: Vec<Change>) -> Result<(), ImageError> {
        let bad = |path: &[u8], reason: String| ImageError::BadEntry {
            layer,
            path: String::from_utf8_lossy(path).into_owned(),
            reason,
        };
        for c in &changes {
            match c {
                Change::Opaque(dir) => {
                    let dir = self.resolve(dir, false).map_err(|r| bad(dir, r))?;
                    self.remove_children(&dir);
                }
                Change::Whiteout(path) => {
                    let path = self.resolve(path, false).map_err(|r| bad(path, r))?;
                    self.remove(&path);
                }
                Change::Put { .. } | Change::Link { .. } => {}
            }
        }
        for c in changes {
            let raw = c.path().to_vec();
            match c {
                Change::Put { path, node } => {
                    let path = self.resolve(&path, true).map_err(|r| bad(&raw, r))?;
                    self.put(path, node);
                }
                Change::Link { path, target } => {
                    let target_path = self.resolve(&target, false).map_err(|r| bad(&raw, r))?;
                    let node = match self.nodes.get(&target_path) {
                        None => return Err(bad(&raw, "hardlink target does not exist".into())),
                        Some(Node {
                            kind: NodeKind::Dir,
                            ..
                        }) => return Err(bad(&raw, "hardlink to a directory".into())),
                        Some(n) => n.clone(),
                    };
                    let path = self.resolve(&path, true).map_err(|r| bad(&raw, r))?;
                    self.put(path, node);
                }
                Change::Whiteout(_) | Change::Opaque(_) => {}
            }
        }
        Ok(())
    }

    /// Inserts `node` at `path` with OCI replacement rules: a directory over a directory keeps
    /// the children and takes the new attributes; anything else replaces the old subtree.
    /// Missing parents are created as [`Node::implicit_dir`].
    pub fn put(&mut self, path: Vec<u8>, node: Node) {
        let mut end = 0;
        while let Some(i) = path[end..].iter().position(|&b| b == b'/') {
            end += i;
            let ancestor = &path[..end];
            match self.nodes.get(ancestor) {
                Some(Node {
                    kind: NodeKind::Dir,
                    ..
                }) => {}
                Some(_) => {
                    // Callers resolve paths first (`resolve`, `resolve_parent`), which
                    // guarantees directories here; a caller that did not wins over the image.
                    self.remove(ancestor);
                    self.nodes.insert(ancestor.to_vec(), Node::implicit_dir());
                }
                None => {
                    self.nodes.insert(ancestor.to_vec(), Node::implicit_dir());
                }
            }
            end += 1;
        }
        let both_dirs = node.kind == NodeKind::Dir
            && matches!(
                self.nodes.get(&path),
                Some(Node {
                    kind: NodeKind::Dir,
                    ..
                })
            );
        if !both_dirs {
            self.remove(&path);
        }
        self.nodes.insert(path, node);
    }

    /// Removes `path` and everything below it.
    pub fn remove(&mut self, path: &[u8]) {
        self.nodes.remove(path);
        self.remove_children(path);
    }

    fn remove_children(&mut self, dir: &[u8]) {
        let keys: Vec<Vec<u8>> = if dir.is_empty() {
            self.nodes.keys().cloned().collect()
        } else {
            let mut lo = dir.to_vec();
            lo.push(b'/');
            let mut hi = dir.to_vec();
            hi.push(b'/' + 1);
            self.nodes.range(lo..hi).map(|(k, _)| k.clone()).collect()
        };
        for k in keys {
            self.nodes.remove(&k);
        }
    }

    /// Resolves symlinks in the *parent* of `path` inside the tree (as containerd does when
    /// applying a layer), clamping `..` at the root so nothing can point outside the image.
    /// With `create`, a parent that is neither missing nor a directory is an error.
    fn resolve(&self, path: &[u8], create: bool) -> Result<Vec<u8>, String> {
        self.walk(path, false, create)
    }

    /// Where a new entry at `path` goes: its parent resolved through the image's symlinks, so
    /// `etc/x` lands in `usr/etc/x` when `etc -> usr/etc`, and the link stays a link.
    pub(crate) fn resolve_parent(&self, path: &[u8]) -> Result<Vec<u8>, String> {
        self.walk(path, false, true)
    }

    /// Makes `path` a directory the enclave's init can mount onto: a directory stays, a symlink
    /// is followed (its target made a directory when missing: `tmp -> var/tmp`), a missing path
    /// becomes a directory, and a non-directory in the image itself is replaced by one. A
    /// symlink to a non-directory is an error (replacing its target would change another file).
    pub(crate) fn ensure_mount_point(&mut self, path: &[u8]) -> Result<(), ImageError> {
        let err = |reason: String| ImageError::MountPoint {
            path: String::from_utf8_lossy(path).into_owned(),
            reason,
        };
        let target = self.walk(path, true, true).map_err(err)?;
        match self.nodes.get(&target) {
            Some(Node {
                kind: NodeKind::Dir,
                ..
            }) => Ok(()),
            Some(_) if target != path => Err(err(format!(
                "it links to /{}, which is not a directory",
                String::from_utf8_lossy(&target)
            ))),
            _ => {
                self.put(target, Node::implicit_dir());
                Ok(())
            }
        }
    }

    /// Resolves `path` component by component through the tree's symlinks (its last component
    /// too with `follow_last`), clamping `..` at the root. With `create`, a non-directory
    /// before the last component is an error.
    fn walk(&self, path: &[u8], follow_last: bool, create: bool) -> Result<Vec<u8>, String> {
        let mut pending: Vec<Vec<u8>> = path
            .split(|&b| b == b'/')
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut cur: Vec<u8> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    cur.truncate(parent(&cur).map_or(0, <[u8]>::len));
                    continue;
                }
                _ => {}
            }
            let mut next = cur.clone();
            if !next.is_empty() {
                next.push(b'/');
            }
            next.extend_from_slice(&comp);
            let last = pending.is_empty();
            if last && !follow_last {
                cur = next;
                break;
            }
            match self.nodes.get(&next).map(|n| &n.kind) {
                Some(NodeKind::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err("too many levels of symbolic links in the parent path".into());
                    }
                    if target.first() == Some(&b'/') {
                        cur.clear();
                    }
                    pending.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                }
                Some(NodeKind::Dir) | None => cur = next,
                Some(_) if create && !last => return Err("a parent path is not a directory".into()),
                Some(_) => cur = next,
            }
        }
        Ok(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(source: u32) -> Node {
        Node {
            kind: NodeKind::File(DataRef {
                source,
                offset: 0,
                size: 1,
            }),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn dir(mode: u32) -> Node {
        Node {
            kind: NodeKind::Dir,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    fn link(target: &str) -> Node {
        Node {
            kind: NodeKind::Symlink(target.as_bytes().to_vec()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }

    fn put(p: &str, node: Node) -> Change {
        Change::Put {
            path: p.as_bytes().to_vec(),
            node,
        }
    }

    fn paths(t: &Tree) -> Vec<String> {
        t.iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn whiteouts_only_hit_lower_layers() {
        let mut t = Tree::new();
        t.apply_layer(
            0,
            vec![
                put("a", dir(0o755)),
                put("a/x", file(0)),
                put("a/y", file(0)),
            ],
        )
        .unwrap();
        // Same layer: a re-created a/x survives its own whiteout and the opaque marker, wherever they are.
        t.apply_layer(
            1,
            vec![
                put("a/x", file(1)),
                Change::Opaque(b"a".to_vec()),
                Change::Whiteout(b"a/x".to_vec()),
            ],
        )
        .unwrap();
        assert_eq!(paths(&t), ["a", "a/x"]);
        assert_eq!(t.get(b"a/x"), Some(&file(1)));
    }

    #[test]
    fn parents_resolve_through_symlinks_within_the_root() {
        let mut t = Tree::new();
        t.apply_layer(
            0,
            vec![
                put("usr/lib", dir(0o755)),
                put("lib", link("usr/lib")),
                put("up", link("../../..")),
            ],
        )
        .unwrap();
        t.apply_layer(
            1,
            vec![put("lib/x.so", file(1)), put("up/etc/passwd", file(1))],
        )
        .unwrap();
        assert_eq!(
            paths(&t),
            [
                "etc",
                "etc/passwd",
                "lib",
                "up",
                "usr",
                "usr/lib",
                "usr/lib/x.so"
            ]
        );
    }

    #[test]
    fn symlink_loops_are_errors() {
        let mut t = Tree::new();
        t.apply_layer(0, vec![put("a", link("b")), put("b", link("a"))])
            .unwrap();
        assert!(matches!(
            t.apply_layer(1, vec![put("a/f", file(1))]),
            Err(ImageError::BadEntry { .. })
        ));
    }

    #[test]
    fn injection_and_mount_points_keep_the_images_symlinks() {
        let mut t = Tree::new();
        t.apply_layer(
            0,
            vec![
                put("usr/etc", dir(0o755)),
                put("etc", link("usr/etc")),
                put("tmp", link("/var/tmp")),
                put("proc", file(0)),
                put("dev", link("etc/passwd")),
                put("usr/etc/passwd", file(0)),
            ],
        )
        .unwrap();
        assert_eq!(
            t.resolve_parent(b"etc/nitro-provision/runtime.json")
                .unwrap(),
            b"usr/etc/nitro-provision/runtime.json"
        );
        t.ensure_mount_point(b"tmp").unwrap();
        assert_eq!(t.get(b"tmp"), Some(&link("/var/tmp")));
        assert_eq!(t.get(b"var/tmp"), Some(&dir(0o755)));
        // A plain file where init mounts is replaced by a directory, as before…
        t.ensure_mount_point(b"proc").unwrap();
        assert_eq!(t.get(b"proc"), Some(&dir(0o755)));
        // …but a link to another file is refused rather than clobbering its target.
        assert!(matches!(
            t.ensure_mount_point(b"dev"),
            Err(ImageError::MountPoint { .. })
        ));
        assert_eq!(t.get(b"usr/etc/passwd"), Some(&file(0)));
        t.put(b"usr/etc/x".to_vec(), file(2));
        assert!(t
            .resolve_parent(b"usr/etc/x/y")
            .is_err_and(|e| e.contains("not a directory")));
    }
}
