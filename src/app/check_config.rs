//! `tokenwatch check-config`: every problem of a configuration in one run, each with its key.
//!
//! Three passes, each collecting rather than stopping: the config's own parse and validation
//! (schema errors with their key paths, then the semantic problems of the rest: `config.rs`);
//! the filesystem (the journal's folder — the state folder — exists and is writable, the
//! journal itself is writable, so is the audit file's folder, the followed log is readable,
//! each GeoIP database is of the
//! kind its key expects: a City database as `geoip.city_db`, an ASN one as `geoip.asn_db`);
//! then building the stages as `run` does (keys, model, catalog). `run` creates no folder, so a
//! missing one is a problem here too.
//!
//! What it does not do: bind the API's address, connect to Kafka, or change any file (the
//! writability probe creates and removes one empty file in the state folder).

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::config::{Config, Env, folder_of};

/// What `check-config` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Every problem, each starting with its key.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Nothing wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.problems.is_empty() {
            return writeln!(f, "configuration OK");
        }
        writeln!(f, "{} problem(s):", self.problems.len())?;
        for problem in &self.problems {
            writeln!(f, "  - {}", problem.replace('\n', "\n    "))?;
        }
        Ok(())
    }
}

/// Check the config file at `path` and everything it names.
pub fn check_config(path: &Path, env: &dyn Env) -> CheckReport {
    let (loaded, mut problems) = Config::load_collecting(path, env);
    let Some((config, secrets)) = loaded else {
        return CheckReport { problems };
    };
    let files = check_files(&config);
    // A database of the wrong kind is already named: building would only repeat it.
    let database_problem = files.iter().any(|p| p.starts_with("geoip."));
    problems.extend(files);
    if let Some(secrets) = secrets
        && !database_problem
        && let Err(error) = super::build_stages(&config, &secrets)
    {
        // One line per stage problem, the summary line left out.
        let text = format!("{error:#}");
        problems.extend(
            text.lines()
                .filter_map(|l| l.trim_start().strip_prefix("- "))
                .map(str::to_string),
        );
        if !text.contains("\n") {
            problems.push(text);
        }
    }
    CheckReport { problems }
}

/// The filesystem checks: folders and files exist and are usable as `run` will use them.
pub fn check_files(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(journal) = &config.denylist.journal
        && config.kafka.is_none()
    {
        let folder = folder_of(journal);
        match writable_folder(folder) {
            Err(reason) => problems.push(format!(
                "denylist.journal: its folder {} {reason} (it is also the state folder, where \
                 the followed log's position is kept; tokenwatch does not create it)",
                folder.display()
            )),
            Ok(()) => {
                if journal.exists()
                    && let Err(e) = OpenOptions::new().append(true).open(journal)
                {
                    problems.push(format!(
                        "denylist.journal: {} is not writable: {e}",
                        journal.display()
                    ));
                }
            }
        }
    }
    if let Some(log) = &config.input.path {
        let folder = folder_of(log);
        if !folder.is_dir() {
            problems.push(format!(
                "input.path: folder {} does not exist (the file may appear later, its folder \
                 must be there to be watched)",
                folder.display()
            ));
        } else if log.exists()
            && let Err(e) = File::open(log)
        {
            problems.push(format!(
                "input.path: {} is not readable: {e}",
                log.display()
            ));
        }
    }
    if config.audit.output.file()
        && let Some(audit) = &config.audit.path
    {
        let folder = folder_of(audit);
        if let Err(reason) = writable_folder(folder) {
            problems.push(format!(
                "audit.path: its folder {} {reason} (tokenwatch does not create it)",
                folder.display()
            ));
        } else if audit.exists()
            && let Err(e) = OpenOptions::new().append(true).open(audit)
        {
            problems.push(format!(
                "audit.path: {} is not writable: {e}",
                audit.display()
            ));
        }
    }
    for (key, path, kind) in [
        ("geoip.city_db", &config.geoip.city_db, DatabaseKind::City),
        ("geoip.asn_db", &config.geoip.asn_db, DatabaseKind::Asn),
    ] {
        if let Some(path) = path
            && let Err(reason) = database_of_kind(path, kind)
        {
            problems.push(format!("{key}: {}: {reason}", path.display()));
        }
    }
    problems
}

/// The folder exists and a file can be created in it (probed: permissions alone do not tell
/// about read-only mounts or ACLs).
pub fn writable_folder(folder: &Path) -> Result<(), String> {
    if !folder.is_dir() {
        return Err("does not exist or is not a folder".into());
    }
    let probe = folder.join(format!(".tokenwatch-check-{}", std::process::id()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("is not writable: {e}")),
    }
}

/// What a GeoIP key expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// Locations: GeoIP2/GeoLite2 City (or Enterprise), DB-IP city.
    City,
    /// Networks: GeoLite2-ASN, GeoIP2-ISP, ip-location-db asn.
    Asn,
}

impl DatabaseKind {
    /// Whether a database's `database_type` metadata is of this kind.
    pub fn accepts(self, database_type: &str) -> bool {
        let t = database_type.to_ascii_lowercase();
        match self {
            DatabaseKind::City => t.contains("city") || t.contains("enterprise"),
            DatabaseKind::Asn => t.contains("asn") || t.contains("isp"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            DatabaseKind::City => "a City database (GeoLite2-City, GeoIP2-City, DB-IP city)",
            DatabaseKind::Asn => "an ASN database (GeoLite2-ASN, GeoIP2-ISP, ip-location-db asn)",
        }
    }
}

/// Open the database and check its `database_type` metadata.
pub fn database_of_kind(path: &Path, kind: DatabaseKind) -> Result<(), String> {
    let reader = maxminddb::Reader::open_readfile(path).map_err(|e| e.to_string())?;
    let found = &reader.metadata().database_type;
    if kind.accepts(found) {
        Ok(())
    } else {
        Err(format!(
            "is a {found:?} database; this key needs {} (travel or network detection would \
             silently stop working)",
            kind.name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_kinds_table() {
        let cases = [
            ("GeoIP2-City", DatabaseKind::City, true),
            ("GeoLite2-City", DatabaseKind::City, true),
            ("city ipv4", DatabaseKind::City, true),
            ("GeoIP2-Enterprise", DatabaseKind::City, true),
            ("GeoLite2-ASN", DatabaseKind::City, false),
            ("GeoLite2-Country", DatabaseKind::City, false),
            ("GeoLite2-ASN", DatabaseKind::Asn, true),
            ("asn ipv4", DatabaseKind::Asn, true),
            ("GeoIP2-ISP", DatabaseKind::Asn, true),
            ("GeoIP2-City", DatabaseKind::Asn, false),
        ];
        for (database_type, kind, want) in cases {
            assert_eq!(
                kind.accepts(database_type),
                want,
                "{database_type} as {kind:?}"
            );
        }
    }
}
