//! Labelled feature rows for training and evaluation: simulated (or given) access logs run
//! through the real pipeline stages, each event's [`Observation`] turned into a feature vector
//! and labelled from the ground truth.
//!
//! Data flow: log + labels + config → `app::build_stages` → `Pipeline::process_batch_observed`
//! (rule scorer) → per event: `features::extract`, the hard-rule flag, and
//! `labels::Labels::is_attacker_request` → [`DataSet`].
//!
//! Labels are `labels::SessionLabel` lines, as `simulate` writes them; a request is the
//! attacker's by `Labels::is_attacker_request`. Simulator knowledge is used for labelling
//! only, never as a feature.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, ProcessEnv};
use crate::event::{EventTime, Fingerprint, Observation};
use crate::features::{self, FEATURE_COUNT};
use crate::lab::labels::Labels;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

/// One event, labelled.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// Index into [`DataSet::sessions`].
    pub session: u32,
    /// The attacker made this request.
    pub attacker: bool,
    /// The rules stop it whatever the threshold: a hard rule (impossible travel, concurrent
    /// use) revokes, or the rules' own score reaches the operating score
    /// ([`crate::model::OPERATING_SCORE`]) and steps up.
    pub hard: bool,
    /// Event time.
    pub time: EventTime,
}

impl Row {
    /// A row no hard rule fired on, for tests.
    #[cfg(test)]
    pub(crate) fn at(session: u32, attacker: bool, secs: i64) -> Row {
        Row {
            session,
            attacker,
            hard: false,
            time: EventTime::from_secs(secs),
        }
    }
}

/// Ground truth of one session, as evaluation needs it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// One of `labels::ATTACK_TYPES` for attacked sessions.
    pub attack_type: Option<String>,
    /// First attacker request.
    pub attack_start: Option<EventTime>,
    /// For a benign session: when another session of the same user came under attack
    /// (a revocation from then on is collateral, not a false alarm).
    pub user_attack_start: Option<EventTime>,
}

/// Labelled feature rows of one or more logs, in input order.
#[derive(Debug, Clone, Default)]
pub struct DataSet {
    /// Feature vectors, one per row.
    pub x: Vec<[f64; FEATURE_COUNT]>,
    /// Labels, one per row.
    pub rows: Vec<Row>,
    /// Sessions the rows refer to.
    pub sessions: Vec<SessionInfo>,
    /// Lines read.
    pub lines: u64,
    /// Where each appended log (world) lies in `rows` and `sessions`, in append order, so
    /// thresholds can be checked world by world.
    pub worlds: Vec<WorldSpan>,
}

/// One appended log's rows and sessions inside a [`DataSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldSpan {
    /// Its rows.
    pub rows: std::ops::Range<usize>,
    /// Its sessions.
    pub sessions: std::ops::Range<usize>,
}

impl DataSet {
    /// The rows and sessions of world `span` as a set of its own (sessions renumbered from 0).
    pub fn world(&self, span: &WorldSpan) -> DataSet {
        let offset = u32::try_from(span.sessions.start).unwrap_or(u32::MAX);
        DataSet {
            x: self.x[span.rows.clone()].to_vec(),
            rows: self.rows[span.rows.clone()]
                .iter()
                .map(|r| Row {
                    session: r.session.saturating_sub(offset),
                    ..*r
                })
                .collect(),
            sessions: self.sessions[span.sessions.clone()].to_vec(),
            lines: 0,
            worlds: vec![WorldSpan {
                rows: 0..span.rows.len(),
                sessions: 0..span.sessions.len(),
            }],
        }
    }

    /// Rows made by an attacker.
    pub fn positives(&self) -> usize {
        self.rows.iter().filter(|r| r.attacker).count()
    }

    /// Append `other` (one or more worlds), renumbering its sessions.
    pub fn append(&mut self, other: DataSet) {
        let (row_base, session_base) = (self.rows.len(), self.sessions.len());
        let spans = if other.worlds.is_empty() {
            vec![WorldSpan {
                rows: 0..other.rows.len(),
                sessions: 0..other.sessions.len(),
            }]
        } else {
            other.worlds
        };
        self.worlds.extend(spans.into_iter().map(|w| WorldSpan {
            rows: w.rows.start + row_base..w.rows.end + row_base,
            sessions: w.sessions.start + session_base..w.sessions.end + session_base,
        }));
        let offset = u32::try_from(self.sessions.len()).unwrap_or(u32::MAX);
        self.x.extend(other.x);
        self.rows.extend(other.rows.into_iter().map(|mut r| {
            r.session = r.session.saturating_add(offset);
            r
        }));
        self.sessions.extend(other.sessions);
        self.lines += other.lines;
    }
}

/// What the pipeline showed for one event.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Token fingerprint.
    pub fingerprint: Fingerprint,
    /// Client address.
    pub ip: IpAddr,
    /// Event time.
    pub time: EventTime,
    /// Features.
    pub x: [f64; FEATURE_COUNT],
    /// The rules stop it whatever the threshold (see [`Row::hard`]).
    pub hard: bool,
}

/// Run `log` through the pipeline built from `config` (rule scorer: observations do not
/// depend on the scorer) and collect every event's features.
pub fn observe_log(log: &Path, config: &Path) -> anyhow::Result<(Vec<Observed>, u64)> {
    let (mut config, secrets) = Config::load(config, &ProcessEnv)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    config.detect.model = None;
    observe_with(log, &config, &secrets, |_| {})
}

