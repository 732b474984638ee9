//! Request-rate windows on event time: the last minute in 5-s slots ([`MinuteWindow`], also
//! used per network by `networks`) and a session's per-minute EWMA baseline ([`RateState`]).
//!
//! Data flow: part of **track** (`session` and `networks` own these), feeding the rate
//! features that `score` weighs.
//!
//! Invariants: fixed size (24 bytes of slots, no allocation); counters saturate; a late event
//! inside the window counts and an older one does not; idle minutes never enter the baseline
//! and one burst moves it by a quarter of at most three times itself (winsorised EWMA).
//!
//! What it does NOT do: read a clock (event time only) or decide what rate is suspicious.

use crate::event::{EventTime, RateEvidence};

/// Rate ring: 12 slots of 5 s cover the last 55–60 s in 24 bytes. Per-second buckets would be
/// exact but cost 5× the memory for a feature that only needs "about a minute".
const RATE_SLOT_S: i64 = 5;
const RATE_SLOTS: usize = 12;

/// EWMA weight of the minute just closed. 0.25 makes the baseline follow a genuine change of
/// habit within a few minutes while one odd minute moves it by a quarter at most.
const BASELINE_ALPHA: f64 = 0.25;

/// A closed minute counts at most this multiple of the current baseline into the EWMA, so a
/// burst (an attacker's scraping) cannot normalise itself within a minute or two.
const BASELINE_WINSOR: f64 = 3.0;

/// Full minutes a session must have been active before its rate is compared with its
/// baseline; earlier, the "baseline" is noise.
const BASELINE_MIN_MINUTES: u32 = 3;

/// Requests in the last minute of event time: 12 slots of 5 s (`RATE_SLOTS`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MinuteWindow {
    /// Requests per 5-s slot; slot `s` lives at `s mod 12`.
    slots: [u16; RATE_SLOTS],
    /// Newest slot index seen (`secs div 5`).
    head_slot: i64,
}

impl MinuteWindow {
    pub(crate) fn new(time: EventTime) -> Self {
        MinuteWindow {
            slots: [0; RATE_SLOTS],
            head_slot: time.secs().div_euclid(RATE_SLOT_S),
        }
    }

    fn slot_index(slot: i64) -> usize {
        // rem_euclid of a positive modulus is in 0..RATE_SLOTS.
        slot.rem_euclid(RATE_SLOTS as i64) as usize
    }

    /// Count a request at `time`. A late event still inside the window counts; an older one
    /// does not.
    pub(crate) fn record(&mut self, time: EventTime) {
        let slot = time.secs().div_euclid(RATE_SLOT_S);
        if slot > self.head_slot {
            let advance = (slot - self.head_slot).min(RATE_SLOTS as i64);
            for cleared in (slot - advance + 1)..=slot {
                self.slots[Self::slot_index(cleared)] = 0;
            }
            self.head_slot = slot;
        }
        if slot > self.head_slot - RATE_SLOTS as i64 {
            let i = Self::slot_index(slot);
            self.slots[i] = self.slots[i].saturating_add(1);
        }
    }

    /// Requests in the minute up to the newest recorded one.
    pub(crate) fn count(&self) -> u32 {
        self.slots.iter().map(|c| u32::from(*c)).sum()
    }
}

/// Request-rate windows of one session, on event time.
#[derive(Debug, Clone)]
pub(super) struct RateState {
    /// The last minute.
    window: MinuteWindow,
    /// Minute being counted (`secs div 60`).
    minute: i64,
    /// Requests in `minute`.
    minute_count: u32,
    /// The session's first minute is partial by construction (and holds the login burst):
    /// it never enters the baseline.
    in_first_minute: bool,
    /// EWMA of requests per active minute.
    baseline: f64,
    /// Full active minutes folded into `baseline`.
    pub(super) baseline_minutes: u32,
}

impl RateState {
    pub(super) fn new(time: EventTime) -> Self {
        RateState {
            window: MinuteWindow::new(time),
            minute: time.secs().div_euclid(60),
            minute_count: 0,
            in_first_minute: true,
            baseline: 0.0,
            baseline_minutes: 0,
        }
    }

    pub(super) fn record(&mut self, time: EventTime) {
        self.window.record(time);
        let minute = time.secs().div_euclid(60);
        if minute > self.minute {
            self.close_minute();
            self.minute = minute;
            self.minute_count = 0;
        }
        if minute == self.minute {
            self.minute_count = self.minute_count.saturating_add(1);
        }
    }

    /// Fold the minute just ended into the baseline. Idle minutes are skipped, not counted as
    /// zeros: a lunch break says nothing about how intensely the owner uses the token, and
    /// zeros would make every return from idle look like an anomaly.
    fn close_minute(&mut self) {
        if std::mem::take(&mut self.in_first_minute) || self.minute_count == 0 {
            return;
        }
        let count = f64::from(self.minute_count);
        if self.baseline_minutes == 0 {
            self.baseline = count;
        } else {
            let capped = count.min(self.baseline.max(1.0) * BASELINE_WINSOR);
            self.baseline = BASELINE_ALPHA * capped + (1.0 - BASELINE_ALPHA) * self.baseline;
        }
        self.baseline_minutes = self.baseline_minutes.saturating_add(1);
    }

    pub(super) fn per_minute(&self) -> u32 {
        self.window.count()
    }

    pub(super) fn baseline(&self) -> Option<f64> {
        (self.baseline_minutes >= BASELINE_MIN_MINUTES).then_some(self.baseline)
    }

    pub(super) fn evidence(&self) -> Option<RateEvidence> {
        self.baseline().map(|baseline| RateEvidence {
            per_minute: f64::from(self.per_minute()),
            baseline_per_minute: baseline,
        })
    }
}
