//! GeoIP databases for stage 4 (enrich): the memory-mapped, hot-reloaded MaxMind DB files
//! (City and ASN alike) and the City record, decoded from either schema into a [`GeoPoint`].
//!
//! Where it sits in the data flow: `Enricher::enrich` (in `enrich.rs`) classifies the client
//! address and, for a public one, calls [`Enricher::locate`] here; the [`GeoPoint`] it returns
//! goes into the event's `Enrichment`, which `track` compares across a session's requests.
//! `asn` reads its database through the same [`DbSlot`] and decodes numbers with [`Number`].
//!
//! What it does NOT do: classify addresses (that comes first, in `enrich.rs`), or download
//! databases.

use std::fmt;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use maxminddb::{Mmap, Reader};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{EnrichError, Enricher};
use crate::event::GeoPoint;

/// Accuracy for a flat-schema record that has coordinates but no city: DB-IP then gives a
/// country centroid, which is as coarse as MaxMind's country-level records (1000 km).
const COUNTRY_LEVEL_ACCURACY_KM: f64 = 1000.0;

/// What identifies one version of a database file: replacing it (geoipupdate, `mv`) changes
/// the inode; touching or rewriting it changes mtime or length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        FileIdentity {
            device,
            inode,
            modified: metadata.modified().ok(),
            len: metadata.len(),
        }
    }
}

/// One mapped database and the identity of the file it was mapped from.
pub(super) struct LoadedDb {
    pub(super) reader: Reader<Mmap>,
    identity: FileIdentity,
}

impl LoadedDb {
    fn open(path: &Path) -> Result<LoadedDb, EnrichError> {
        let open_error = |source| EnrichError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        // The identity comes from the open handle, so it describes exactly the bytes mapped
        // even if the path is replaced between the two calls.
        let identity = FileIdentity::of(&file.metadata().map_err(open_error)?);
        // SAFETY: a mapping is undefined behaviour only if the file is modified or truncated
        // in place while mapped. GeoIP files are replaced by writing a new file and renaming
        // it over the old path (geoipupdate, `scripts/fetch-dbip.sh`, the lab's `world::write_databases`
        // all do), which leaves this inode untouched until the last mapping is dropped. This
        // is the one unsafe call of the crate; `maxminddb::Reader::open_mmap` makes the same
        // call, but by path, which would lose the identity of the mapped file.
        #[allow(unsafe_code)]
        let mmap = unsafe { Mmap::map(&file) }.map_err(open_error)?;
        let reader = Reader::from_source(mmap).map_err(|source| EnrichError::Invalid {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(LoadedDb { reader, identity })
    }
}

/// A configured database: its path and the reader currently serving it.
pub(super) struct DbSlot {
    pub(super) path: PathBuf,
    pub(super) current: ArcSwap<LoadedDb>,
}

impl DbSlot {
    pub(super) fn open(path: &Path) -> Result<DbSlot, EnrichError> {
        Ok(DbSlot {
            path: path.to_path_buf(),
            current: ArcSwap::from_pointee(LoadedDb::open(path)?),
        })
    }

    /// Swap in the file at `path` if it is not the one mapped; true if swapped.
    pub(super) fn reload_if_changed(&self) -> Result<bool, EnrichError> {
        let metadata = std::fs::metadata(&self.path).map_err(|source| EnrichError::Open {
            path: self.path.clone(),
            source,
        })?;
        if FileIdentity::of(&metadata) == self.current.load().identity {
            return Ok(false);
        }
        let fresh = LoadedDb::open(&self.path)?;
        self.current.store(Arc::new(fresh));
        Ok(true)
    }
}

impl Enricher {
    /// Where the City database places `ip` (a public address), if anywhere.
    pub(super) fn locate(&self, ip: IpAddr) -> Option<GeoPoint> {
        let db = self.city.as_ref()?.current.load();
        if ip.is_ipv6() && db.reader.metadata().ip_version == 4 {
            return None;
        }
        let found = self.count_error(db.reader.lookup(ip))?;
        let record: CityRecord<'_> = self.count_error(found.decode())??;
        record.into_geo_point(self.default_accuracy_km)
    }
}

// ---------------------------------------------------------------------------------------------
// Database records. Borrowed from the mapping; unknown fields are skipped without decoding.

/// Any MMDB number: GeoIP2 stores coordinates as doubles, DB-IP as floats; radii are u16,
/// ASNs u32. Accepting every numeric type keeps one vendor's choice from failing the decode.
#[derive(Debug, Clone, Copy)]
pub(super) struct Number(f64);

impl Number {
    pub(super) fn as_u32(self) -> Option<u32> {
        (self.0 >= 0.0 && self.0 <= f64::from(u32::MAX) && self.0.fract() == 0.0)
            .then_some(self.0 as u32)
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// `city`: a map with `names.en` (GeoIP2) or a plain string (DB-IP flat).
#[derive(Debug, Default)]
struct CityName<'a>(Option<&'a str>);

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for CityName<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CityVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for CityVisitor<'a> {
            type Value = CityName<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a city name or a map with names")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CityName(Some(v)))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<&'de str>()? {
                    if key == "names" {
                        name = map.next_value::<Names<'de>>()?.en;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(CityName(name))
            }
        }
        deserializer.deserialize_any(CityVisitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Country<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<Number>,
    longitude: Option<Number>,
    accuracy_radius: Option<Number>,
}

/// The fields of either City schema that enrichment needs.
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    city: CityName<'a>,
    // GeoIP2
    #[serde(borrow)]
    country: Option<Country<'a>>,
    #[serde(borrow)]
    registered_country: Option<Country<'a>>,
    location: Option<Location>,
    // DB-IP flat
    #[serde(borrow)]
    country_code: Option<&'a str>,
    latitude: Option<Number>,
    longitude: Option<Number>,
}

impl CityRecord<'_> {
    fn country_code(&self) -> Option<&str> {
        self.country_code
            .or_else(|| self.country.as_ref().and_then(|c| c.iso_code))
            .or_else(|| self.registered_country.as_ref().and_then(|c| c.iso_code))
            .filter(|c| !c.is_empty())
    }

