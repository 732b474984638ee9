//! A simulated world's parameters: every prevalence and behaviour parameter the generator uses,
//! each with a documented range and where that range comes from (issue 15's domain
//! randomisation).
//!
//! Where it sits: in front of the generator. [`WorldParams::nominal`] is the world the
//! simulator produced before worlds existed (its former constants), so the demo, `train`'s
//! defaults and existing tests keep their meaning: the behaviours issue 15 added are off in it
//! (a share of 0, or a carrier-NAT hold of a day: one address per visit, as before), values
//! outside the ranges drawn from. [`WorldParams::draw`] draws one value
//! per parameter from its range (uniform, or log-uniform for durations and rates that span an
//! order of magnitude), from a ChaCha8 stream seeded by the *world seed* — separate from the
//! traffic seed, so the same world can be simulated with many traffic seeds and evaluation
//! worlds can use world seeds never used in training or tuning. [`super::SimSpec::with_params`]
//! puts a world into a spec; `tokenwatch simulate --world-seed N` does it and writes the values
//! to `world.json`.
//!
//! Every value is an `f64` (counts are rounded where they are used), so drawing, checking and
//! documenting are one loop over [`PARAMS`]. `docs/worlds.md` holds the same table (a unit test
//! keeps the two in step).
//!
//! # Parameters and sources
//!
//! Ranges rest on measurement papers, standards and vendor documentation where one exists;
//! where none pins a number down the range is a judgement, and the table says so. "Share" is a
//! share of people (or of the group named), "per visit" a probability per visit.
//!
//! | parameter | nominal | range | scale | source |
//! |---|---|---|---|---|
//! | `automation_share` | 0.01 | 0.003–0.03 | log | judgement: integrations among a SaaS app's sessions |
//! | `desktop_share` | 0.55 | 0.35–0.65 | lin | StatCounter Global Stats, desktop vs mobile platform share 2023–24 |
//! | `office_share` | 0.12 | 0.05–0.3 | lin | judgement, informed by WFH Research SWAA (Barrero, Bloom, Davis) days on site |
//! | `multi_device_share` | 0.1 | 0.05–0.35 | lin | judgement; Pew Research Mobile Fact Sheet (most adults own a phone and a computer) |
//! | `third_device_share` | 0 | 0–0.4 | lin | judgement; Pew Research (about half of US adults own a tablet) |
//! | `home_renumber_share` | 0 | 0.05–0.5 | lin | Padmanabhan et al., "Reasons Dynamic Addresses Change", IMC 2016 (periodic renumbering in some ISPs) |
//! | `home_renumber_period_h` | 24 | 12–168 | log | Padmanabhan et al. IMC 2016 (24 h the most common period; others days to a week) |
//! | `cellular_share` | 0.35 | 0.2–0.7 | lin | Opensignal "Time on Wi-Fi" reports (phones spend most, not all, time on Wi-Fi) |
//! | `cellular_share_second_device` | 0.6 | 0.4–0.9 | lin | Opensignal "Time on Wi-Fi"; judgement for second devices |
//! | `cellular_visit_share` | 0.45 | 0.2–0.7 | lin | Opensignal "Time on Wi-Fi" |
//! | `network_switch_share` | 0.35 | 0.1–0.5 | lin | judgement: leaving or reaching Wi-Fi mid-visit |
//! | `cgn_hold_median_min` | 1440 | 1–60 | log | Richter et al., "A Multi-perspective Analysis of Carrier-Grade NAT Deployment", IMC 2016 (mobile CGN, pooled public addresses change between connections) |
//! | `cgn_cross_block_share` | 0 | 0–0.8 | lin | Richter et al. IMC 2016 (CGN pools span several blocks); judgement for the share |
//! | `travel_share` | 0.05 | 0.01–0.1 | lin | judgement, far above the population's flight rate (IATA: ~12 M passengers a day) so travellers are represented |
//! | `inflight_share` | 0.5 | 0.1–0.6 | lin | Rula et al., "Mile High WiFi", WWW 2018; judgement for the take rate among app users |
//! | `inflight_wifi_after_min` | 30 | 10–45 | lin | Rula et al. WWW 2018; FAA PED rules (Wi-Fi above 10,000 ft) |
//! | `inflight_visits_max` | 3 | 1–5 | lin | judgement |
//! | `inflight_nearest_provider_share` | 0 | 0–1 | lin | Rula et al. WWW 2018 (egress at the provider's ground network, not the plane); judgement for airline–provider ties |
//! | `roaming_home_routed_share` | 0 | 0.6–1 | lin | Mandalari et al., "Experience: Implications of Roaming in Europe", MobiCom 2018 (home-routed roaming the norm) |
//! | `roaming_cellular_visit_share` | 0.5 | 0.2–0.8 | lin | judgement: roaming data versus hotel Wi-Fi |
//! | `consumer_vpn_share` | 0 | 0.01–0.15 | log | GWI VPN reports (~30 % of internet users used a VPN in a month); judgement for daily use |
//! | `consumer_vpn_visit_share` | 0.5 | 0.2–0.9 | lin | judgement: VPN switched on for some visits |
//! | `consumer_vpn_toggle_share` | 0.25 | 0.05–0.5 | lin | judgement: switched on or off mid-visit |
//! | `consumer_vpn_far_share` | 0.3 | 0.1–0.7 | lin | judgement; VPN vendors' server lists (US, UK, NL, DE exits) |
//! | `corporate_vpn_share` | 0.08 | 0.02–0.2 | lin | judgement: remote desktop workers on the company VPN |
//! | `corporate_vpn_work_visit_share` | 0.6 | 0.3–0.9 | lin | judgement |
//! | `split_tunnel_share` | 0 | 0–0.8 | lin | Microsoft Learn "VPN split tunnelling for Microsoft 365"; Cisco Secure Client split-tunnel docs; judgement for the share |
//! | `split_direct_share` | 0.5 | 0.2–0.8 | lin | judgement: requests that bypass the tunnel |
//! | `relay_share` | 0.3 | 0.05–0.4 | lin | Sattler et al., "Towards a Tectonic Traffic Shift? Investigating Apple's New Relay Network", IMC 2022; judgement for the share of Safari users |
//! | `relay_visit_share` | 0.7 | 0.5–1 | lin | judgement |
//! | `browser_update_share` | 0.1 | 0.03–0.25 | lin | Chromium release schedule (4 weeks, staged rollout); judgement |
//! | `visits_per_peak_hour` | 0.35 | 0.15–0.8 | log | judgement |
//! | `visit_median_min` | 5 | 2–15 | log | judgement |
//! | `page_interval_s` | 35 | 10–90 | log | judgement |
//! | `burst_calls_max` | 8 | 4–24 | log | HTTP Archive Web Almanac (dozens of requests per page; first-party API calls are a part); judgement |
//! | `burst_window_ms` | 2500 | 1000–6000 | log | HTTP Archive Web Almanac; judgement |
//! | `refresh_s` | 900 | 300–3600 | log | RFC 6749 / IdP docs: access tokens live 5–60 min (Okta 1 h default, Microsoft identity platform 60–90 min) |
//! | `attacker_page_interval_s` | 30 | 10–90 | log | judgement: a human pace for browsing attackers |

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How a parameter is drawn from its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Uniform in `[lo, hi]`.
    Linear,
    /// Log-uniform in `[lo, hi]` (both positive).
    Log,
}

