//! The six attacks of issue 3 and issue 15's seventh ([`crate::lab::labels::ATTACK_TYPES`], same
//! order): each replays a token the victim holds, from the attacker's own network, after the
//! victim's own traffic is generated. Browsing attackers (types 1, 2, 7) load a page every
//! [`super::WorldParams::attacker_page_interval_s`] on average.
//!
//! | # | type | theft | attacker |
//! |---|---|---|---|
//! | 1 | `far_replay_active` | during a victim visit | ≥ 3000 km away (hosting or residential), browsing |
//! | 2 | `foreign_replay_idle` | after the victim went idle long enough to fly there | another country, another browser and ASN, browsing |
//! | 3 | `scripted_same_country` | any time | same country, another ISP (hosting or second ISP), `python-requests`/`curl`/`Go-http-client` |
//! | 4 | `residential_proxy_scrape` | during a visit | 1–4 residential addresses of the victim's city's second ISP, the victim's exact User-Agent, 60–150 requests a minute on export/admin paths |
//! | 5 | `concurrent_interleaved` | early in a visit of 4+ minutes, before the victim's last request there | within 800 km on another network, browsing until the victim's visit ends (at least a minute) and past the victim's next request |
//! | 6 | `low_and_slow` | any time | a new network, 2–6 requests an hour for 3–12 hours |
//! | 7 | `cloud_same_country` | during a visit (JWT) or any time | a cloud/hosting host in a city of the victim's country, the victim's exact User-Agent, browsing at a human pace for 5–30 minutes |
//!
//! Invariants (what the labels promise): the first attacker request is at the attack start;
//! in type 5 the victim makes a request between the attacker's first and last;
//! every attacker request uses a token the victim already held at the theft (for JWTs the one
//! current then) and only while it is valid; attacker addresses come from the attacker half of
//! each block ([`world::attacker_host`]), so the victim never uses one. Types 2 and 6 need
//! hours, so their victims hold long-lived session cookies (the planner sees to it).

use std::net::IpAddr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::agents::{Person, Visit, arg};
use super::catalog::{self, BROWSERS, Browser, PathSpec};
use super::session::{Method, SessionBuilder};
use super::timing::{HOUR, MINUTE, between, exp_ms, pick};
use super::{Plan, World};
use crate::lab::world::{self, CITIES, NetKind};

/// Index of each type in [`crate::lab::labels::ATTACK_TYPES`].
pub(super) const FAR_REPLAY_ACTIVE: usize = 0;
pub(super) const FOREIGN_REPLAY_IDLE: usize = 1;
pub(super) const SCRIPTED_SAME_COUNTRY: usize = 2;
pub(super) const RESIDENTIAL_PROXY_SCRAPE: usize = 3;
pub(super) const CONCURRENT_INTERLEAVED: usize = 4;
pub(super) const LOW_AND_SLOW: usize = 5;
pub(super) const CLOUD_SAME_COUNTRY: usize = 6;

/// Speed at which the victim could have flown to the attacker's city (km/h), for type 2's
/// idle gap; an hour more covers getting to and from airports.
const PLAUSIBLE_KMH: f64 = 600.0;

/// Type 2, planned before the victim's traffic: the victim is idle during `blackout`, and
/// the attacker (in `city`) starts at `start` for `len` ms.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdlePlan {
    pub blackout: (i64, i64),
    start: i64,
    len: i64,
    city: usize,
}

