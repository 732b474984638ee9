//! User-Agent reduction for stage 4 (enrich): a browser family without version and an OS
//! without minor versions (`woothee`), scripted clients and crawlers named by their tool, and a
//! bounded per-string cache.
//!
//! Where it sits in the data flow: `Enricher::enrich` (in `enrich.rs`) calls
//! [`Enricher::user_agent`] for the request's User-Agent; the [`UserAgentInfo`] goes into the
//! event's `Enrichment`, and `track` compares it across a session's requests (a browser
//! update is not a change; a scripted client is).
//!
//! Invariants: input is cut at [`MAX_USER_AGENT_BYTES`] on a character boundary; an empty or
//! `-` User-Agent is `unknown`, not scripted; the cache never holds more than 8192 strings.

use std::sync::{Arc, OnceLock};

use super::Enricher;
use crate::event::UserAgentInfo;

/// Longest User-Agent prefix that is parsed; the rest is ignored (browsers send < 300 bytes).
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// Distinct User-Agent strings remembered; the cache is cleared when it fills up.
const USER_AGENT_CACHE_ENTRIES: usize = 8192;

impl Enricher {
    /// The reduced User-Agent, from the cache when this string was seen before.
    pub(super) fn user_agent(&self, raw: &str) -> UserAgentInfo {
        let ua = truncate_to_char_boundary(raw.trim(), MAX_USER_AGENT_BYTES);
        if let Some(hit) = self.user_agents.get(ua) {
            return hit.clone();
        }
        let info = parse_user_agent(ua);
        if self.user_agents.len() >= USER_AGENT_CACHE_ENTRIES {
            // Crude but bounded: real traffic has a few hundred distinct UAs; a flood of
            // random ones only costs re-parsing.
            self.user_agents.clear();
        }
        self.user_agents.insert(ua.into(), info.clone());
        info
    }
}

// ---------------------------------------------------------------------------------------------
// User-Agent.

/// Cut `s` to at most `max` bytes without splitting a character.
fn truncate_to_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Product tokens of programmatic HTTP clients, spelled as they send them. Matched
/// case-insensitively at the start of the User-Agent, followed by `/`, a space, `;`, `(` or
/// the end, so `curly-browser/1` is not curl. Longer names that share a prefix come first.
const SCRIPTED_PREFIXES: &[&str] = &[
    "curl",
    "libcurl",
    "Wget2",
    "Wget",
    "python-requests",
    "python-urllib3",
    "Python-urllib",
    "python-httpx",
    "httpx",
    "aiohttp",
    "HTTPie",
    "Scrapy",
    "Go-http-client",
    "okhttp",
    "Java-http-client",
    "Java",
    "Apache-HttpClient",
    "Apache-HttpAsyncClient",
    "Jakarta Commons-HttpClient",
    "axios",
    "node-fetch",
    "undici",
    "node",
    "got",
    "Deno",
    "Bun",
    "PostmanRuntime",
    "insomnia",
    "libwww-perl",
    "lwp-trivial",
    "WWW-Mechanize",
    "Mechanize",
    "Ruby",
    "Faraday",
    "rest-client",
    "Typhoeus",
    "GuzzleHttp",
    "PHP",
    "Dart",
    "k6",
    "reqwest",
    "RestSharp",
    "aria2",
    "sqlmap",
    "Nuclei",
];

/// Tokens of automation tools that hide inside an otherwise browser-like User-Agent.
const SCRIPTED_MARKERS: &[(&str, &str)] = &[
    ("HeadlessChrome/", "HeadlessChrome"),
    ("PhantomJS/", "PhantomJS"),
    ("WindowsPowerShell/", "PowerShell"),
    ("PowerShell/", "PowerShell"),
    ("Nmap Scripting Engine", "Nmap"),
    ("Nikto", "Nikto"),
];

fn starts_with_token(ua: &[u8], token: &str) -> bool {
    let t = token.as_bytes();
    ua.len() >= t.len()
        && ua[..t.len()].eq_ignore_ascii_case(t)
        && matches!(ua.get(t.len()), None | Some(b'/' | b' ' | b';' | b'('))
}

/// The tool behind a scripted User-Agent, if it is one.
fn scripted_tool(ua: &str) -> Option<&'static str> {
    let bytes = ua.as_bytes();
    // aiohttp sends "Python/3.12 aiohttp/3.9.5": the interpreter first, the library second.
    if starts_with_token(bytes, "Python") {
        let rest = ua.split_once(' ').map_or("", |(_, rest)| rest);
        return Some(if starts_with_token(rest.as_bytes(), "aiohttp") {
            "aiohttp"
        } else {
            "Python"
        });
    }
    if let Some(tool) = SCRIPTED_PREFIXES
        .iter()
        .find(|p| starts_with_token(bytes, p))
    {
        return Some(tool);
    }
    SCRIPTED_MARKERS
        .iter()
        .find(|(marker, _)| ua.contains(marker))
        .map(|(_, tool)| *tool)
}

