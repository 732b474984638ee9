//! The denylist's in-memory state: entries by fingerprint and by named key, the allowlist
//! and the fingerprint-version labels, changed only through [`State::apply`] (live writes and
//! journal replay alike).
//!
//! Data flow: **denylist** below [`Denylist`](super::Denylist): written by revoke/unrevoke and
//! replay, read by the check on every request the middleware forwards.
//!
//! Invariants: the maps are `DashMap`s and no guard leaves this module or the `Denylist`
//! methods; named keys are probed with borrowed `(kind, iss, id)` parts, so a miss allocates
//! nothing; an admin revocation of a token lifts its allowlisting; a new revocation or
//! allowlisting drops a legacy fingerprint-version label; [`State::live_changes`] lists
//! allowlistings last so replaying it rebuilds the same state.
//!
//! What it does NOT do: write the journal, read a clock (callers pass `now_ms`) or filter
//! detector revocations of allowlisted tokens (the caller does).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use dashmap::DashMap;

use crate::event::Fingerprint;

use super::key::NamedKind;
use super::{DenyKey, Entry, FINGERPRINT_VERSION, Origin};

/// Map key for `jti:`, `sid:` and `sub:` entries.
///
/// Its `Hash`/`Eq` are those of `(kind, iss, id)`, and it borrows as `dyn NamedKeyView`, so the
/// map can be probed with a `(kind, &str, &str)` built from a query without allocating.
#[derive(Debug, Clone)]
pub(super) struct NamedKey {
    kind: NamedKind,
    iss: Box<str>,
    id: Box<str>,
}

pub(super) trait NamedKeyView {
    fn parts(&self) -> (NamedKind, &str, &str);
}

impl NamedKeyView for NamedKey {
    fn parts(&self) -> (NamedKind, &str, &str) {
        (self.kind, &self.iss, &self.id)
    }
}

impl NamedKeyView for (NamedKind, &str, &str) {
    fn parts(&self) -> (NamedKind, &str, &str) {
        *self
    }
}

impl<'a> Borrow<dyn NamedKeyView + 'a> for NamedKey {
    fn borrow(&self) -> &(dyn NamedKeyView + 'a) {
        self
    }
}

impl Hash for dyn NamedKeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn NamedKeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn NamedKeyView + '_ {}

impl Hash for NamedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must equal the hash of the borrowed form above.
        self.parts().hash(state);
    }
}

impl PartialEq for NamedKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for NamedKey {}

/// The in-memory state; mutated only through [`State::apply`], shared by live writes and replay.
#[derive(Default)]
pub(super) struct State {
    pub(super) fingerprints: DashMap<Fingerprint, Entry>,
    pub(super) named: DashMap<NamedKey, Entry>,
    /// Allowlisted fingerprints and until when (wall-clock ms).
    pub(super) allowlist: DashMap<Fingerprint, i64>,
    /// Fingerprints (revoked or allowlisted) read from a journal as computed with another
    /// fingerprint version than [`FINGERPRINT_VERSION`], and that version. A rewrite keeps the
    /// label on their records; a new revocation or allowlisting of the same value drops it.
    pub(super) legacy: DashMap<Fingerprint, u32>,
}

/// One change, as applied in memory and written to the journal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    Revoke(DenyKey, Entry),
    Unrevoke(DenyKey),
    Allow(Fingerprint, i64),
}

impl State {
    /// Apply one change. An admin revocation of a token lifts its allowlisting (the admin
    /// has changed their mind); the caller filters detector revocations of allowlisted tokens.
    /// Returns whether an entry was removed (for `Unrevoke`).
    pub(super) fn apply(&self, change: Change) -> bool {
        match change {
            Change::Revoke(key, entry) => {
                match key {
                    DenyKey::Fingerprint(fp) => {
                        if entry.origin == Origin::Admin {
                            self.allowlist.remove(&fp);
                        }
                        self.legacy.remove(&fp);
                        self.fingerprints.insert(fp, entry);
                    }
                    named => {
                        if let Some((kind, iss, id)) = named.named_parts() {
                            let key = NamedKey {
                                kind,
                                iss: iss.into(),
                                id: id.into(),
                            };
                            self.named.insert(key, entry);
                        }
                    }
                }
                false
            }
            Change::Unrevoke(key) => self.remove(&key).is_some(),
            Change::Allow(fp, until_ms) => {
                self.legacy.remove(&fp);
                self.allowlist.insert(fp, until_ms);
                false
            }
        }
    }

