//! Benign traffic: people using the web app, and API-automation clients.
//!
//! A person logs in once (the session), then comes back in visits whose starts follow the
//! local daily rhythm of where they are (a Poisson process thinned by [`timing::activity`]).
//! A visit is a run of page loads, each bursting into a few API calls within 2.5 s. Every
//! visit happens on one network (two, when it switches mid-visit), chosen from the person's
//! habits — and those habits are what fools naive rules:
//!
//! | behaviour | what the log shows |
//! |---|---|
//! | `wifi_mobile_switch` | home Wi-Fi ↔ the carrier's gateway (another ASN, located 150–800 km away with a 200–500 km radius), also mid-visit |
//! | `corporate_vpn` | the corporate VPN's egress in another country, also connected mid-visit |
//! | `real_travel` | a flight at airliner speed (idle while flying), then use from the destination |
//! | `inflight_satellite` | during the flight, a satellite ISP located at the provider's home |
//! | `privacy_relay` | a relay ASN whose egress is in a nearby city, rotating per visit |
//! | `browser_update` | the same browser one version newer, from some visit on |
//! | `shared_office_nat` | the office's one NAT address, shared by every colleague in that city |
//! | `multi_device` | the user's second session (a phone) in use at the same time |
//!
//! Behaviours are named in the label only when the generated requests actually show them.
//! API-automation clients (`api_automation`) run steady high rates from one datacenter
//! address with a scripted User-Agent from their first request on.

use std::net::IpAddr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::catalog::{self, BROWSERS, Browser};
use super::session::{Method, SessionBuilder};
use super::timing::{
    HOUR, MINUTE, activity, between, exp_ms, is_work_time, log_lerp, lognormal_ms, next_active,
    pick, pick_weighted,
};
use super::{Plan, World};
use crate::lab::world::{self, CITIES, NetKind};

/// Visits per hour at the busiest local hour.
const VISITS_PER_PEAK_HOUR: f64 = 0.35;
/// Median visit length.
const VISIT_MEDIAN_MS: f64 = 5.0 * MINUTE as f64;
/// Mean time between page loads within a visit.
const PAGE_INTERVAL_MS: f64 = 35_000.0;
/// The office NAT's host number in the city's second-ISP block (one address per office).
const OFFICE_HOST: u32 = 1;
/// Corporate VPN egress pool size per egress city.
const VPN_POOL: u32 = 64;
/// Airliner cruise speed used for flight times, km/h.
const CRUISE_KMH: f64 = 800.0;

/// Which networks a session used (bits), from which its behaviours are named.
pub(super) mod seen {
    pub const HOME: u32 = 1;
    pub const CELLULAR: u32 = 1 << 1;
    pub const VPN: u32 = 1 << 2;
    pub const OFFICE: u32 = 1 << 3;
    pub const RELAY: u32 = 1 << 4;
    pub const SATELLITE: u32 = 1 << 5;
    pub const DESTINATION: u32 = 1 << 6;
    pub const OLD_UA: u32 = 1 << 7;
    pub const NEW_UA: u32 = 1 << 8;
}

/// Benign behaviour names, in label order.
pub const BEHAVIOURS: [&str; 9] = [
    "wifi_mobile_switch",
    "corporate_vpn",
    "real_travel",
    "inflight_satellite",
    "privacy_relay",
    "browser_update",
    "shared_office_nat",
    "multi_device",
    "api_automation",
];

/// A period of activity.
#[derive(Debug, Clone, Copy)]
pub(super) struct Visit {
    pub start: i64,
    pub end: i64,
    /// In flight, on the satellite ISP of the provider whose home is this city.
    pub satellite: Option<usize>,
}

/// A network a visit runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    Home,
    Office,
    Cellular,
    Vpn,
    Relay,
    Satellite(usize),
    Hotel(usize),
}

/// A flight.
#[derive(Debug, Clone, Copy)]
struct Trip {
    dest: usize,
    depart: i64,
    arrive: i64,
}

/// The habits drawn for a person.
#[derive(Debug, Clone, Copy)]
struct Habits {
    cellular: bool,
    vpn: bool,
    relay: bool,
    office: bool,
}

/// A person's session after their own traffic is generated (attacks come next).
pub(super) struct Person<'k> {
    pub b: SessionBuilder<'k>,
    pub visits: Vec<Visit>,
    pub home: usize,
    pub login: i64,
    pub browser: &'static Browser,
    seen: u32,
    multi_device: bool,
}

