//! A reader for ip-location-db's IP-to-ASN table (`asn-ipv4.csv`: `start_ip,end_ip,asn,org`,
//! inclusive IPv4 ranges; an organisation with a comma or a quote is quoted, CSV style).
//!
//! Where it sits: lab only. [`super::AddressIndex::build`] loads it beside the real City
//! database, looks up the ASN and organisation of every network it walks, and classifies the
//! network ([`super::kinds`]); the overlay ASN database the simulator writes carries what this
//! table says. `scripts/fetch-asn.sh` caches the file (CC BY 4.0: RouteViews, NRO, DB-IP).
//!
//! Invariants: ranges are sorted by start and never overlap (an overlapping range is trimmed
//! to what the ranges before it leave free: first line wins), so [`AsnTable::lookup`] is one
//! binary search; every organisation is stored once per ASN. Input is bounded
//! ([`MAX_FILE_BYTES`], [`MAX_LINE_BYTES`], [`MAX_RANGES`]) and a bad line is a typed error
//! naming its number.
//!
//! What it does NOT do: IPv6 (the simulator's real addresses are IPv4), or run in the daemon
//! (the daemon reads ASNs from an mmdb through `crate::enrich`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest file read (the real one is about 24 MB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Longest line accepted (the real file's longest is under 200 bytes).
pub const MAX_LINE_BYTES: usize = 1024;
/// Most ranges kept (the real file has about 412 000).
pub const MAX_RANGES: usize = 4_000_000;

/// An ASN table that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AsnTableError {
    /// The file cannot be read.
    #[error("cannot read ASN table {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("ASN table {path} has {bytes} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// [`MAX_FILE_BYTES`].
        limit: u64,
    },
    /// More than [`MAX_RANGES`] ranges.
    #[error("ASN table {path} has more than {limit} ranges")]
    TooManyRanges {
        /// The file.
        path: PathBuf,
        /// [`MAX_RANGES`].
        limit: usize,
    },
    /// A line is not `start_ip,end_ip,asn,org`.
    #[error("ASN table {path}, line {line}: {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong (bounded text, never the line itself).
        reason: &'static str,
    },
    /// No range at all.
    #[error("ASN table {path} has no ranges")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl AsnTableError {
    /// Bounded code for an exit message or a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            AsnTableError::Read { .. } => "read",
            AsnTableError::TooLarge { .. } => "too_large",
            AsnTableError::TooManyRanges { .. } => "too_many_ranges",
            AsnTableError::BadLine { .. } => "bad_line",
            AsnTableError::Empty { .. } => "empty",
        }
    }
}

/// One inclusive IPv4 range and its ASN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u32,
    end: u32,
    asn: u32,
}

/// What the table says about an address: its ASN and organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsnRecord {
    /// Autonomous system number.
    pub asn: u32,
    /// The organisation holding it (as the table names it; may be empty).
    pub org: Arc<str>,
    /// First address of the range the address lies in.
    pub range_start: Ipv4Addr,
    /// Last address of that range (inclusive).
    pub range_end: Ipv4Addr,
}

/// ip-location-db's IPv4 ASN table in memory: sorted ranges and one organisation per ASN.
#[derive(Debug, Clone, Default)]
pub struct AsnTable {
    ranges: Vec<Range>,
    orgs: HashMap<u32, Arc<str>>,
    /// Addresses announced per ASN (a size signal for the classifier).
    addresses: HashMap<u32, u64>,
}