/// One parameter's documentation: its name (the field of [`WorldParams`]), nominal value,
/// range, scale and source.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// Field name.
    pub name: &'static str,
    /// The value in the nominal world.
    pub nominal: f64,
    /// Lower end of the range.
    pub lo: f64,
    /// Upper end of the range.
    pub hi: f64,
    /// How it is drawn.
    pub scale: Scale,
    /// Where the range comes from (or that it is a judgement).
    pub source: &'static str,
}

/// Declares [`WorldParams`] and [`PARAMS`] from one list, so the struct, its ranges and their
/// sources cannot drift apart.
macro_rules! world_params {
    ($( $(#[doc = $doc:literal])* $name:ident = $nominal:expr, [$lo:expr, $hi:expr], $scale:ident, $source:literal; )*) => {
        /// One world's behaviour prevalences and parameters (see the module docs for ranges
        /// and sources).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct WorldParams {
            $( $(#[doc = $doc])* pub $name: f64, )*
        }

        /// Every parameter's range and source, in [`WorldParams`] field order.
        pub const PARAMS: &[ParamSpec] = &[
            $( ParamSpec {
                name: stringify!($name),
                nominal: $nominal,
                lo: $lo,
                hi: $hi,
                scale: Scale::$scale,
                source: $source,
            }, )*
        ];

        impl WorldParams {
            /// The world the simulator produced before worlds were drawn: its former constants,
            /// with the behaviours added since switched off.
            pub fn nominal() -> WorldParams {
                WorldParams { $( $name: $nominal, )* }
            }

            /// Every value, in [`PARAMS`] order.
            pub fn values(&self) -> Vec<(&'static str, f64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }

            /// Build from values in [`PARAMS`] order.
            fn from_values(values: &[f64]) -> WorldParams {
                let mut it = values.iter().copied();
                WorldParams { $( $name: it.next().unwrap_or($nominal), )* }
            }
        }
    };
}

world_params! {
    /// Share of users who are API-automation clients (from 20 users up).
    automation_share = 0.01, [0.003, 0.03], Log, "judgement";
    /// Share of people whose main device is a desktop or laptop.
    desktop_share = 0.55, [0.35, 0.65], Linear, "StatCounter Global Stats platform share";
    /// Share of desktop users who work in an office behind its shared NAT.
    office_share = 0.12, [0.05, 0.30], Linear, "judgement; WFH Research SWAA";
    /// Share of people who also use a second device (a phone) the same day.
    multi_device_share = 0.10, [0.05, 0.35], Linear, "judgement; Pew Research Mobile Fact Sheet";
    /// Share of multi-device people with a third device (a tablet).
    third_device_share = 0.0, [0.0, 0.4], Linear, "judgement; Pew Research tablet ownership";
    /// Share of home lines whose ISP renumbers them periodically.
    home_renumber_share = 0.0, [0.05, 0.5], Linear, "Padmanabhan et al. IMC 2016";
    /// Renumbering period of those lines, hours.
    home_renumber_period_h = 24.0, [12.0, 168.0], Log, "Padmanabhan et al. IMC 2016";
    /// Share of phone users (main device) who sometimes use cellular data.
    cellular_share = 0.35, [0.2, 0.7], Linear, "Opensignal Time on Wi-Fi";
    /// Same, for second devices.
    cellular_share_second_device = 0.6, [0.4, 0.9], Linear, "Opensignal Time on Wi-Fi; judgement";
    /// Per visit: a cellular user starts it on cellular.
    cellular_visit_share = 0.45, [0.2, 0.7], Linear, "Opensignal Time on Wi-Fi";
    /// Per visit: the network changes part-way (Wi-Fi ↔ cellular, VPN on).
    network_switch_share = 0.35, [0.1, 0.5], Linear, "judgement";
    /// Median time a phone keeps one carrier-NAT public address, minutes.
    cgn_hold_median_min = 1440.0, [1.0, 60.0], Log, "Richter et al. IMC 2016";
    /// Share of carrier-NAT address changes that land in the carrier's other block.
    cgn_cross_block_share = 0.0, [0.0, 0.8], Linear, "Richter et al. IMC 2016; judgement";
    /// Share of people who fly during the run.
    travel_share = 0.05, [0.01, 0.10], Linear, "judgement (IATA passenger numbers are far lower)";
    /// Share of flights on which the traveller uses in-flight Wi-Fi.
    inflight_share = 0.5, [0.1, 0.6], Linear, "Rula et al. WWW 2018; judgement";
    /// In-flight Wi-Fi opens this long after departure, minutes.
    inflight_wifi_after_min = 30.0, [10.0, 45.0], Linear, "Rula et al. WWW 2018; FAA PED rules";
    /// At most this many visits on in-flight Wi-Fi per flight.
    inflight_visits_max = 3.0, [1.0, 5.0], Linear, "judgement";
    /// Share of flights whose Wi-Fi provider is the one nearest the departure city (the rest:
    /// any provider).
    inflight_nearest_provider_share = 0.0, [0.0, 1.0], Linear, "Rula et al. WWW 2018; judgement";
    /// Share of travelling phones whose data roams home-routed (egress at the home carrier).
    roaming_home_routed_share = 0.0, [0.6, 1.0], Linear, "Mandalari et al. MobiCom 2018";
    /// Per visit abroad: a roaming phone uses roaming data rather than hotel Wi-Fi.
    roaming_cellular_visit_share = 0.5, [0.2, 0.8], Linear, "judgement";
    /// Share of people with a consumer VPN.
    consumer_vpn_share = 0.0, [0.01, 0.15], Log, "GWI VPN reports; judgement";
    /// Per visit: their VPN is on.
    consumer_vpn_visit_share = 0.5, [0.2, 0.9], Linear, "judgement";
    /// Per visit: the VPN is switched on or off part-way.
    consumer_vpn_toggle_share = 0.25, [0.05, 0.5], Linear, "judgement";
    /// Share of consumer VPN users whose exit is farther than a neighbouring country.
    consumer_vpn_far_share = 0.3, [0.1, 0.7], Linear, "judgement; VPN vendors' server lists";
    /// Share of home-working desktop users on the corporate VPN.
    corporate_vpn_share = 0.08, [0.02, 0.2], Linear, "judgement";
    /// Per visit in working hours: the corporate VPN is on (a third of this outside them).
    corporate_vpn_work_visit_share = 0.6, [0.3, 0.9], Linear, "judgement";
    /// Share of corporate VPN users whose VPN tunnels only some traffic (split tunnelling).
    split_tunnel_share = 0.0, [0.0, 0.8], Linear, "Microsoft Learn M365 split tunnelling; Cisco Secure Client docs";
    /// Per request on a split tunnel: it goes direct from home rather than through the VPN.
    split_direct_share = 0.5, [0.2, 0.8], Linear, "judgement";
    /// Share of Apple-browser users with Private Relay on.
    relay_share = 0.3, [0.05, 0.4], Linear, "Sattler et al. IMC 2022; judgement";
    /// Per visit: the relay is used.
    relay_visit_share = 0.7, [0.5, 1.0], Linear, "judgement";
    /// Share of people whose browser updates during the run.
    browser_update_share = 0.1, [0.03, 0.25], Linear, "Chromium release schedule; judgement";
    /// Visits per hour at the busiest local hour.
    visits_per_peak_hour = 0.35, [0.15, 0.8], Log, "judgement";
    /// Median visit length, minutes.
    visit_median_min = 5.0, [2.0, 15.0], Log, "judgement";
    /// Mean time between page loads within a visit, seconds.
    page_interval_s = 35.0, [10.0, 90.0], Log, "judgement";
    /// Most API calls a page load bursts into (at least 2).
    burst_calls_max = 8.0, [4.0, 24.0], Log, "HTTP Archive Web Almanac; judgement";
    /// A page load's API calls come within this many ms.
    burst_window_ms = 2500.0, [1000.0, 6000.0], Log, "HTTP Archive Web Almanac; judgement";
    /// JWT refresh interval, seconds (what [`super::SimSpec::with_params`] sets).
    refresh_s = 900.0, [300.0, 3600.0], Log, "RFC 6749; Okta and Microsoft identity platform token lifetimes";
    /// Mean time between a browsing attacker's page loads, seconds.
    attacker_page_interval_s = 30.0, [10.0, 90.0], Log, "judgement";
}

impl WorldParams {
    /// Draw a world: each parameter uniform (or log-uniform) in its range, from a ChaCha8
    /// stream seeded by `world_seed` alone (the same seed always gives the same world).
    pub fn draw(world_seed: u64) -> WorldParams {
        // A stream of its own, so a world seed equal to a traffic seed shares nothing with it.
        let mut rng = ChaCha8Rng::seed_from_u64(world_seed);
        rng.set_stream(0x0077_6f72_6c64); // "world"
        let values: Vec<f64> = PARAMS
            .iter()
            .map(|p| {
                let u: f64 = rng.random();
                let v = match p.scale {
                    Scale::Linear => p.lo + u * (p.hi - p.lo),
                    Scale::Log => (p.lo.ln() + u * (p.hi.ln() - p.lo.ln())).exp(),
                };
                v.clamp(p.lo, p.hi)
            })
            .collect();
        WorldParams::from_values(&values)
    }

    /// Parameters whose value lies outside their range: `(name, value, lo, hi)`.
    pub fn out_of_range(&self) -> Vec<(&'static str, f64, f64, f64)> {
        self.values()
            .into_iter()
            .zip(PARAMS)
            .filter(|((_, v), p)| !(p.lo..=p.hi).contains(v))
            .map(|((name, v), p)| (name, v, p.lo, p.hi))
            .collect()
    }
}

impl Default for WorldParams {
    fn default() -> Self {
        WorldParams::nominal()
    }
}