/// A `woothee` value, or `unknown` when it has none.
fn known(value: &str) -> Option<&str> {
    (!value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN).then_some(value)
}

fn parse_user_agent(ua: &str) -> UserAgentInfo {
    static UNKNOWN: OnceLock<Arc<str>> = OnceLock::new();
    let unknown = || UNKNOWN.get_or_init(|| Arc::from("unknown")).clone();
    if ua.is_empty() || ua == "-" {
        return UserAgentInfo::new(unknown(), unknown(), false);
    }
    let parsed = woothee::parser::Parser::new().parse(ua);
    let os = parsed
        .as_ref()
        .and_then(|r| known(r.os))
        .map_or_else(unknown, Arc::from);
    let (family, scripted) = match (scripted_tool(ua), parsed) {
        (Some(tool), _) => (Arc::from(tool), true),
        // woothee names the language (`ruby`, `php`, `perl`, `Java`) in `version`.
        (None, Some(r)) if r.name == "HTTP Library" => {
            (Arc::from(known(r.version).unwrap_or("HTTP Library")), true)
        }
        (None, Some(r)) => match known(r.name) {
            Some(name) => (Arc::from(name), r.category == "crawler"),
            None => (unknown(), false),
        },
        (None, None) => (unknown(), false),
    };
    UserAgentInfo::new(family, os, scripted)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const CHROME_WIN_120: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
    const CHROME_WIN_131: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const FIREFOX_WIN_121: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
    const FIREFOX_WIN_133: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const FIREFOX_MAC: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:128.0) Gecko/20100101 Firefox/128.0";
    const SAFARI_MAC_17: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15";
    const SAFARI_MAC_18: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15";
    const SAFARI_IOS_17: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";
    const SAFARI_IOS_18: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1";
    const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1";
    const CHROME_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1";
    const CHROME_ANDROID_13: &str = "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";
    const CHROME_ANDROID_14: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36";
    const FIREFOX_ANDROID: &str =
        "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0";
    const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const EDGE_WIN_120: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91";
    const EDGE_WIN_131: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86";
    const EDGE_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91";
    const EDGE_ANDROID: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 EdgA/120.0.2210.115";
    const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

    #[test]
    fn browsers_reduce_to_family_and_os() {
        for (ua, family, os) in [
            (CHROME_WIN_120, "Chrome", "Windows 10"),
            (CHROME_MAC, "Chrome", "Mac OSX"),
            (CHROME_IOS, "Chrome", "iPhone"),
            (CHROME_ANDROID_13, "Chrome", "Android"),
            (CHROME_LINUX, "Chrome", "Linux"),
            (FIREFOX_WIN_121, "Firefox", "Windows 10"),
            (FIREFOX_MAC, "Firefox", "Mac OSX"),
            (FIREFOX_ANDROID, "Firefox", "Android"),
            (SAFARI_MAC_17, "Safari", "Mac OSX"),
            (SAFARI_IOS_17, "Safari", "iPhone"),
            (SAFARI_IPAD, "Safari", "iPad"),
            (EDGE_WIN_120, "Edge", "Windows 10"),
            (EDGE_MAC, "Edge", "Mac OSX"),
            (EDGE_ANDROID, "Edge", "Android"),
        ] {
            let info = parse_user_agent(ua);
            assert_eq!(
                (&*info.family, &*info.os, info.scripted),
                (family, os, false),
                "{ua}"
            );
            let phone = matches!(os, "iPhone" | "iPad" | "Android");
            assert_eq!(info.is_phone(), phone, "{ua}");
        }
    }

    #[test]
    fn version_bumps_keep_family_and_os() {
        for (before, after) in [
            (CHROME_WIN_120, CHROME_WIN_131),
            (FIREFOX_WIN_121, FIREFOX_WIN_133),
            (SAFARI_MAC_17, SAFARI_MAC_18),
            (SAFARI_IOS_17, SAFARI_IOS_18),
            (CHROME_ANDROID_13, CHROME_ANDROID_14),
            (EDGE_WIN_120, EDGE_WIN_131),
        ] {
            assert_eq!(parse_user_agent(before), parse_user_agent(after), "{after}");
        }
        // A real change still shows.
        assert_ne!(
            parse_user_agent(CHROME_WIN_120).family,
            parse_user_agent(EDGE_WIN_120).family
        );
        assert_ne!(
            parse_user_agent(SAFARI_IOS_17).os,
            parse_user_agent(SAFARI_MAC_17).os
        );
    }

    #[test]
    fn scripted_clients_are_named_by_their_tool() {
        for (ua, family) in [
            ("curl/8.4.0", "curl"),
            ("Wget/1.21.4", "Wget"),
            ("Wget2/2.1.0", "Wget2"),
            ("python-requests/2.31.0", "python-requests"),
            ("Python-urllib/3.11", "Python-urllib"),
            ("python-urllib3/2.1.0", "python-urllib3"),
            ("Python/3.12 aiohttp/3.9.5", "aiohttp"),
            ("Python/3.12", "Python"),
            ("python-httpx/0.27.0", "python-httpx"),
            ("Go-http-client/1.1", "Go-http-client"),
            ("Go-http-client/2.0", "Go-http-client"),
            ("okhttp/4.12.0", "okhttp"),
            ("Java/17.0.9", "Java"),
            ("Java-http-client/21.0.1", "Java-http-client"),
            (
                "Apache-HttpClient/4.5.14 (Java/17.0.9)",
                "Apache-HttpClient",
            ),
            ("axios/1.6.2", "axios"),
            (
                "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
                "node-fetch",
            ),
            ("undici", "undici"),
            ("node", "node"),
            ("PostmanRuntime/7.36.0", "PostmanRuntime"),
            ("libwww-perl/6.72", "libwww-perl"),
            ("HTTPie/3.2.2", "HTTPie"),
            ("Scrapy/2.11.0 (+https://scrapy.org)", "Scrapy"),
            ("GuzzleHttp/7", "GuzzleHttp"),
            ("Ruby", "Ruby"),
            ("k6/0.48.0 (https://k6.io/)", "k6"),
            ("CURL/7.0", "curl"),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36",
                "HeadlessChrome",
            ),
            (
                "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.2506",
                "PowerShell",
            ),
        ] {
            let info = parse_user_agent(ua);
            assert!(info.scripted, "{ua} not scripted");
            assert_eq!(&*info.family, family, "{ua}");
        }
        // Versions of a tool are one family.
        assert_eq!(
            parse_user_agent("curl/7.88.1"),
            parse_user_agent("curl/8.5.0")
        );
        // Token boundary: a name that merely starts like a tool is not that tool.
        assert!(!parse_user_agent("curly-browser/1.0").scripted);
        assert!(!parse_user_agent("nodejs-app-but-not/1").scripted);
        // Crawlers are programmatic too; woothee names them.
        let bot = parse_user_agent(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        );
        assert!(bot.scripted);
        assert_eq!(&*bot.family, "Googlebot");
    }

    #[test]
    fn unknown_and_oversized_user_agents() {
        for ua in ["", "-", "   ", "SomethingNobodyKnows", "\u{0}\u{7f}ü"] {
            let info = parse_user_agent(truncate_to_char_boundary(ua.trim(), 512));
            assert_eq!(&*info.family, "unknown", "{ua:?}");
            assert!(!info.scripted);
        }
        let huge = format!("{CHROME_WIN_120} {}", "é".repeat(10_000));
        let e = Enricher::empty();
        let info = e.enrich(ip("8.8.8.8"), Some(&huge)).user_agent.unwrap();
        assert_eq!(&*info.family, "Chrome");
        assert_eq!(truncate_to_char_boundary(&huge, 512).len(), 511);
        assert!(e.enrich(ip("8.8.8.8"), None).user_agent.is_none());
    }

    #[test]
    fn user_agent_cache_is_bounded_and_transparent() {
        let e = Enricher::empty();
        for i in 0..(USER_AGENT_CACHE_ENTRIES + 10) {
            let ua = format!("curl/{i}");
            let info = e.enrich(ip("8.8.8.8"), Some(&ua)).user_agent.unwrap();
            assert_eq!(&*info.family, "curl");
        }
        assert!(e.user_agents.len() <= USER_AGENT_CACHE_ENTRIES);
        let first = e.enrich(ip("8.8.8.8"), Some(SAFARI_IOS_17)).user_agent;
        let cached = e.enrich(ip("8.8.8.8"), Some(SAFARI_IOS_17)).user_agent;
        assert_eq!(first, cached);
        assert_eq!(first, Some(parse_user_agent(SAFARI_IOS_17)));
    }
}
