//! The JSON walker: one pass of `serde_json` over a line, guided by the path trie, that
//! stores the value at each compiled path into its capture slot and skips (without building)
//! every other value.
//!
//! Data flow: **parse**, per line: `Parser::parse` runs [`RootSeed`] over the text; the
//! captured values then go to `values` for conversion.
//!
//! Invariants: strings are borrowed from the line when they have no escapes; a path ending at
//! an array captures its first element; duplicate keys: the last one wins; nothing is
//! allocated for unwanted values; the depth is bounded by `serde_json`'s recursion limit, so a
//! deeply nested line is an error, never a stack overflow.
//!
//! What it does NOT do: decide what a value means (absent placeholders are judged by
//! [`Captured::is_present`], conversions by `values`) or reject a record.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::path::{MAX_SLOTS, Node, Selector};

/// A value found at a path, borrowed from the line when it has no escapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) enum Captured<'a> {
    #[default]
    Absent,
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    /// An object, or an array whose first element was not read.
    Compound,
}

impl Captured<'_> {
    pub(super) fn is_present(&self, credential: bool) -> bool {
        match self {
            Captured::Absent | Captured::Null => false,
            Captured::Str(s) => {
                let s = s.trim();
                !(s.is_empty() || s == "-" || (credential && s == "REDACTED"))
            }
            _ => true,
        }
    }
}

pub(super) type Captures<'a> = [Captured<'a>; MAX_SLOTS];

/// Walks one JSON value with the trie node that describes it, filling capture slots.
pub(super) struct NodeSeed<'s, 'c, 'de> {
    pub(super) selector: &'s Selector,
    pub(super) node: usize,
    pub(super) captures: &'c mut Captures<'de>,
    /// Reading element 0 of an array a path ended at: capture scalars, do not descend.
    pub(super) first_element: bool,
}

impl<'de> NodeSeed<'_, '_, 'de> {
    fn slots(&self) -> &[usize] {
        &self.selector.nodes[self.node].slots
    }

    fn store(self, value: Captured<'de>) {
        let slots = &self.selector.nodes[self.node].slots;
        if let Some((last, rest)) = slots.split_last() {
            for slot in rest {
                self.captures[*slot] = value.clone();
            }
            self.captures[*last] = value;
        }
    }

    fn child(&mut self, node: usize, first_element: bool) -> NodeSeed<'_, '_, 'de> {
        NodeSeed {
            selector: self.selector,
            node,
            captures: self.captures,
            first_element,
        }
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.store(Captured::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.store(Captured::I64(v));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.store(Captured::U64(v));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.store(Captured::F64(v));
        Ok(())
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.store(Captured::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        // Only strings with escapes land here; copy them only when a path wants them.
        if !self.slots().is_empty() {
            self.store(Captured::Str(Cow::Owned(v.to_owned())));
        }
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.store(Captured::Str(Cow::Owned(v)));
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.store(Captured::Null);
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.store(Captured::Null);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        if self.first_element {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        } else {
            let selector = self.selector;
            let node = &selector.nodes[self.node];
            while let Some(child) = map.next_key_seed(KeySeed { node })? {
                match child {
                    Some(child) => map.next_value_seed(self.child(child, false))?,
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }
        self.store(Captured::Compound);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if self.first_element {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            self.store(Captured::Compound);
            return Ok(());
        }
        let selector = self.selector;
        let node = &selector.nodes[self.node];
        let ends_here = !node.slots.is_empty();
        let mut first_read = false;
        let mut index = 0usize;
        loop {
            let more = if let Some(child) = node.index_child(index) {
                seq.next_element_seed(self.child(child, false))?.is_some()
            } else if index == 0 && ends_here {
                // A path ending at an array reads its first element.
                let this = self.node;
                let more = seq.next_element_seed(self.child(this, true))?.is_some();
                first_read = more;
                more
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                break;
            }
            index += 1;
        }
        if index == 0 {
            self.store(Captured::Null);
        } else if !first_read {
            self.store(Captured::Compound);
        }
        Ok(())
    }
}

/// Resolves an object key to the trie child it leads to, without copying the key.
struct KeySeed<'n> {
    node: &'n Node,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.node.key_child(key))
    }
}

/// The record itself: an object walked with the root node; anything else is reported.
pub(super) struct RootSeed<'s, 'c, 'de> {
    pub(super) inner: NodeSeed<'s, 'c, 'de>,
}

impl<'de> DeserializeSeed<'de> for RootSeed<'_, '_, 'de> {
    /// `true` when the record is an object.
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RootSeed<'_, '_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.inner.visit_map(map)?;
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}