/// Like [`observe_log`] with a built config, also handing every observation to `inspect`.
pub fn observe_with(
    log: &Path,
    config: &Config,
    secrets: &crate::config::Secrets,
    mut inspect: impl FnMut(&Observation),
) -> anyhow::Result<(Vec<Observed>, u64)> {
    let stages = crate::app::build_stages(config, secrets)?;
    let mut pipeline = Pipeline::new(stages, Arc::new(Metrics::new()));
    let input = log.to_str().context("log path is not UTF-8")?;
    let (mut rx, reader) = crate::source::read_all(input, crate::app::source_limits(config));
    let mut out = Vec::new();
    while let Some(batch) = rx.blocking_recv() {
        pipeline.process_batch_observed(&batch, |event, observation, assessment| {
            inspect(observation);
            out.push(Observed {
                fingerprint: event.identity.fingerprint,
                ip: event.event.client_ip,
                time: event.event.time,
                x: features::extract(observation),
                // The rule scorer's verdict: what `ModelScorer` stops whatever the model says.
                hard: assessment.hard_rule || assessment.score >= crate::model::OPERATING_SCORE,
            });
        });
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("source thread panicked"))?
        .with_context(|| format!("reading {}", log.display()))?;
    Ok((out, pipeline.totals().lines))
}

/// Labelled rows of one log.
pub fn load_set(log: &Path, labels: &Path, config: &Path) -> anyhow::Result<DataSet> {
    let labels = Labels::load(labels).with_context(|| format!("labels {}", labels.display()))?;
    let (observed, lines) = observe_log(log, config)?;
    Ok(label_rows(&labels, &observed, lines))
}

/// Label observed events against the sessions' ground truth.
pub fn label_rows(labels: &Labels, observed: &[Observed], lines: u64) -> DataSet {
    let mut data = DataSet {
        sessions: labels
            .sessions
            .iter()
            .map(|s| SessionInfo {
                attack_type: s.attack_type.clone(),
                attack_start: s.attack_start,
                user_attack_start: labels.user_attack_start(s),
            })
            .collect(),
        lines,
        ..DataSet::default()
    };
    // Events whose token the labels do not know (should not happen with simulated data)
    // get a benign session of their own per token, so they still count as benign traffic.
    let mut unknown: HashMap<Fingerprint, u32> = HashMap::new();
    for o in observed {
        let session = match labels.index_of(o.fingerprint) {
            Some(i) => u32::try_from(i).unwrap_or(u32::MAX),
            None => *unknown.entry(o.fingerprint).or_insert_with(|| {
                data.sessions.push(SessionInfo {
                    attack_type: None,
                    attack_start: None,
                    user_attack_start: None,
                });
                u32::try_from(data.sessions.len() - 1).unwrap_or(u32::MAX)
            }),
        };
        data.x.push(o.x);
        data.rows.push(Row {
            session,
            attacker: labels.is_attacker_request(o.fingerprint, o.ip, o.time),
            hard: o.hard,
            time: o.time,
        });
    }
    data
}

/// What the model learns to call risky, per row: the attacker's requests, and the owner's
/// requests after the attack began that carry evidence (`features::carries_evidence`).
///
/// The second kind matters because detection is per session: when an owner and a thief
/// interleave on one token, the owner's request back on the home network is the one that
/// shows the session going back and forth (`network_returns`). Labelled benign, it would
/// teach the model that the alternation itself is benign. The owner's requests without
/// evidence stay negative; they score 0 anyway.
pub fn targets(data: &DataSet) -> Vec<bool> {
    data.rows
        .iter()
        .zip(&data.x)
        .map(|(r, x)| {
            let after_attack = data.sessions[r.session as usize]
                .attack_start
                .is_some_and(|start| r.time >= start);
            r.attacker || (after_attack && features::carries_evidence(x))
        })
        .collect()
}

/// SHA-256 of the files, in order (hex, first 16 bytes): the data's provenance.
pub fn digest_files(paths: &[&Path]) -> anyhow::Result<String> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for path in paths {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        ctx.update(&(bytes.len() as u64).to_le_bytes());
        ctx.update(&bytes);
    }
    Ok(hex::encode(&ctx.finish().as_ref()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_attackers_requests_and_the_owners_evidence_after_the_attack() {
        let asn_change = features::FEATURES
            .iter()
            .position(|f| f.name == "asn_change")
            .expect("feature");
        let mut evidence = [0.0; FEATURE_COUNT];
        evidence[asn_change] = 1.0;
        let quiet = [0.0; FEATURE_COUNT];
        let row = Row::at;
        let data = DataSet {
            x: vec![evidence, quiet, evidence, evidence, quiet],
            rows: vec![
                row(0, false, 5),  // owner, evidence, before the attack
                row(0, true, 10),  // attacker
                row(0, false, 12), // owner, evidence, after: back on the home network
                row(1, false, 12), // benign session, evidence
                row(0, false, 13), // owner, nothing to see, after
            ],
            sessions: vec![
                SessionInfo {
                    attack_type: Some("concurrent_interleaved".into()),
                    attack_start: Some(EventTime::from_secs(10)),
                    user_attack_start: None,
                },
                SessionInfo {
                    attack_type: None,
                    attack_start: None,
                    user_attack_start: None,
                },
            ],
            lines: 5,
            worlds: Vec::new(),
        };
        assert_eq!(targets(&data), [false, true, true, false, false]);
    }
}