    /// Apply a change read from a journal, whose `fp:` key was computed with fingerprint
    /// version `version`.
    pub(super) fn apply_replayed(&self, change: Change, version: u32) {
        let fp = match &change {
            Change::Revoke(DenyKey::Fingerprint(fp), _) | Change::Allow(fp, _) => Some(*fp),
            _ => None,
        };
        self.apply(change);
        if let Some(fp) = fp
            && version != FINGERPRINT_VERSION
        {
            self.legacy.insert(fp, version);
        }
    }

    /// The fingerprint version of `fp`, when it is not the current one.
    pub(super) fn legacy_version(&self, fp: &Fingerprint) -> Option<u32> {
        self.legacy.get(fp).map(|v| *v)
    }

    /// Revocations and allowlistings keyed on another fingerprint version.
    pub(super) fn legacy_counts(&self) -> (u64, u64) {
        let mut entries = 0;
        let mut allowlisted = 0;
        for item in self.legacy.iter() {
            entries += u64::from(self.fingerprints.contains_key(item.key()));
            allowlisted += u64::from(self.allowlist.contains_key(item.key()));
        }
        (entries, allowlisted)
    }

    pub(super) fn remove(&self, key: &DenyKey) -> Option<Entry> {
        match key.named_parts() {
            None => match key {
                DenyKey::Fingerprint(fp) => self.fingerprints.remove(fp).map(|(_, e)| e),
                _ => None,
            },
            Some(parts) => self
                .named
                .remove(&parts as &dyn NamedKeyView)
                .map(|(_, e)| e),
        }
    }

    pub(super) fn get(&self, key: &DenyKey) -> Option<Entry> {
        match key.named_parts() {
            None => match key {
                DenyKey::Fingerprint(fp) => self.fingerprints.get(fp).map(|r| r.value().clone()),
                _ => None,
            },
            Some(parts) => self
                .named
                .get(&parts as &dyn NamedKeyView)
                .map(|r| r.value().clone()),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.fingerprints.len() + self.named.len()
    }

    /// Every live entry and allowlisting, as changes that rebuild this state.
    pub(super) fn live_changes(&self, now_ms: i64) -> Vec<Change> {
        let mut out = Vec::with_capacity(self.len() + self.allowlist.len());
        for item in self.fingerprints.iter() {
            if item.value().is_live(now_ms) {
                out.push(Change::Revoke(
                    DenyKey::Fingerprint(*item.key()),
                    item.value().clone(),
                ));
            }
        }
        for item in self.named.iter() {
            if item.value().is_live(now_ms) {
                let (kind, iss, id) = item.key().parts();
                out.push(Change::Revoke(
                    DenyKey::from_named(kind, iss, id),
                    item.value().clone(),
                ));
            }
        }
        // Allowlistings last, so an admin revocation replayed before them cannot lift them.
        for item in self.allowlist.iter() {
            if now_ms < *item.value() {
                out.push(Change::Allow(*item.key(), *item.value()));
            }
        }
        out
    }
}

pub(super) fn purge(state: &State, now_ms: i64) -> usize {
    let before = state.len() + state.allowlist.len();
    state.fingerprints.retain(|_, e| e.is_live(now_ms));
    state.named.retain(|_, e| e.is_live(now_ms));
    state.allowlist.retain(|_, until| now_ms < *until);
    state
        .legacy
        .retain(|fp, _| state.fingerprints.contains_key(fp) || state.allowlist.contains_key(fp));
    before.saturating_sub(state.len() + state.allowlist.len())
}