impl Person<'_> {
    /// The behaviours the generated requests show, in [`BEHAVIOURS`] order.
    pub fn behaviours(&self) -> Vec<String> {
        use seen::*;
        let s = self.seen;
        let shown = [
            s & CELLULAR != 0 && s & (HOME | OFFICE | DESTINATION) != 0,
            s & VPN != 0,
            s & DESTINATION != 0,
            s & SATELLITE != 0,
            s & RELAY != 0,
            s & OLD_UA != 0 && s & NEW_UA != 0,
            s & OFFICE != 0,
            self.multi_device,
            false,
        ];
        BEHAVIOURS
            .iter()
            .zip(shown)
            .filter(|(_, on)| *on)
            .map(|(name, _)| (*name).to_owned())
            .collect()
    }
}

/// Generate a person's own traffic from their `login` on. `blackout`: a period in which
/// they make no request (an idle period an attack needs).
pub(super) fn person<'k>(
    w: &World<'k>,
    plan: &Plan,
    rng: &mut ChaCha8Rng,
    login: i64,
    blackout: Option<(i64, i64)>,
) -> Person<'k> {
    let home = plan.home;
    let candidates: Vec<&'static Browser> = BROWSERS
        .iter()
        .filter(|b| b.mobile != plan.desktop)
        .collect();
    let browser = candidates[pick_weighted(rng, &candidates, |b| b.weight)];
    let habits = Habits {
        cellular: !plan.desktop && rng.random_bool(if plan.second_device { 0.6 } else { 0.35 }),
        vpn: plan.desktop && !plan.office && rng.random_bool(0.08),
        relay: browser.apple && rng.random_bool(0.3),
        office: plan.office,
    };
    let bump = rng.random_bool(0.1);
    let version = if bump {
        rng.random_range(0..browser.versions.len() - 1)
    } else {
        rng.random_range(0..browser.versions.len())
    };
    // Only people with one device travel: a phone left at home while its owner flies would
    // be the same person in two places at once.
    let travel = blackout.is_none() && !plan.multi_device && rng.random_bool(0.05);
    let inflight = travel && rng.random_bool(0.5);

    let trip = if travel {
        plan_trip(w, rng, home, login)
    } else {
        None
    };
    let mut blackouts: Vec<(i64, i64)> = blackout.into_iter().collect();
    if let Some(t) = trip {
        // To the airport before, out of it after.
        blackouts.push((t.depart - HOUR, t.arrive + 30 * MINUTE));
    }
    let lon_at = |t: i64| match trip {
        Some(tr) if t >= tr.arrive => CITIES[tr.dest].lon,
        _ => CITIES[home].lon,
    };

    let mut visits = Vec::new();
    let mut t = login;
    while t < w.end {
        if let Some(&(_, until)) = blackouts.iter().find(|(b0, b1)| t >= *b0 && t < *b1) {
            t = next_active(rng, until, lon_at(until), VISITS_PER_PEAK_HOUR);
            continue;
        }
        let len = lognormal_ms(rng, VISIT_MEDIAN_MS, 0.8, MINUTE, HOUR);
        let mut end = (t + len).min(w.end);
        for (b0, _) in &blackouts {
            if *b0 > t && *b0 < end {
                end = *b0;
            }
        }
        visits.push(Visit {
            start: t,
            end,
            satellite: None,
        });
        t = next_active(rng, end + 2 * MINUTE, lon_at(end), VISITS_PER_PEAK_HOUR);
    }
    if let (true, Some(tr)) = (inflight, trip)
        && tr.arrive - tr.depart >= 90 * MINUTE
    {
        let provider = *pick(rng, catalog::satellite_homes());
        for _ in 0..rng.random_range(1..=3) {
            let start = between(rng, tr.depart + 30 * MINUTE, tr.arrive - 30 * MINUTE);
            let end = (start + between(rng, 5 * MINUTE, 20 * MINUTE))
                .min(tr.arrive - 10 * MINUTE)
                .min(w.end);
            if end > start {
                visits.push(Visit {
                    start,
                    end,
                    satellite: Some(provider),
                });
            }
        }
    }
    visits.sort_by_key(|v| v.start);
    // Visits never overlap: the owner's tokens are issued in event-time order.
    let mut last_end = i64::MIN;
    visits.retain_mut(|v| {
        v.start = v.start.max(last_end);
        last_end = last_end.max(v.end);
        v.end > v.start
    });

    let mut person = Person {
        b: builder(w, plan, rng),
        visits: Vec::new(),
        home,
        login,
        browser,
        seen: 0,
        multi_device: plan.multi_device,
    };
    let old_ua = browser.user_agent(version);
    let new_ua = browser.user_agent(version + 1);
    let bump_at = bump.then(|| between(rng, login + 10 * MINUTE, w.end));
    for (i, v) in visits.iter().enumerate() {
        let updated = bump_at.is_some_and(|at| v.start >= at);
        person.seen |= if updated { seen::NEW_UA } else { seen::OLD_UA };
        let ua = person.b.ua(if updated { &new_ua } else { &old_ua });
        let (first, switch) = match (v.satellite, trip) {
            (Some(provider), _) => (Net::Satellite(provider), None),
            (None, Some(tr)) if v.start >= tr.arrive => (Net::Hotel(tr.dest), None),
            _ => choose_nets(rng, v, CITIES[home].lon, habits),
        };
        let mut net = first;
        let mut ip = ip_of(w, plan, home, net, i as u32);
        let mut page = v.start;
        while page < v.end {
            if let Some((at, next)) = switch
                && page >= at
                && net != next
            {
                net = next;
                ip = ip_of(w, plan, home, net, i as u32);
            }
            person.seen |= seen_bit(net);
            page_load(&mut person.b, rng, page, ip, ua, w.end);
            page += exp_ms(rng, PAGE_INTERVAL_MS).max(3_000);
        }
    }
    person.visits = visits;
    person
}

