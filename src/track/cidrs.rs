//! The tracker's address lists (`detect.allow_cidrs`, `detect.relay_cidrs`) as a sorted set
//! of disjoint networks: a look-up is a binary search, so a list of thousands of ranges (a
//! privacy relay's published egress list) costs a request O(log n), not a scan.
//!
//! Where it sits: built once by `SessionTracker::new` from the config, asked by its
//! `network_role` for every request.

use std::net::IpAddr;

use ipnet::IpNet;

/// Disjoint networks sorted by first address (IPv4 before IPv6).
#[derive(Debug, Clone, Default)]
pub(super) struct CidrSet {
    networks: Vec<IpNet>,
}

impl CidrSet {
    /// The set covering exactly the addresses of `networks` (overlaps and neighbours merged).
    pub fn new(networks: &[IpNet]) -> CidrSet {
        let mut networks = IpNet::aggregate(&networks.to_vec());
        networks.sort_by_key(|n| (n.network().is_ipv6(), n.network()));
        CidrSet { networks }
    }

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let key = (ip.is_ipv6(), *ip);
        // The last network starting at or before `ip` is the only one that can hold it.
        let after = self
            .networks
            .partition_point(|n| (n.network().is_ipv6(), n.network()) <= key);
        after > 0 && self.networks[after - 1].contains(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_exactly_what_a_scan_of_the_list_matches() {
        let list: Vec<IpNet> = [
            "10.0.0.0/8",
            "10.1.0.0/16", // inside the first
            "192.0.2.0/25",
            "192.0.2.128/25", // neighbour: merged
            "198.51.100.7/32",
            "2001:db8::/32",
            "2001:db8:1::/48",
            "::ffff:0:0/96",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let set = CidrSet::new(&list);
        for probe in [
            "9.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "11.0.0.0",
            "192.0.2.0",
            "192.0.2.255",
            "192.0.3.0",
            "198.51.100.6",
            "198.51.100.7",
            "198.51.100.8",
            "2001:db8::1",
            "2001:db9::",
            "2001:db7:ffff::1",
            "::ffff:1.2.3.4",
            "::1",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            let ip: IpAddr = probe.parse().unwrap();
            let scan = list.iter().any(|n| n.contains(&ip));
            assert_eq!(set.contains(&ip), scan, "{probe}");
        }
        assert!(!CidrSet::default().contains(&"10.0.0.1".parse().unwrap()));
    }
}