impl AsnTable {
    /// Read and parse the CSV at `path` (at most [`MAX_FILE_BYTES`]).
    pub fn load(path: &Path) -> Result<AsnTable, AsnTableError> {
        let read = |source| AsnTableError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::metadata(path).map_err(read)?.len();
        if bytes > MAX_FILE_BYTES {
            return Err(AsnTableError::TooLarge {
                path: path.to_path_buf(),
                bytes,
                limit: MAX_FILE_BYTES,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        AsnTable::parse(&text, path)
    }

    /// Parse CSV text; `origin` names it in errors. Empty lines are skipped; a first line
    /// that is a header (`start_ip,...` or anything whose first field is not an address) is
    /// an error like any other bad line, as the real file has none.
    pub fn parse(text: &str, origin: &Path) -> Result<AsnTable, AsnTableError> {
        let mut table = AsnTable::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let bad = |reason| AsnTableError::BadLine {
                path: origin.to_path_buf(),
                line: number + 1,
                reason,
            };
            if line.len() > MAX_LINE_BYTES {
                return Err(bad("line longer than 1024 bytes"));
            }
            let (start, end, asn, org) = split_line(line).map_err(bad)?;
            if table.ranges.len() >= MAX_RANGES {
                return Err(AsnTableError::TooManyRanges {
                    path: origin.to_path_buf(),
                    limit: MAX_RANGES,
                });
            }
            let start: Ipv4Addr = start
                .parse()
                .map_err(|_| bad("start is not an IPv4 address"))?;
            let end: Ipv4Addr = end.parse().map_err(|_| bad("end is not an IPv4 address"))?;
            let asn: u32 = asn.parse().map_err(|_| bad("ASN is not a number"))?;
            let (start, end) = (u32::from(start), u32::from(end));
            if end < start {
                return Err(bad("range ends before it starts"));
            }
            table.ranges.push(Range { start, end, asn });
            table
                .orgs
                .entry(asn)
                .or_insert_with(|| Arc::from(org.as_str()));
            *table.addresses.entry(asn).or_default() += u64::from(end - start) + 1;
        }
        if table.ranges.is_empty() {
            return Err(AsnTableError::Empty {
                path: origin.to_path_buf(),
            });
        }
        table.normalise();
        Ok(table)
    }

    /// Sort by start (stable: the earlier line first) and trim overlaps, so the first line
    /// that covers an address decides its ASN.
    fn normalise(&mut self) {
        self.ranges.sort_by_key(|r| r.start);
        let mut kept: Vec<Range> = Vec::with_capacity(self.ranges.len());
        for mut range in self.ranges.drain(..) {
            if let Some(last) = kept.last() {
                if range.end <= last.end {
                    continue; // wholly covered by an earlier range
                }
                if range.start <= last.end {
                    range.start = last.end + 1;
                }
            }
            kept.push(range);
        }
        self.ranges = kept;
    }

    /// The ASN record covering `ip`, if any.
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<AsnRecord> {
        let ip = u32::from(ip);
        let after = self.ranges.partition_point(|r| r.start <= ip);
        let range = self.ranges[..after].last().filter(|r| r.end >= ip)?;
        Some(AsnRecord {
            asn: range.asn,
            org: self.org(range.asn),
            range_start: Ipv4Addr::from(range.start),
            range_end: Ipv4Addr::from(range.end),
        })
    }

    /// The organisation of `asn` (empty when the table does not know it).
    pub fn org(&self, asn: u32) -> Arc<str> {
        self.orgs
            .get(&asn)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// IPv4 addresses announced by `asn` in the whole table.
    pub fn addresses_of(&self, asn: u32) -> u64 {
        self.addresses.get(&asn).copied().unwrap_or(0)
    }

    /// Ranges in the table (after trimming overlaps).
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }

    /// Distinct ASNs in the table.
    pub fn asns(&self) -> usize {
        self.orgs.len()
    }
}

/// Split `start,end,asn,org`: the first three fields never contain commas; the organisation
/// is the rest, either bare (no quote in it) or quoted with `""` for a quote.
fn split_line(line: &str) -> Result<(&str, &str, &str, String), &'static str> {
    let mut fields = line.splitn(4, ',');
    let (Some(start), Some(end), Some(asn)) = (fields.next(), fields.next(), fields.next()) else {
        return Err("fewer than 4 fields");
    };
    let Some(org) = fields.next() else {
        return Err("fewer than 4 fields");
    };
    let org = match org.strip_prefix('"') {
        None if org.contains('"') => return Err("quote inside an unquoted organisation"),
        None => org.to_owned(),
        Some(rest) => {
            let inner = rest
                .strip_suffix('"')
                .ok_or("quoted organisation does not end with a quote")?;
            let unescaped = inner.replace("\"\"", "\"");
            // After unescaping, any quote left was a lone quote: malformed.
            if inner.matches('"').count() != 2 * unescaped.matches('"').count() {
                return Err("lone quote inside a quoted organisation");
            }
            unescaped
        }
    };
    Ok((start, end, asn, org))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AsnTable, AsnTableError> {
        AsnTable::parse(text, Path::new("test.csv"))
    }

    fn bad_line(text: &str) -> (usize, &'static str) {
        match parse(text) {
            Err(AsnTableError::BadLine { line, reason, .. }) => (line, reason),
            other => panic!("expected a bad line, got {other:?}"),
        }
    }

    const SAMPLE: &str = "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
                          1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd\n\
                          2.26.200.0,2.26.215.255,201907,\"LLC \"\"SPUTNIK\"\"\"\n\
                          \n\
                          5.0.0.0,5.0.0.0,64500,\n";

    #[test]
    fn quoted_organisations_with_commas_and_quotes() {
        let t = parse(SAMPLE).unwrap();
        assert_eq!(t.ranges(), 4);
        assert_eq!(t.asns(), 4);
        let r = t.lookup(Ipv4Addr::new(1, 0, 0, 7)).unwrap();
        assert_eq!((r.asn, &*r.org), (13335, "Cloudflare, Inc."));
        assert_eq!(&*t.org(201907), "LLC \"SPUTNIK\"");
        assert_eq!(&*t.org(38803), "Gtelecom Pty Ltd");
        assert_eq!(&*t.org(64500), "");
        assert_eq!(&*t.org(1), "", "unknown ASN");
        assert_eq!(t.addresses_of(38803), 1024);
    }

    #[test]
    fn lookup_at_range_edges() {
        let t = parse(SAMPLE).unwrap();
        let asn = |a, b, c, d| t.lookup(Ipv4Addr::new(a, b, c, d)).map(|r| r.asn);
        assert_eq!(asn(1, 0, 0, 0), Some(13335), "first address");
        assert_eq!(asn(1, 0, 0, 255), Some(13335), "last address (inclusive)");
        assert_eq!(asn(1, 0, 1, 0), None, "gap after the range");
        assert_eq!(asn(1, 0, 3, 255), None, "gap before the next");
        assert_eq!(asn(1, 0, 4, 0), Some(38803));
        assert_eq!(asn(1, 0, 7, 255), Some(38803));
        assert_eq!(asn(0, 255, 255, 255), None, "before the first range");
        assert_eq!(asn(5, 0, 0, 0), Some(64500), "a one-address range");
        assert_eq!(asn(5, 0, 0, 1), None, "after the last range");
        assert_eq!(asn(255, 255, 255, 255), None);
        let r = t.lookup(Ipv4Addr::new(1, 0, 5, 9)).unwrap();
        assert_eq!(r.range_start, Ipv4Addr::new(1, 0, 4, 0));
        assert_eq!(r.range_end, Ipv4Addr::new(1, 0, 7, 255));
    }

    #[test]
    fn unsorted_and_overlapping_ranges_first_line_wins() {
        let t = parse(
            "10.0.0.0,10.0.0.255,2,Two\n\
             9.0.0.0,9.255.255.255,1,One\n\
             10.0.0.128,10.0.1.255,3,Three\n\
             10.0.0.10,10.0.0.20,4,Inside\n",
        )
        .unwrap();
        let asn = |a, b, c, d| t.lookup(Ipv4Addr::new(a, b, c, d)).map(|r| r.asn);
        assert_eq!(asn(9, 1, 2, 3), Some(1));
        assert_eq!(asn(10, 0, 0, 15), Some(2), "a contained range is dropped");
        assert_eq!(
            asn(10, 0, 0, 200),
            Some(2),
            "the overlap belongs to the earlier start"
        );
        assert_eq!(
            asn(10, 0, 1, 0),
            Some(3),
            "the rest of the later range is kept"
        );
        assert_eq!(t.ranges(), 3);
    }

    #[test]
    fn bad_lines_are_typed_errors_with_their_line_number() {
        let good = "1.0.0.0,1.0.0.255,13335,Cloudflare\n";
        for (text, line, reason) in [
            ("1.0.0.0,1.0.0.255,13335\n", 1, "fewer than 4 fields"),
            ("x,1.0.0.255,1,A\n", 1, "start is not an IPv4 address"),
            ("1.0.0.0,::1,1,A\n", 1, "end is not an IPv4 address"),
            ("1.0.0.0,1.0.0.1,AS1,A\n", 1, "ASN is not a number"),
            ("1.0.0.0,1.0.0.1,-1,A\n", 1, "ASN is not a number"),
            ("1.0.0.9,1.0.0.1,1,A\n", 1, "range ends before it starts"),
            (
                "1.0.0.0,1.0.0.1,1,\"A, B\n",
                1,
                "quoted organisation does not end with a quote",
            ),
            (
                "1.0.0.0,1.0.0.1,1,A \"B\"\n",
                1,
                "quote inside an unquoted organisation",
            ),
            (
                "1.0.0.0,1.0.0.1,1,\"A\"B\"\n",
                1,
                "lone quote inside a quoted organisation",
            ),
        ] {
            assert_eq!(bad_line(text), (line, reason), "{text:?}");
            // After a good line (and an empty one) the number is the file's line number.
            assert_eq!(
                bad_line(&format!("{good}\n{text}")),
                (line + 2, reason),
                "{text:?}"
            );
        }
        let long = format!("1.0.0.0,1.0.0.1,1,{}\n", "x".repeat(MAX_LINE_BYTES));
        assert_eq!(bad_line(&long), (1, "line longer than 1024 bytes"));
        assert!(matches!(parse("\n\n"), Err(AsnTableError::Empty { .. })));
        let err = parse("a,b,c,d\n").unwrap_err();
        assert_eq!(err.code(), "bad_line");
        assert!(err.to_string().contains("test.csv, line 1"), "{err}");
    }

    #[test]
    fn load_reads_a_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asn-ipv4.csv");
        std::fs::write(&path, SAMPLE.replace('\n', "\r\n")).unwrap();
        let t = AsnTable::load(&path).unwrap();
        assert_eq!(t.ranges(), 4);
        assert_eq!(
            &*t.org(38803),
            "Gtelecom Pty Ltd",
            "CRLF line ends are stripped"
        );
        let missing = AsnTable::load(&dir.path().join("none.csv")).unwrap_err();
        assert_eq!(missing.code(), "read");
        assert!(missing.to_string().contains("none.csv"));
    }
}