/// Where and when a type-2 attacker acts: a city in another country 300–3000 km away, after
/// an idle gap long enough to fly there; the nearest foreign city when the run is too short
/// for that (the travel is then not physically possible, but the attack still happens).
pub(super) fn plan_idle(w: &World<'_>, rng: &mut ChaCha8Rng, home: usize, login: i64) -> IdlePlan {
    let len = between(rng, 5 * MINUTE, 30 * MINUTE);
    let foreign: Vec<(usize, f64)> = (0..CITIES.len())
        .filter(|c| CITIES[*c].country != CITIES[home].country)
        .map(|c| (c, world::distance_km(&CITIES[home], &CITIES[c])))
        .collect();
    let in_range: Vec<(usize, f64)> = foreign
        .iter()
        .copied()
        .filter(|(_, d)| (300.0..=3000.0).contains(d))
        .collect();
    let nearest = foreign
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((home, 0.0));
    let gap = |km: f64| ((km / PLAUSIBLE_KMH + 1.0) * HOUR as f64) as i64;
    let earliest = login + 10 * MINUTE;
    let room = |km: f64| w.end - gap(km) - len - 10 * MINUTE - earliest;
    let (city, km) = match in_range.is_empty() {
        false => *pick(rng, &in_range),
        true => nearest,
    };
    let (city, km) = if room(km) >= 0 { (city, km) } else { nearest };
    let (blackout_start, start) = if room(km) >= 0 {
        let b = earliest + between(rng, 0, room(km) + 1);
        (
            b,
            (b + gap(km) + between(rng, 0, 10 * MINUTE)).min(w.end - len),
        )
    } else {
        // Too short a run: go idle early and let the attacker in as late as possible.
        let b = (login + 2 * MINUTE).min(w.end - 1);
        (b, (w.end - len - MINUTE).max(b + 1))
    };
    let resume = start + len + between(rng, 10 * MINUTE, HOUR);
    IdlePlan {
        blackout: (blackout_start, resume),
        start,
        len,
        city,
    }
}

/// What an attack did: the first request's time and every address used, in first-use order.
pub(super) struct Outcome {
    pub start: i64,
    pub ips: Vec<IpAddr>,
}

/// Emits attacker requests with one stolen token, only while it is valid and the run lasts.
struct Thief<'a, 'k> {
    b: &'a mut SessionBuilder<'k>,
    token: u32,
    until: i64,
    end: i64,
    start: Option<i64>,
    ips: Vec<IpAddr>,
}

