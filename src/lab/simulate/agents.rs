//! Benign traffic: people using the web app, and API-automation clients.
//!
//! A person logs in once (the session), then comes back in visits whose starts follow the
//! local daily rhythm of where they are (a Poisson process thinned by [`timing::activity`]).
//! A visit is a run of page loads, each bursting into a few API calls within a couple of
//! seconds. Every visit happens on one network (two, when it switches mid-visit), chosen from
//! the person's habits — and those habits are what fools naive rules. How common each habit
//! is, and its timing, come from the world ([`super::WorldParams`], with the sources of their
//! ranges):
//!
//! | behaviour | what the log shows |
//! |---|---|
//! | `wifi_mobile_switch` | home Wi-Fi ↔ the carrier's gateway (another ASN, located 150–800 km away with a 200–500 km radius), also mid-visit |
//! | `corporate_vpn` | the corporate VPN's egress in another country, also connected mid-visit |
//! | `real_travel` | a flight at airliner speed (idle while flying), then use from the destination |
//! | `inflight_satellite` | during the flight, a satellite ISP located at the provider's home (any provider, or the one nearest the departure) from some minutes after take-off |
//! | `privacy_relay` | a relay ASN whose egress is in a nearby city, rotating per visit |
//! | `browser_update` | the same browser one version newer, from some visit on |
//! | `shared_office_nat` | the office's one NAT address, shared by every colleague in that city |
//! | `multi_device` | the user's second (or third) session, a phone or tablet, in use the same day |
//! | `api_automation` | a scripted client from one datacenter address |
//! | `home_address_churn` | the home line renumbered by its ISP: a new address in the same ISP's block (same ASN, same city) |
//! | `carrier_nat_churn` | the carrier NAT's public address changing within a visit, also into the carrier's other block (the city's mobile block, same ASN) |
//! | `roaming_home_routed` | a phone abroad whose data roams home-routed: it egresses from the home carrier while the same user is seen abroad (hotel Wi-Fi, by this or another of their sessions) |
//! | `consumer_vpn` | a commercial VPN (hosting networks, one ASN) egressing in a neighbouring or a farther country, switched on and off between and within visits |
//! | `corporate_vpn_split_tunnel` | within one visit, some requests through the corporate VPN's egress abroad and others direct from home, interleaved |
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
use super::{Plan, World, WorldParams};
use crate::lab::world::{self, CITIES, NetKind};

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
    /// Two different home-line addresses.
    pub const HOME_CHURN: u32 = 1 << 9;
    /// A carrier-NAT address change within a visit.
    pub const CGN_CHURN: u32 = 1 << 10;
    /// Home-routed roaming data while abroad.
    pub const ROAMING: u32 = 1 << 11;
    /// A consumer VPN's egress.
    pub const CONSUMER_VPN: u32 = 1 << 12;
    /// Corporate VPN and direct requests within one visit.
    pub const SPLIT: u32 = 1 << 13;
}

/// Benign behaviour names, in label order (new names are appended).
pub const BEHAVIOURS: [&str; 14] = [
    "wifi_mobile_switch",
    "corporate_vpn",
    "real_travel",
    "inflight_satellite",
    "privacy_relay",
    "browser_update",
    "shared_office_nat",
    "multi_device",
    "api_automation",
    "home_address_churn",
    "carrier_nat_churn",
    "roaming_home_routed",
    "consumer_vpn",
    "corporate_vpn_split_tunnel",
];

/// [`BEHAVIOURS`] index of `roaming_home_routed`, which needs the user's other sessions.
pub(super) const ROAMING_HOME_ROUTED: usize = 11;
/// [`BEHAVIOURS`] index of `real_travel`.
pub(super) const REAL_TRAVEL: usize = 2;

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
    /// The home carrier at home.
    Cellular,
    /// The home carrier while abroad (home-routed roaming): the same addresses as at home.
    Roaming,
    Vpn,
    /// A consumer VPN exiting in this city.
    ConsumerVpn(usize),
    Relay,
    Satellite(usize),
    Hotel(usize),
}

/// A flight, planned per user ([`plan_trip`]): every device of theirs flies.
#[derive(Debug, Clone, Copy)]
pub(super) struct Trip {
    pub dest: usize,
    pub depart: i64,
    pub arrive: i64,
}