/// The session of `plan`, with the world's keys and token refresh settings.
fn builder<'k>(w: &World<'k>, plan: &Plan, rng: &mut ChaCha8Rng) -> SessionBuilder<'k> {
    SessionBuilder::new(
        w.keys,
        plan.credential,
        plan.user.clone(),
        rng,
        w.spec.refresh_s,
        w.lifetime_s,
    )
}

/// When a person logs in: in the first quarter of the run, preferring their waking hours.
pub(super) fn login_time(w: &World<'_>, rng: &mut ChaCha8Rng, lon: f64) -> i64 {
    let span = ((w.end - w.start) / 4).max(1);
    let mut t = w.start;
    for _ in 0..50 {
        t = w.start + between(rng, 0, span);
        if rng.random::<f64>() < activity(t, lon) {
            break;
        }
    }
    t
}

/// A flight from `home` to a city at least 400 km away, leaving an hour or more after login
/// and landing an hour or more before the end; `None` when the run is too short.
fn plan_trip(w: &World<'_>, rng: &mut ChaCha8Rng, home: usize, login: i64) -> Option<Trip> {
    let mut dest = home;
    for _ in 0..50 {
        dest = rng.random_range(0..CITIES.len());
        if world::distance_km(&CITIES[home], &CITIES[dest]) >= 400.0 {
            break;
        }
    }
    let km = world::distance_km(&CITIES[home], &CITIES[dest]);
    if km < 400.0 {
        return None;
    }
    // Taxi, climb and descent add half an hour to the cruise.
    let flight = ((km / CRUISE_KMH + 0.5) * HOUR as f64) as i64;
    let (lo, hi) = (login + HOUR + HOUR, w.end - flight - HOUR);
    (hi > lo).then(|| {
        let depart = between(rng, lo, hi);
        Trip {
            dest,
            depart,
            arrive: depart + flight,
        }
    })
}

/// The network(s) of a visit at home: habits and local time decide; some visits switch
/// networks part-way (leaving the house, connecting the VPN).
fn choose_nets(
    rng: &mut ChaCha8Rng,
    v: &Visit,
    lon: f64,
    habits: Habits,
) -> (Net, Option<(i64, Net)>) {
    let work = is_work_time(v.start, lon);
    let first = if habits.office && work && rng.random_bool(0.85) {
        Net::Office
    } else if habits.vpn && rng.random_bool(if work { 0.6 } else { 0.2 }) {
        Net::Vpn
    } else if habits.relay && rng.random_bool(0.7) {
        Net::Relay
    } else if habits.cellular && rng.random_bool(0.45) {
        Net::Cellular
    } else {
        Net::Home
    };
    let second = match first {
        Net::Home | Net::Office if habits.cellular && rng.random_bool(0.35) => Some(Net::Cellular),
        Net::Cellular if rng.random_bool(0.35) => Some(Net::Home),
        Net::Home if habits.vpn && rng.random_bool(0.3) => Some(Net::Vpn),
        _ => None,
    };
    let switch = second.map(|net| (between(rng, v.start + 1, v.end), net));
    (first, switch)
}