impl Thief<'_, '_> {
    fn usable(&self, t: i64) -> bool {
        t <= self.until && t < self.end
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        t: i64,
        ip: IpAddr,
        ua: u16,
        method: Method,
        path: PathSpec,
        arg: u32,
        status: u16,
    ) {
        if !self.usable(t) {
            return;
        }
        self.b
            .emit(t, ip, self.token, ua, method, path, arg, status, true);
        self.start = Some(self.start.map_or(t, |s| s.min(t)));
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    /// Human-like browsing from `from` to `to`: page loads every ~`page_ms`, each with 1–5
    /// API calls.
    fn browse(
        &mut self,
        rng: &mut ChaCha8Rng,
        from: i64,
        to: i64,
        ip: IpAddr,
        ua: u16,
        page_ms: f64,
    ) {
        let mut t = from;
        while t < to && self.usable(t) {
            self.request(
                t,
                ip,
                ua,
                Method::Get,
                *pick(rng, catalog::PAGES),
                arg(rng),
                200,
            );
            for _ in 0..rng.random_range(1..=5) {
                let at = (t + rng.random_range(80..2_500)).min(to);
                self.request(
                    at,
                    ip,
                    ua,
                    Method::Get,
                    *pick(rng, catalog::API_GETS),
                    arg(rng),
                    200,
                );
            }
            t += exp_ms(rng, page_ms).max(3_000);
        }
    }
}

/// Run attack `kind` against `victim`; `None` when no stolen token could be used in the run
/// (the session is then labelled benign).
pub(super) fn run(
    w: &World<'_>,
    plan: &Plan,
    kind: usize,
    rng: &mut ChaCha8Rng,
    victim: &mut Person<'_>,
    idle: Option<IdlePlan>,
) -> Option<Outcome> {
    let a = &w.spec.addresses;
    let home = victim.home;
    let thief_host = |rng: &mut ChaCha8Rng| world::attacker_host(rng.random());
    // The theft: when, which token, and until when it works.
    let theft = match (kind, idle) {
        (FOREIGN_REPLAY_IDLE, Some(plan)) => at_time(victim, plan.start, w.end),
        (FAR_REPLAY_ACTIVE | CONCURRENT_INTERLEAVED, _) => {
            during_visit(w, rng, victim, 4 * MINUTE, kind == CONCURRENT_INTERLEAVED)
        }
        (RESIDENTIAL_PROXY_SCRAPE, _) => during_visit(w, rng, victim, 3 * MINUTE, false),
        (SCRIPTED_SAME_COUNTRY | CLOUD_SAME_COUNTRY, _)
            if plan.credential == super::Credential::Jwt =>
        {
            during_visit(w, rng, victim, 3 * MINUTE, false)
        }
        (SCRIPTED_SAME_COUNTRY | CLOUD_SAME_COUNTRY, _) => {
            let t = between(rng, victim.login + MINUTE, w.end - 5 * MINUTE);
            at_time(victim, t, w.end)
        }
        (LOW_AND_SLOW, _) => {
            let lo = victim.login + 20 * MINUTE;
            let t = if w.end - 3 * HOUR > lo {
                between(rng, lo, w.end - 3 * HOUR)
            } else {
                victim.login + (w.end - victim.login) / 3
            };
            at_time(victim, t, w.end)
        }
        _ => None,
    }?;
    let (t0, token, until) = theft;
    let victim_ua = victim.b.owner_ua_at(t0);
    let other_ua = |rng: &mut ChaCha8Rng, b: &mut SessionBuilder<'_>, victim: &Browser| {
        let ua = other_browser(rng, victim).user_agent(rng.random_range(0..4));
        b.ua(&ua)
    };
    let browser = victim.browser;
    let page_ms = w.params().attacker_page_interval_s * 1000.0;
    let mut thief = Thief {
        b: &mut victim.b,
        token,
        until,
        end: w.end,
        start: None,
        ips: Vec::new(),
    };
    match kind {
        FAR_REPLAY_ACTIVE => {
            let city = far_city(rng, home);
            let net = if rng.random_bool(0.5) {
                NetKind::Hosting
            } else {
                NetKind::Residential
            };
            let ip = a.address(city, net, thief_host(rng));
            let ua = if rng.random_bool(0.5) {
                victim_ua
            } else {
                other_ua(rng, thief.b, browser)
            };
            let to = t0 + between(rng, 5 * MINUTE, 20 * MINUTE);
            thief.browse(rng, t0, to, ip, ua, page_ms);
        }
        FOREIGN_REPLAY_IDLE => {
            let plan = idle?;
            let net = *pick(
                rng,
                &[
                    NetKind::Residential,
                    NetKind::AltResidential,
                    NetKind::Hosting,
                ],
            );
            let ip = a.address(plan.city, net, thief_host(rng));
            let ua = other_ua(rng, thief.b, browser);
            thief.browse(rng, t0, t0 + plan.len, ip, ua, page_ms);
        }
        SCRIPTED_SAME_COUNTRY => {
            let city = *pick(rng, catalog::same_country(home));
            let net = if rng.random_bool(0.5) {
                NetKind::Hosting
            } else {
                NetKind::AltResidential
            };
            let ip = a.address(city, net, thief_host(rng));
            let name: &&str = pick(rng, catalog::SCRIPTED_ATTACK_UAS);
            let ua = thief.b.ua(name);
            let per_minute = rng.random_range(6.0..40.0);
            let to = t0 + between(rng, 3 * MINUTE, 15 * MINUTE);
            let mut t = t0;
            while t < to && thief.usable(t) {
                let path = if rng.random_bool(0.8) {
                    *pick(rng, catalog::API_GETS)
                } else {
                    *pick(rng, catalog::SCRAPE_PATHS)
                };
                thief.request(t, ip, ua, Method::Get, path, arg(rng), 200);
                t += exp_ms(rng, MINUTE as f64 / per_minute);
            }
        }
        RESIDENTIAL_PROXY_SCRAPE => {
            let ips: Vec<IpAddr> = (0..rng.random_range(1..=4))
                .map(|_| a.address(home, NetKind::AltResidential, thief_host(rng)))
                .collect();
            let per_minute = rng.random_range(60.0..150.0);
            let to = t0 + between(rng, 3 * MINUTE, 10 * MINUTE);
            let (mut t, mut page) = (t0, 0u32);
            while t < to && thief.usable(t) {
                page += 1;
                let ip = *pick(rng, &ips);
                let path = *pick(rng, catalog::SCRAPE_PATHS);
                let status = if rng.random_bool(0.05) { 403 } else { 200 };
                thief.request(t, ip, victim_ua, Method::Get, path, page, status);
                // Regular pacing (±30 %): every full minute holds 50+ requests.
                t += (MINUTE as f64 / per_minute * rng.random_range(0.7..1.3)) as i64;
            }
        }
        CONCURRENT_INTERLEAVED => {
            let city = if rng.random_bool(0.4) {
                home
            } else {
                near_city(rng, home, 800.0)
            };
            let net = *pick(
                rng,
                &[NetKind::Mobile, NetKind::AltResidential, NetKind::Hosting],
            );
            let ip = a.address(city, net, thief_host(rng));
            let ua = if rng.random_bool(0.7) {
                victim_ua
            } else {
                other_ua(rng, thief.b, browser)
            };
            // Concurrent means the owner is still there: the attack ends with the owner's
            // visit (which `during_visit` picked long enough to leave minutes of overlap).
            let visit_end = victim
                .visits
                .iter()
                .find(|v| v.start <= t0 && t0 < v.end)
                .map_or(t0, |v| v.end);
            let to = visit_end.clamp(t0 + MINUTE, t0 + 25 * MINUTE);
            thief.browse(rng, t0, to, ip, ua, 25_000.0);
            // Interleaved: the thief is still there after the owner's next request (which
            // `during_visit` found within the token's validity).
            if let Some(next) = owner_request_after(thief.b, t0, until)
                && request_times(thief.b, true, ..)
                    .max()
                    .is_some_and(|last| last <= next)
            {
                let at = next + between(rng, 1_000, 20_000);
                thief.browse(rng, at, at + 3_000, ip, ua, 25_000.0);
            }
        }
        LOW_AND_SLOW => {
            let (city, net) = match rng.random_range(0..10) {
                0..4 => (
                    *pick(rng, catalog::same_country(home)),
                    NetKind::AltResidential,
                ),
                4..7 => (*pick(rng, catalog::same_country(home)), NetKind::Hosting),
                _ => (rng.random_range(0..CITIES.len()), NetKind::Vpn),
            };
            let ip = a.address(city, net, thief_host(rng));
            let ua = if rng.random_bool(0.6) {
                victim_ua
            } else {
                other_ua(rng, thief.b, browser)
            };
            let span = between(rng, 3 * HOUR, 12 * HOUR).min(w.end - t0 - 1);
            let per_hour = rng.random_range(2.0..6.0);
            let n = ((span as f64 / HOUR as f64 * per_hour).round() as usize).max(3);
            let mut times: Vec<i64> = (1..n).map(|_| t0 + between(rng, 1, span.max(2))).collect();
            times.push(t0);
            times.sort_unstable();
            for t in times {
                let path = *pick(rng, catalog::API_GETS);
                thief.request(t, ip, ua, Method::Get, path, arg(rng), 200);
            }
        }
        CLOUD_SAME_COUNTRY => {
            let city = *pick(rng, catalog::same_country(home));
            let ip = a.address(city, NetKind::Hosting, thief_host(rng));
            let to = t0 + between(rng, 5 * MINUTE, 30 * MINUTE);
            thief.browse(rng, t0, to, ip, victim_ua, page_ms);
        }
        _ => return None,
    }
    let start = thief.start?;
    Some(Outcome {
        start,
        ips: thief.ips,
    })
}