/// The habits drawn for a person.
#[derive(Debug, Clone, Copy)]
struct Habits {
    cellular: bool,
    /// The corporate VPN.
    vpn: bool,
    /// The corporate VPN tunnels only some requests.
    split_tunnel: bool,
    /// A consumer VPN exiting in this city.
    consumer_vpn: Option<usize>,
    relay: bool,
    office: bool,
    /// Abroad, the phone's data roams home-routed.
    roaming: bool,
}

/// A carrier NAT's public address for a phone: which change this is and in which of the
/// carrier's blocks (the gateway's or the city's mobile block), and when it changes next.
#[derive(Debug, Clone, Copy)]
struct Cgn {
    epoch: u32,
    other_block: bool,
    next_change: i64,
}

impl Cgn {
    fn new(rng: &mut ChaCha8Rng, t: i64, p: &WorldParams) -> Cgn {
        Cgn {
            epoch: 0,
            other_block: false,
            next_change: t + cgn_hold(rng, p),
        }
    }
}

/// How long a carrier-NAT address holds: exponential with the world's median; a median of a
/// day or more (the nominal world) means for the whole visit, as before worlds existed.
fn cgn_hold(rng: &mut ChaCha8Rng, p: &WorldParams) -> i64 {
    if p.cgn_hold_median_min >= 24.0 * 60.0 {
        return i64::MAX / 2;
    }
    exp_ms(
        rng,
        p.cgn_hold_median_min * MINUTE as f64 / std::f64::consts::LN_2,
    )
}

/// A page load's API-call burst: at most `max_calls` calls (at least 2) within `window_ms`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Burst {
    max_calls: u32,
    window_ms: i64,
}

impl Burst {
    pub fn of(p: &WorldParams) -> Burst {
        Burst {
            max_calls: (p.burst_calls_max.round() as u32).max(2),
            window_ms: (p.burst_window_ms.round() as i64).max(100),
        }
    }
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
    /// (`roaming_home_routed` is kept by the caller only when the user is seen abroad.)
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
            s & HOME_CHURN != 0,
            s & CGN_CHURN != 0,
            s & ROAMING != 0,
            s & CONSUMER_VPN != 0,
            s & SPLIT != 0,
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
    let p = w.params();
    let home = plan.home;
    let candidates: Vec<&'static Browser> = BROWSERS
        .iter()
        .filter(|b| b.mobile != plan.desktop)
        .collect();
    let browser = candidates[pick_weighted(rng, &candidates, |b| b.weight)];
    let trip = plan.trip;
    let vpn = plan.desktop && !plan.office && rng.random_bool(p.corporate_vpn_share);
    let habits = Habits {
        cellular: !plan.desktop
            && rng.random_bool(if plan.second_device {
                p.cellular_share_second_device
            } else {
                p.cellular_share
            }),
        vpn,
        split_tunnel: vpn && rng.random_bool(p.split_tunnel_share),
        consumer_vpn: rng
            .random_bool(p.consumer_vpn_share)
            .then(|| consumer_vpn_exit(rng, home, p)),
        relay: browser.apple && rng.random_bool(p.relay_share),
        office: plan.office,
        roaming: !plan.desktop && trip.is_some() && rng.random_bool(p.roaming_home_routed_share),
    };
    let bump = rng.random_bool(p.browser_update_share);
    let version = if bump {
        rng.random_range(0..browser.versions.len() - 1)
    } else {
        rng.random_range(0..browser.versions.len())
    };
    // In-flight Wi-Fi on the user's main device only.
    let inflight = trip.is_some() && !plan.second_device && rng.random_bool(p.inflight_share);

    let mut blackouts: Vec<(i64, i64)> = blackout.into_iter().collect();
    if let Some(t) = trip {
        // To the airport before, out of it after.
        blackouts.push((t.depart - HOUR, t.arrive + 30 * MINUTE));
    }
    let lon_at = |t: i64| match trip {
        Some(tr) if t >= tr.arrive => CITIES[tr.dest].lon,
        _ => CITIES[home].lon,
    };

