//! The field-path compiler: path text (`request.headers.Authorization[0]`, `a["b.c"]`) into
//! segments, and all compiled paths into one trie ([`Selector`]) whose leaves are capture
//! slots.
//!
//! Data flow: **parse**, at startup only: [`Parser::new`] compiles the preset and
//! `[input.fields]` paths; `walk` then follows the trie along each line.
//!
//! Invariants: a path has 1 to [`MAX_PATH_SEGMENTS`] segments; a parser has at most
//! [`MAX_SLOTS`] capture slots; node 0 is the record itself; two fields may share a path (a
//! node then holds several slots). Errors name the problem, never a line's content.
//!
//! What it does NOT do: read a log line or convert a value.
//!
//! [`Parser::new`]: super::Parser::new

/// One step of a compiled path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

/// Longest accepted path, in segments (serde_json stops at depth 128 anyway).
pub(super) const MAX_PATH_SEGMENTS: usize = 32;

/// Parse path text (`request.headers.Authorization[0]`, `a["b.c"]`) into segments.
pub(super) fn compile_path(text: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut rest = text;
    // At the start and after '.', a key must follow.
    let mut need_key = true;
    while need_key || !rest.is_empty() {
        let at = text.len() - rest.len();
        if let Some(quoted) = rest.strip_prefix("[\"") {
            let end = quoted
                .find("\"]")
                .ok_or_else(|| format!("unterminated quoted key at byte {at}"))?;
            if end == 0 {
                return Err(format!("empty key at byte {at}"));
            }
            segments.push(Segment::Key(quoted[..end].to_owned()));
            rest = &quoted[end + 2..];
            need_key = false;
        } else if need_key {
            let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
            if end == 0 {
                return Err(format!("expected a key at byte {at}"));
            }
            segments.push(Segment::Key(rest[..end].to_owned()));
            rest = &rest[end..];
            need_key = false;
        } else if let Some(after) = rest.strip_prefix('.') {
            rest = after;
            need_key = true;
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("unterminated index at byte {at}"))?;
            let digits = &after[..end];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("index at byte {at} is not a number"));
            }
            let index = digits
                .parse::<usize>()
                .map_err(|_| format!("index at byte {at} is too large"))?;
            segments.push(Segment::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err(format!("expected '.' or '[' at byte {at}"));
        }
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(format!("more than {MAX_PATH_SEGMENTS} segments"));
        }
    }
    Ok(segments)
}

/// A node of the path trie: what to do with the value found at this point of the record.
#[derive(Debug, Clone, Default)]
pub(super) struct Node {
    /// Object keys that lead further, with the child node.
    keys: Vec<(Box<str>, usize)>,
    /// Array indexes that lead further, with the child node.
    indexes: Vec<(usize, usize)>,
    /// Capture slots that receive this value (a path ends here).
    pub(super) slots: Vec<usize>,
}

impl Node {
    pub(super) fn key_child(&self, key: &str) -> Option<usize> {
        self.keys
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, child)| *child)
    }

    pub(super) fn index_child(&self, index: usize) -> Option<usize> {
        self.indexes
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, child)| *child)
    }
}

/// Most capture slots a parser can have: every field with a few candidates.
pub(super) const MAX_SLOTS: usize = 16;

/// All compiled paths as one trie; node 0 is the record (an object).
#[derive(Debug, Clone)]
pub(super) struct Selector {
    pub(super) nodes: Vec<Node>,
}

impl Selector {
    pub(super) fn new() -> Self {
        Selector {
            nodes: vec![Node::default()],
        }
    }

    pub(super) fn insert(&mut self, path: &[Segment], slot: usize) {
        let mut node = 0;
        for segment in path {
            let existing = match segment {
                Segment::Key(key) => self.nodes[node].key_child(key),
                Segment::Index(index) => self.nodes[node].index_child(*index),
            };
            node = match existing {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    match segment {
                        Segment::Key(key) => {
                            self.nodes[node].keys.push((key.as_str().into(), child))
                        }
                        Segment::Index(index) => self.nodes[node].indexes.push((*index, child)),
                    }
                    child
                }
            };
        }
        self.nodes[node].slots.push(slot);
    }
}