    fn into_geo_point(self, default_accuracy_km: f64) -> Option<GeoPoint> {
        let city = self.city.0.filter(|c| !c.is_empty());
        let (lat, lon, radius) = match &self.location {
            Some(loc) => (loc.latitude?, loc.longitude?, loc.accuracy_radius),
            None => (self.latitude?, self.longitude?, None),
        };
        let (lat, lon) = (lat.0, lon.0);
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return None;
        }
        let radius_km = match radius {
            Some(r) if r.0.is_finite() && r.0 > 0.0 => r.0,
            _ if city.is_none() && self.location.is_none() => {
                COUNTRY_LEVEL_ACCURACY_KM.max(default_accuracy_km)
            }
            _ => default_accuracy_km,
        };
        Some(GeoPoint {
            city: city.map(Arc::from),
            country: self.country_code().map(intern_country),
            lat,
            lon,
            radius_km,
        })
    }
}

/// Country codes are shared `Arc<str>`s: there are fewer than 700 two-letter codes and every
/// located event carries one, so allocating per event would be waste.
fn intern_country(code: &str) -> Arc<str> {
    static TABLE: [OnceLock<Arc<str>>; 26 * 26] = [const { OnceLock::new() }; 26 * 26];
    match code.as_bytes() {
        [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
            let slot = usize::from(a - b'A') * 26 + usize::from(b - b'A');
            TABLE[slot].get_or_init(|| Arc::from(code)).clone()
        }
        _ => Arc::from(code),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::config::GeoIpConfig;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn flat_record_without_city_is_country_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flat.mmdb");
        let mut w = mmdb_writer::Writer::builder("city ipv4")
            .ip_version(mmdb_writer::IpVersion::V4)
            .build();
        for (net, city) in [("8.8.8.0/24", "Mountain View"), ("8.8.4.0/24", "")] {
            let record = mmdb_writer::Value::map([
                ("city", mmdb_writer::Value::from(city)),
                ("country_code", mmdb_writer::Value::from("US")),
                ("latitude", mmdb_writer::Value::Float(37.4)),
                ("longitude", mmdb_writer::Value::Float(-122.1)),
            ]);
            w.insert_value(net.parse::<ipnet::IpNet>().unwrap(), record)
                .unwrap();
        }
        std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
        let e = Enricher::from_config(&GeoIpConfig {
            city_db: Some(path),
            ..GeoIpConfig::default()
        })
        .unwrap();
        let city_level = e.enrich(ip("8.8.8.8"), None).geo.unwrap();
        assert_eq!(city_level.city.as_deref(), Some("Mountain View"));
        assert_eq!(city_level.radius_km, 50.0);
        // No city: DB-IP's coordinates are the country's, and the radius must say so, or a
        // user moving between a city-level and a country-level record would "travel".
        let country_level = e.enrich(ip("8.8.4.4"), None).geo.unwrap();
        assert_eq!(country_level.city, None);
        assert_eq!(country_level.country.as_deref(), Some("US"));
        assert_eq!(country_level.radius_km, COUNTRY_LEVEL_ACCURACY_KM);
    }

    fn write_one_city_db(path: &Path, name: &str, lat: f64) {
        let mut w = mmdb_writer::Writer::new("GeoIP2-City");
        let record = mmdb_writer::Value::map([
            (
                "city",
                mmdb_writer::Value::map([(
                    "names",
                    mmdb_writer::Value::map([("en", mmdb_writer::Value::from(name))]),
                )]),
            ),
            (
                "location",
                mmdb_writer::Value::map([
                    ("latitude", mmdb_writer::Value::Double(lat)),
                    ("longitude", mmdb_writer::Value::Double(0.5)),
                    ("accuracy_radius", mmdb_writer::Value::U16(5)),
                ]),
            ),
        ]);
        w.insert_value("8.8.8.0/24".parse::<ipnet::IpNet>().unwrap(), record)
            .unwrap();
        // Write then rename, as geoipupdate does: the mapped inode is never modified.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, w.to_bytes().unwrap()).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn reload_swaps_in_a_replaced_file_and_survives_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("city.mmdb");
        write_one_city_db(&path, "Before", 10.0);
        let e = Enricher::from_config(&GeoIpConfig {
            city_db: Some(path.clone()),
            ..GeoIpConfig::default()
        })
        .unwrap();
        let city_of = |e: &Enricher| {
            e.enrich(ip("8.8.8.8"), None)
                .geo
                .and_then(|g| g.city)
                .map(|c| c.to_string())
        };
        assert_eq!(city_of(&e).as_deref(), Some("Before"));
        assert!(!e.reload_if_changed().unwrap(), "unchanged file reloaded");

        write_one_city_db(&path, "After", 20.0);
        assert!(e.reload_if_changed().unwrap());
        assert_eq!(city_of(&e).as_deref(), Some("After"));
        assert!(!e.reload_if_changed().unwrap());

        // A broken replacement keeps the old reader and reports the error, every time.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, b"not a maxmind database").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let err = e.reload_if_changed().unwrap_err();
        assert_eq!(err.code(), "invalid");
        assert_eq!(city_of(&e).as_deref(), Some("After"));
        assert!(e.reload_if_changed().is_err());

        // A vanished file likewise.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(e.reload_if_changed().unwrap_err().code(), "open");
        assert_eq!(city_of(&e).as_deref(), Some("After"));

        // And a good file afterwards is picked up.
        write_one_city_db(&path, "Again", 30.0);
        assert!(e.reload_if_changed().unwrap());
        assert_eq!(city_of(&e).as_deref(), Some("Again"));
    }

    #[test]
    fn a_missing_or_invalid_database_is_a_startup_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = GeoIpConfig {
            city_db: Some(dir.path().join("nope.mmdb")),
            ..GeoIpConfig::default()
        };
        assert_eq!(Enricher::from_config(&missing).unwrap_err().code(), "open");
        let junk = dir.path().join("junk.mmdb");
        std::fs::write(&junk, b"junk").unwrap();
        let invalid = GeoIpConfig {
            asn_db: Some(junk),
            ..GeoIpConfig::default()
        };
        let err = Enricher::from_config(&invalid).unwrap_err();
        assert_eq!(err.code(), "invalid");
        assert!(err.to_string().contains("junk.mmdb"), "{err}");
        // Shared between pipeline workers by reference.
        fn shared<T: Send + Sync>(_: &T) {}
        let none = Enricher::from_config(&GeoIpConfig::default()).unwrap();
        shared(&none);
        assert!(!none.is_loaded() && none.city_build_epoch().is_none());
        assert!(none.enrich(ip("8.8.8.8"), None).geo.is_none());
    }
}