    let visit_median_ms = p.visit_median_min * MINUTE as f64;
    let mut visits = Vec::new();
    let mut t = login;
    while t < w.end {
        if let Some(&(_, until)) = blackouts.iter().find(|(b0, b1)| t >= *b0 && t < *b1) {
            t = next_active(rng, until, lon_at(until), p.visits_per_peak_hour);
            continue;
        }
        let len = lognormal_ms(rng, visit_median_ms, 0.8, MINUTE, HOUR);
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
        t = next_active(rng, end + 2 * MINUTE, lon_at(end), p.visits_per_peak_hour);
    }
    let wifi_after = (p.inflight_wifi_after_min * MINUTE as f64) as i64;
    if let (true, Some(tr)) = (inflight, trip)
        && tr.arrive - tr.depart >= wifi_after + HOUR
    {
        let provider = if rng.random_bool(p.inflight_nearest_provider_share) {
            catalog::nearest_satellite_home(home)
        } else {
            *pick(rng, catalog::satellite_homes())
        };
        let most = (p.inflight_visits_max.round() as u32).max(1);
        for _ in 0..rng.random_range(1..=most) {
            let start = between(rng, tr.depart + wifi_after, tr.arrive - 30 * MINUTE);
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
    let burst = Burst::of(p);
    let page_ms = p.page_interval_s * 1000.0;
    let mut first_home_ip: Option<IpAddr> = None;
    for (i, v) in visits.iter().enumerate() {
        let updated = bump_at.is_some_and(|at| v.start >= at);
        person.seen |= if updated { seen::NEW_UA } else { seen::OLD_UA };
        let ua = person.b.ua(if updated { &new_ua } else { &old_ua });
        let (first, switch) = match (v.satellite, trip) {
            (Some(provider), _) => (Net::Satellite(provider), None),
            (None, Some(tr)) if v.start >= tr.arrive => abroad_nets(rng, v, tr.dest, habits, p),
            _ => choose_nets(rng, v, CITIES[home].lon, habits, p),
        };
        let mut net = first;
        let mut cgn = is_carrier(net).then(|| Cgn::new(rng, v.start, p));
        let mut page = v.start;
        let visit = i as u32;
        while page < v.end {
            if let Some((at, next)) = switch
                && page >= at
                && net != next
            {
                net = next;
                // A new connection: a fresh carrier-NAT mapping.
                cgn = is_carrier(net).then(|| Cgn::new(rng, page, p));
            }
            let before = ip_of(w, plan, net, visit, cgn.as_ref(), page);
            if let Some(c) = cgn.as_mut()
                && page >= c.next_change
            {
                c.epoch += 1;
                c.other_block ^= rng.random_bool(p.cgn_cross_block_share);
                c.next_change = page + cgn_hold(rng, p);
            }
            let ip = ip_of(w, plan, net, visit, cgn.as_ref(), page);
            if ip != before && page > v.start {
                person.seen |= seen::CGN_CHURN;
            }
            // A split tunnel sends some requests direct from home.
            let direct = (net == Net::Vpn && habits.split_tunnel).then(|| {
                (
                    ip_of(w, plan, Net::Home, visit, None, page),
                    p.split_direct_share,
                )
            });
            let used = page_load(&mut person.b, rng, page, ip, direct, ua, w.end, burst);
            if used.main {
                person.seen |= seen_bit(net);
                if net == Net::Home {
                    note_home(&mut person.seen, &mut first_home_ip, ip);
                }
            }
            if let (true, Some((home_ip, _))) = (used.alternative, direct) {
                person.seen |= seen::HOME;
                note_home(&mut person.seen, &mut first_home_ip, home_ip);
                if used.main {
                    person.seen |= seen::SPLIT;
                }
            }
            page += exp_ms(rng, page_ms).max(3_000);
        }
    }
    person.visits = visits;
    person
}

/// Remember the first home-line address; a different one later is the line renumbered.
fn note_home(seen: &mut u32, first: &mut Option<IpAddr>, ip: IpAddr) {
    match first {
        None => *first = Some(ip),
        Some(f) if *f != ip => *seen |= seen::HOME_CHURN,
        Some(_) => {}
    }
}

fn is_carrier(net: Net) -> bool {
    matches!(net, Net::Cellular | Net::Roaming)
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

/// A flight from `home` to a city at least 400 km away. Logins fall in the run's first
/// quarter, so the flight leaves two hours or more after it (after every device's login) and
/// lands an hour or more before the end; `None` when the run is too short.
pub(super) fn plan_trip(start: i64, end: i64, rng: &mut ChaCha8Rng, home: usize) -> Option<Trip> {
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
    let logins_by = start + ((end - start) / 4).max(1);
    let (lo, hi) = (logins_by + 2 * HOUR, end - flight - HOUR);
    (hi > lo).then(|| {
        let depart = between(rng, lo, hi);
        Trip {
            dest,
            depart,
            arrive: depart + flight,
        }
    })
}

/// Where a consumer VPN exits for someone in `home`: the nearest city of another country
/// (a neighbouring country), or for some a datacenter city farther abroad.
fn consumer_vpn_exit(rng: &mut ChaCha8Rng, home: usize, p: &WorldParams) -> usize {
    let near = catalog::nearest_foreign(home);
    if rng.random_bool(p.consumer_vpn_far_share) {
        let far: Vec<usize> = catalog::datacenters()
            .iter()
            .copied()
            .filter(|c| CITIES[*c].country != CITIES[home].country && *c != near)
            .collect();
        if !far.is_empty() {
            return *pick(rng, &far);
        }
    }
    near
}

/// The network(s) of a visit at home: habits and local time decide; some visits switch
/// networks part-way (leaving the house, connecting or disconnecting a VPN).
fn choose_nets(
    rng: &mut ChaCha8Rng,
    v: &Visit,
    lon: f64,
    habits: Habits,
    p: &WorldParams,
) -> (Net, Option<(i64, Net)>) {
    let work = is_work_time(v.start, lon);
    let corporate = p.corporate_vpn_work_visit_share * if work { 1.0 } else { 1.0 / 3.0 };
    let first = if habits.office && work && rng.random_bool(0.85) {
        Net::Office
    } else if habits.vpn && rng.random_bool(corporate) {
        Net::Vpn
    } else if let Some(exit) = habits.consumer_vpn
        && rng.random_bool(p.consumer_vpn_visit_share)
    {
        Net::ConsumerVpn(exit)
    } else if habits.relay && rng.random_bool(p.relay_visit_share) {
        Net::Relay
    } else if habits.cellular && rng.random_bool(p.cellular_visit_share) {
        Net::Cellular
    } else {
        Net::Home
    };
    let switch = p.network_switch_share;
    let second = match first {
        Net::Home | Net::Office if habits.cellular && rng.random_bool(switch) => {
            Some(Net::Cellular)
        }
        Net::Cellular if rng.random_bool(switch) => Some(Net::Home),
        Net::Home if habits.vpn && rng.random_bool(0.3) => Some(Net::Vpn),
        Net::Home
            if habits.consumer_vpn.is_some() && rng.random_bool(p.consumer_vpn_toggle_share) =>
        {
            habits.consumer_vpn.map(Net::ConsumerVpn)
        }
        Net::ConsumerVpn(_) if rng.random_bool(p.consumer_vpn_toggle_share) => Some(Net::Home),
        _ => None,
    };
    let switch = second.map(|net| (between(rng, v.start + 1, v.end), net));
    (first, switch)
}

/// The network(s) of a visit abroad after the flight: hotel Wi-Fi, or for a roaming phone
/// its home carrier (home-routed roaming), switching between them part-way in some visits.
fn abroad_nets(
    rng: &mut ChaCha8Rng,
    v: &Visit,
    dest: usize,
    habits: Habits,
    p: &WorldParams,
) -> (Net, Option<(i64, Net)>) {
    let roams = habits.roaming && rng.random_bool(p.roaming_cellular_visit_share);
    let first = if roams {
        Net::Roaming
    } else {
        Net::Hotel(dest)
    };
    let second = match first {
        Net::Hotel(_) if habits.roaming && rng.random_bool(p.network_switch_share) => {
            Some(Net::Roaming)
        }
        Net::Roaming if rng.random_bool(p.network_switch_share) => Some(Net::Hotel(dest)),
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
        Net::Roaming => seen::CELLULAR | seen::ROAMING,
        Net::Vpn => seen::VPN,
        Net::ConsumerVpn(_) => seen::CONSUMER_VPN,
        Net::Relay => seen::RELAY,
        Net::Satellite(_) => seen::SATELLITE,
        Net::Hotel(_) => seen::DESTINATION,
    }
}

/// The home line's host number at `t`: the plan's, until the ISP renumbers the line, then a
/// new one per period (same ISP block, so same ASN and city).
fn home_host(plan: &Plan, t: i64) -> u32 {
    match plan.renumber {
        Some((first, period)) if t >= first => {
            let epoch = 1 + ((t - first) / period.max(1)) as u32;
            world::benign_host(plan.host.wrapping_add(epoch.wrapping_mul(104_729)))
        }
        _ => plan.host,
    }
}

/// The client address on `net` at `t` during visit number `visit`. Carrier NAT addresses
/// rotate per visit and as `cgn` changes within one; relay, consumer VPN and satellite
/// addresses rotate per visit; home addresses change only when the ISP renumbers the line;
/// office and hotel addresses do not change.
fn ip_of(w: &World<'_>, plan: &Plan, net: Net, visit: u32, cgn: Option<&Cgn>, t: i64) -> IpAddr {
    let a = &w.spec.addresses;
    let home = plan.home;
    let host = plan.host;
    match net {
        Net::Home => a.address(home, NetKind::Residential, home_host(plan, t)),
        Net::Office => a.address(home, NetKind::AltResidential, OFFICE_HOST),
        Net::Cellular | Net::Roaming => {
            let (epoch, other_block) = cgn.map_or((0, false), |c| (c.epoch, c.other_block));
            let kind = if other_block {
                NetKind::Mobile
            } else {
                NetKind::CarrierGateway
            };
            a.address(
                home,
                kind,
                world::benign_host(
                    host.wrapping_mul(7)
                        .wrapping_add(visit.wrapping_mul(131))
                        .wrapping_add(epoch.wrapping_mul(977)),
                ),
            )
        }
        Net::Vpn => a.address(
            catalog::vpn_egress_for(home),
            NetKind::CorporateVpn,
            host.wrapping_add(visit) % VPN_POOL,
        ),
        Net::ConsumerVpn(city) => a.address(
            city,
            NetKind::Vpn,
            world::benign_host(host.wrapping_mul(5).wrapping_add(visit.wrapping_mul(29))),
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

/// Which addresses a page load used.
#[derive(Debug, Clone, Copy, Default)]
struct Used {
    main: bool,
    alternative: bool,
}

/// A page load at `t`: the page, then 2 to `burst.max_calls` API calls within the burst
/// window (nothing at or after `end`). With `alternative` = `(ip, share)`, each request
/// goes from that address with that probability (split tunnelling).
#[allow(clippy::too_many_arguments)]
fn page_load(
    b: &mut SessionBuilder<'_>,
    rng: &mut ChaCha8Rng,
    t: i64,
    ip: IpAddr,
    alternative: Option<(IpAddr, f64)>,
    ua: u16,
    end: i64,
    burst: Burst,
) -> Used {
    let mut used = Used::default();
    let mut via = |rng: &mut ChaCha8Rng| match alternative {
        Some((alt, share)) if rng.random_bool(share) => {
            used.alternative = true;
            alt
        }
        _ => {
            used.main = true;
            ip
        }
    };
    let token = b.owner_token(rng, t);
    let page = *pick(rng, catalog::PAGES);
    let status = if rng.random_bool(0.05) { 304 } else { 200 };
    let from = via(rng);
    b.emit(
        t,
        from,
        token,
        ua,
        Method::Get,
        page,
        arg(rng),
        status,
        false,
    );
    for _ in 0..rng.random_range(2..=burst.max_calls) {
        let at = t + rng.random_range(80..burst.window_ms.max(81));
        if at >= end {
            continue;
        }
        let from = via(rng);
        if rng.random_bool(0.1) {
            let (path, status) = *pick(rng, catalog::API_POSTS);
            b.emit(at, from, token, ua, Method::Post, path, 0, status, false);
        } else {
            let path = *pick(rng, catalog::API_GETS);
            let status = match rng.random_range(0..100) {
                0..92 => 200,
                92..98 => 304,
                _ => 404,
            };
            b.emit(
                at,
                from,
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
    used
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