/// The token the victim holds at `t`, if any is valid then: `(t, token, usable until)`.
fn at_time(victim: &Person<'_>, t: i64, end: i64) -> Option<(i64, u32, i64)> {
    let (token, until) = victim.b.token_at(t)?;
    (t < end).then_some((t, token, until.min(end - 1)))
}

/// Times of the attacker's (`attacker`) or the owner's requests in `range`.
fn request_times(
    b: &SessionBuilder<'_>,
    attacker: bool,
    range: impl std::ops::RangeBounds<i64>,
) -> impl Iterator<Item = i64> {
    b.requests
        .iter()
        .filter(move |r| r.attacker == attacker && range.contains(&r.time))
        .map(|r| r.time)
}

/// The owner's first request after `after` and no later than `by`.
fn owner_request_after(b: &SessionBuilder<'_>, after: i64, by: i64) -> Option<i64> {
    request_times(b, false, after + 1..=by).min()
}

/// A theft while the victim is in a visit, with at least `min_ms` of token validity left
/// (the best found otherwise). `early`: in the first half of the visit and before the
/// owner's last request there, with an owner request to come while the token still works
/// for half a minute more, so the victim keeps browsing while the attacker does.
fn during_visit(
    w: &World<'_>,
    rng: &mut ChaCha8Rng,
    victim: &Person<'_>,
    min_ms: i64,
    early: bool,
) -> Option<(i64, u32, i64)> {
    // An early theft must leave the owner minutes of browsing: prefer visits of 4+ minutes.
    let long: Vec<Visit> = victim
        .visits
        .iter()
        .copied()
        .filter(|v| !early || v.end - v.start >= 4 * MINUTE)
        .collect();
    let visits = if long.is_empty() {
        &victim.visits
    } else {
        &long
    };
    let mut best: Option<(i64, u32, i64)> = None;
    for _ in 0..30 {
        let v = (!visits.is_empty()).then(|| *pick(rng, visits))?;
        let hi = if early {
            let owner_last = request_times(&victim.b, false, v.start..v.end)
                .max()
                .unwrap_or(v.start);
            (v.start + (v.end - v.start) / 2).min(owner_last - 1_000)
        } else {
            v.end
        };
        if early && hi <= v.start + 5_000 {
            continue;
        }
        let t = between(rng, v.start + 5_000, hi);
        let Some(found) = at_time(victim, t, w.end) else {
            continue;
        };
        if early && owner_request_after(&victim.b, t, found.2 - 30_000).is_none() {
            continue;
        }
        if found.2 - found.0 >= min_ms {
            return Some(found);
        }
        if best.is_none_or(|b| found.2 - found.0 > b.2 - b.0) {
            best = Some(found);
        }
    }
    best
}

/// A desktop browser other than the victim's.
fn other_browser(rng: &mut ChaCha8Rng, victim: &Browser) -> &'static Browser {
    let others: Vec<&'static Browser> = BROWSERS
        .iter()
        .filter(|b| !b.mobile && b.name != victim.name)
        .collect();
    others[rng.random_range(0..others.len())]
}

/// A city at least 3000 km from `home` (the farthest of 200 tries otherwise).
fn far_city(rng: &mut ChaCha8Rng, home: usize) -> usize {
    let mut best = (home, 0.0);
    for _ in 0..200 {
        let c = rng.random_range(0..CITIES.len());
        let d = world::distance_km(&CITIES[home], &CITIES[c]);
        if d >= 3000.0 {
            return c;
        }
        if d > best.1 {
            best = (c, d);
        }
    }
    best.0
}

/// Another city within `km` of `home` (or `home` itself when none is).
fn near_city(rng: &mut ChaCha8Rng, home: usize, km: f64) -> usize {
    let near: Vec<usize> = (0..CITIES.len())
        .filter(|c| *c != home && world::distance_km(&CITIES[home], &CITIES[*c]) <= km)
        .collect();
    if near.is_empty() {
        home
    } else {
        *pick(rng, &near)
    }
}
