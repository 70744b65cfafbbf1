//! Where each key of a YAML document sits, so that errors found after deserialization (semantic
//! checks) can still name `file:line:column` and the key path.

use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser};

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A key path like `instance.ingress[0].port`, as users read it in error messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// Parses the dotted form used in code (`"enclave.cpu_count"`, `"instance.ingress.0.port"`).
    pub fn parse(dotted: &str) -> Self {
        if dotted.is_empty() {
            return KeyPath::root();
        }
        KeyPath(
            dotted
                .split('.')
                .map(|s| match s.parse::<usize>() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(s.to_string()),
                })
                .collect(),
        )
    }

    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub fn parent(&self) -> Option<Self> {
        let mut p = self.clone();
        p.0.pop().map(|_| p)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Positions of every node of the first document, by key path.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    nodes: HashMap<KeyPath, Node>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    key: Option<Pos>,
    value: Pos,
    /// Mappings and sequences are best pointed at by their key; scalars by their value.
    container: bool,
}

enum Frame {
    Map {
        path: KeyPath,
        pending_key: Option<(String, Pos)>,
    },
    Seq {
        path: KeyPath,
        next: usize,
    },
}

impl SourceMap {
    /// Indexes `text`. A YAML syntax error just ends the index early: deserialization reports it
    /// with its own location.
    pub fn build(text: &str) -> Self {
        let mut map = SourceMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = Pos {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map {
                        pending_key: pk @ None,
                        ..
                    }) = stack.last_mut()
                    {
                        *pk = Some((value.into_owned(), pos));
                    } else {
                        map.place_node(&mut stack, pos, false);
                    }
                }
                Event::Alias(_) => {
                    map.place_node(&mut stack, pos, false);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    let path = map.place_node(&mut stack, pos, true);
                    stack.push(if is_map {
                        Frame::Map {
                            path,
                            pending_key: None,
                        }
                    } else {
                        Frame::Seq { path, next: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::DocumentEnd => break,
                _ => {}
            }
        }
        map
    }

    /// Records a value node at the current position of the walk and returns its path.
    fn place_node(&mut self, stack: &mut [Frame], pos: Pos, container: bool) -> KeyPath {
        let (path, key) = match stack.last_mut() {
            None => (KeyPath::root(), None),
            Some(Frame::Seq { path, next }) => {
                let p = path.index(*next);
                *next += 1;
                (p, None)
            }
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some((k, kpos)) => (path.key(&k), Some(kpos)),
                // A complex (non-scalar) key: we do not track such keys.
                None => (path.key("?"), None),
            },
        };
        self.nodes.insert(
            path.clone(),
            Node {
                key,
                value: pos,
                container,
            },
        );
        path
    }

    /// Where the value at `path` is best pointed at: a scalar itself, a mapping or sequence by
    /// its key. When the key is absent, its nearest present ancestor, so a "missing" error
    /// still points somewhere useful.
    pub fn value_pos(&self, path: &KeyPath) -> Pos {
        if let Some(n) = self.nodes.get(path) {
            return if n.container {
                n.key.unwrap_or(n.value)
            } else {
                n.value
            };
        }
        let mut p = path.parent();
        while let Some(cur) = p {
            if let Some(n) = self.nodes.get(&cur) {
                return n.key.unwrap_or(n.value);
            }
            p = cur.parent();
        }
        Pos { line: 1, column: 1 }
    }

    /// Where the key of `path` is written (for "unknown key" errors), if present.
    pub fn key_pos(&self, path: &KeyPath) -> Option<Pos> {
        self.nodes.get(path).and_then(|n| n.key)
    }

    /// The deepest path whose key or value starts at `pos`: turns a parser's location back into
    /// the key path it belongs to.
    pub fn path_at(&self, pos: Pos) -> Option<KeyPath> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.key == Some(pos) || n.value == pos)
            .max_by_key(|(p, _)| p.0.len())
            .map(|(p, _)| p.clone())
    }

    /// The deepest path that starts on `line` at or before `column` (for locations that point
    /// inside a node rather than at its start).
    pub fn path_on_line(&self, pos: Pos) -> Option<KeyPath> {
        self.nodes
            .iter()
            .filter_map(|(p, n)| {
                let start = n.key.unwrap_or(n.value);
                (start.line == pos.line && start.column <= pos.column).then_some((p, start))
            })
            .max_by_key(|(p, start)| (start.column, p.0.len()))
            .map(|(p, _)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_keys_and_sequences() {
        let text = "name: x\ninstance:\n  type: m5.xlarge\n  ingress:\n    - port: 443\n      cidrs: [a]\n";
        let map = SourceMap::build(text);
        assert_eq!(
            map.value_pos(&KeyPath::parse("name")),
            Pos { line: 1, column: 7 }
        );
        assert_eq!(
            map.key_pos(&KeyPath::parse("instance.type")),
            Some(Pos { line: 3, column: 3 })
        );
        assert_eq!(
            map.key_pos(&KeyPath::parse("instance.ingress.0.port")),
            Some(Pos { line: 5, column: 7 })
        );
        // A scalar is pointed at by its value, a container by its key.
        assert_eq!(
            map.value_pos(&KeyPath::parse("instance.type")),
            Pos { line: 3, column: 9 }
        );
        assert_eq!(
            map.value_pos(&KeyPath::parse("instance.ingress")),
            Pos { line: 4, column: 3 }
        );
        // An absent key falls back to its nearest ancestor.
        assert_eq!(
            map.value_pos(&KeyPath::parse("instance.count")),
            Pos { line: 2, column: 1 }
        );
        assert_eq!(
            map.path_at(Pos { line: 5, column: 7 })
                .map(|p| p.to_string()),
            Some("instance.ingress[0].port".to_string())
        );
    }

    #[test]
    fn displays_non_identifier_keys_quoted() {
        let p = KeyPath::root().key("secrets").key("/app/db");
        assert_eq!(p.to_string(), "secrets[\"/app/db\"]");
    }
}