fn seen_bit(net: Net) -> u32 {
    match net {
        Net::Home => seen::HOME,
        Net::Office => seen::OFFICE,
        Net::Cellular => seen::CELLULAR,
        Net::Vpn => seen::VPN,
        Net::Relay => seen::RELAY,
        Net::Satellite(_) => seen::SATELLITE,
        Net::Hotel(_) => seen::DESTINATION,
    }
}

/// The client address on `net` during visit number `visit`. Carrier NAT, relay and satellite
/// addresses rotate per visit; home, office and hotel addresses do not.
fn ip_of(w: &World<'_>, plan: &Plan, home: usize, net: Net, visit: u32) -> IpAddr {
    let a = &w.spec.addresses;
    let host = plan.host;
    match net {
        Net::Home => a.address(home, NetKind::Residential, host),
        Net::Office => a.address(home, NetKind::AltResidential, OFFICE_HOST),
        Net::Cellular => a.address(
            home,
            NetKind::CarrierGateway,
            world::benign_host(host.wrapping_mul(7).wrapping_add(visit.wrapping_mul(131))),
        ),
        Net::Vpn => a.address(
            catalog::vpn_egress_for(home),
            NetKind::CorporateVpn,
            host.wrapping_add(visit) % VPN_POOL,
        ),
        Net::Relay => a.address(
            catalog::relay_egress_for(home),
            NetKind::Relay,
            world::benign_host(host.wrapping_mul(3).wrapping_add(visit.wrapping_mul(17))),
        ),
        Net::Satellite(provider) => a.address(
            provider,
            NetKind::Satellite,
            world::benign_host(host.wrapping_add(visit.wrapping_mul(13))),
        ),
        Net::Hotel(city) => a.address(
            city,
            NetKind::Residential,
            world::benign_host(host.wrapping_add(4000)),
        ),
    }
}

/// A page load at `t`: the page, then 2–8 API calls within 2.5 s (nothing at or after `end`).
pub(super) fn page_load(
    b: &mut SessionBuilder<'_>,
    rng: &mut ChaCha8Rng,
    t: i64,
    ip: IpAddr,
    ua: u16,
    end: i64,
) {
    let token = b.owner_token(rng, t);
    let page = *pick(rng, catalog::PAGES);
    let status = if rng.random_bool(0.05) { 304 } else { 200 };
    b.emit(t, ip, token, ua, Method::Get, page, arg(rng), status, false);
    for _ in 0..rng.random_range(2..=8) {
        let at = t + rng.random_range(80..2_500);
        if at >= end {
            continue;
        }
        if rng.random_bool(0.1) {
            let (path, status) = *pick(rng, catalog::API_POSTS);
            b.emit(at, ip, token, ua, Method::Post, path, 0, status, false);
        } else {
            let path = *pick(rng, catalog::API_GETS);
            let status = match rng.random_range(0..100) {
                0..92 => 200,
                92..98 => 304,
                _ => 404,
            };
            b.emit(
                at,
                ip,
                token,
                ua,
                Method::Get,
                path,
                arg(rng),
                status,
                false,
            );
        }
    }
}

/// The number in a numbered path.
pub(super) fn arg(rng: &mut ChaCha8Rng) -> u32 {
    rng.random_range(1..5_000)
}

/// An API-automation client: one datacenter address, a scripted User-Agent, a steady
/// 3–20 requests a minute (by its plan's rate quantile) from its first request to the end of
/// the run.
pub(super) fn automation<'k>(
    w: &World<'k>,
    plan: &Plan,
    rng: &mut ChaCha8Rng,
) -> SessionBuilder<'k> {
    let mut b = builder(w, plan, rng);
    let city = *pick(rng, catalog::datacenters());
    let ip = w.spec.addresses.address(city, NetKind::Hosting, plan.host);
    let name: &&str = pick(rng, catalog::AUTOMATION_UAS);
    let ua = b.ua(name);
    let interval = MINUTE as f64 / log_lerp(3.0, 20.0, plan.rate_quantile);
    let mut t = w.start + between(rng, 0, (5 * MINUTE).min((w.end - w.start) / 10));
    while t < w.end {
        let token = b.owner_token(rng, t);
        if rng.random_bool(0.1) {
            let (path, status) = catalog::API_POSTS[1];
            b.emit(t, ip, token, ua, Method::Post, path, 0, status, false);
        } else {
            let path = *pick(rng, catalog::AUTOMATION_PATHS);
            b.emit(t, ip, token, ua, Method::Get, path, arg(rng), 200, false);
        }
        t += (interval * rng.random_range(0.8..1.2)) as i64;
    }
    b
}
