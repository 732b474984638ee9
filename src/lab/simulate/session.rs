//! One session as it is generated: its credential and the tokens issued for it, its
//! User-Agents, and its requests in a compact form (rendered to JSON lines only at the end).
//!
//! Token life cycle: a JWT session gets a fresh token (same `sid`, new `jti`,
//! `exp = iat + lifetime`) at its first request and then at the first request after every
//! refresh interval; a cookie or API-key session keeps one opaque token for the whole run.
//! The owner's requests go through [`SessionBuilder::owner_token`], which issues tokens in
//! event-time order; an attacker only ever copies a token the owner already holds
//! ([`SessionBuilder::token_at`]) and never issues one.
//!
//! Pure: tokens come from the session's RNG and the simulation's keys.

use std::net::IpAddr;

use base64::Engine;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::SimKeys;
use super::catalog::PathSpec;

/// How the session carries its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Credential {
    /// `Authorization: Bearer <JWT>`, refreshed.
    Jwt,
    /// `Cookie: sid=<opaque>`, long-lived.
    Cookie,
    /// `Authorization: Bearer <opaque API key>`.
    ApiKey,
}

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One request, compact: indexes into the session's tokens and User-Agents.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request {
    /// Event time, ms.
    pub time: i64,
    pub ip: IpAddr,
    /// Index into the session's tokens.
    pub token: u32,
    /// Index into the session's User-Agents.
    pub ua: u16,
    pub method: Method,
    pub path: PathSpec,
    /// The number after a numbered path.
    pub arg: u32,
    pub status: u16,
    /// Made by the attacker (ground truth).
    pub attacker: bool,
}

/// A token issued to the session.
#[derive(Debug, Clone)]
pub(super) struct Issued {
    /// The bare token.
    pub raw: String,
    /// Issued at, ms.
    pub iat_ms: i64,
    /// `exp`, ms (JWTs).
    pub exp_ms: Option<i64>,
}

/// Collects one session's tokens, User-Agents and requests.
pub(super) struct SessionBuilder<'k> {
    keys: &'k SimKeys,
    pub credential: Credential,
    pub sub: String,
    pub sid: Option<String>,
    refresh_ms: i64,
    lifetime_s: i64,
    pub tokens: Vec<Issued>,
    pub uas: Vec<String>,
    pub requests: Vec<Request>,
}

impl<'k> SessionBuilder<'k> {
    pub fn new(
        keys: &'k SimKeys,
        credential: Credential,
        sub: String,
        rng: &mut ChaCha8Rng,
        refresh_s: u64,
        lifetime_s: u64,
    ) -> Self {
        let sid =
            (credential == Credential::Jwt).then(|| format!("s-{:016x}", rng.random::<u64>()));
        SessionBuilder {
            keys,
            credential,
            sub,
            sid,
            refresh_ms: refresh_s as i64 * 1000,
            lifetime_s: lifetime_s as i64,
            tokens: Vec::new(),
            uas: Vec::new(),
            requests: Vec::new(),
        }
    }

    /// The owner's token for a request at `t`: a new one at the first request and, for JWT
    /// sessions, whenever the current one is at least one refresh interval old (which also
    /// covers an expired one: the lifetime exceeds the interval).
    pub fn owner_token(&mut self, rng: &mut ChaCha8Rng, t: i64) -> u32 {
        let due = match (self.tokens.last(), self.credential) {
            (None, _) => true,
            (Some(last), Credential::Jwt) => t - last.iat_ms >= self.refresh_ms,
            (Some(_), _) => false,
        };
        if due {
            let issued = self.issue(rng, t);
            self.tokens.push(issued);
        }
        (self.tokens.len() - 1) as u32
    }

    fn issue(&self, rng: &mut ChaCha8Rng, t: i64) -> Issued {
        match self.credential {
            Credential::Jwt => {
                let iat = t.div_euclid(1000);
                let exp = iat + self.lifetime_s;
                let jti = format!("{:016x}", rng.random::<u64>());
                let sid = self.sid.as_deref().unwrap_or_default();
                Issued {
                    raw: sign_jwt(self.keys, &self.sub, sid, &jti, iat, exp),
                    iat_ms: t,
                    exp_ms: Some(exp * 1000),
                }
            }
            Credential::Cookie => {
                let bytes: [u8; 32] = rng.random();
                Issued {
                    raw: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
                    iat_ms: t,
                    exp_ms: None,
                }
            }
            Credential::ApiKey => Issued {
                raw: format!(
                    "twk_{:032x}{:08x}",
                    rng.random::<u128>(),
                    rng.random::<u32>()
                ),
                iat_ms: t,
                exp_ms: None,
            },
        }
    }

    /// The token the owner held at `t` (what a thief copies at `t`) and the last moment it
    /// still works (`exp` − 1 s for JWTs, `i64::MAX` otherwise).
    pub fn token_at(&self, t: i64) -> Option<(u32, i64)> {
        let i = self.tokens.iter().rposition(|tok| tok.iat_ms <= t)?;
        let until = self.tokens[i].exp_ms.map_or(i64::MAX, |exp| exp - 1000);
        (t <= until).then_some((i as u32, until))
    }

    /// Index of a User-Agent string (interned per session).
    pub fn ua(&mut self, ua: &str) -> u16 {
        match self.uas.iter().position(|u| u == ua) {
            Some(i) => i as u16,
            None => {
                self.uas.push(ua.to_owned());
                (self.uas.len() - 1) as u16
            }
        }
    }

    /// The User-Agent the owner used last at or before `t` (or first, if none yet).
    pub fn owner_ua_at(&self, t: i64) -> u16 {
        self.requests
            .iter()
            .rev()
            .find(|r| !r.attacker && r.time <= t)
            .or_else(|| self.requests.first())
            .map_or(0, |r| r.ua)
    }

    /// Record a request.
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        &mut self,
        time: i64,
        ip: IpAddr,
        token: u32,
        ua: u16,
        method: Method,
        path: PathSpec,
        arg: u32,
        status: u16,
        attacker: bool,
    ) {
        self.requests.push(Request {
            time,
            ip,
            token,
            ua,
            method,
            path,
            arg,
            status,
            attacker,
        });
    }
}

fn sign_jwt(keys: &SimKeys, sub: &str, sid: &str, jti: &str, iat: i64, exp: i64) -> String {
    let claims = serde_json::json!({
        "iss": keys.issuer, "aud": keys.audience, "sub": sub, "sid": sid,
        "jti": jti, "iat": iat, "exp": exp,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(keys.kid.clone());
    let key = jsonwebtoken::EncodingKey::from_secret(keys.jwt_secret.as_bytes());
    // HS256 signing with an in-memory key cannot fail.
    jsonwebtoken::encode(&header, &claims, &key).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn jwt_sessions_refresh_on_schedule_and_thieves_copy_the_current_token() {
        let keys = SimKeys::from_seed(1);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut b = SessionBuilder::new(&keys, Credential::Jwt, "u".into(), &mut rng, 900, 1200);
        let t0 = 1_000_000_000_000;
        assert_eq!(b.owner_token(&mut rng, t0), 0);
        assert_eq!(b.owner_token(&mut rng, t0 + 899_000), 0);
        assert_eq!(b.owner_token(&mut rng, t0 + 900_000), 1);
        // Idle for an hour: the next request refreshes.
        assert_eq!(b.owner_token(&mut rng, t0 + 4_500_000), 2);
        assert_eq!(
            b.tokens[1].exp_ms,
            Some((t0 + 900_000) / 1000 * 1000 + 1_200_000)
        );
        assert_eq!(
            b.token_at(t0 + 100),
            Some((0, t0 / 1000 * 1000 + 1_199_000))
        );
        assert_eq!(
            b.token_at(t0 + 1_000_000),
            Some((1, (t0 + 900_000) / 1000 * 1000 + 1_199_000))
        );
        // Between the second token's expiry and the third's issue nothing works.
        assert_eq!(b.token_at(t0 + 3_000_000), None);
        assert_eq!(b.token_at(t0 - 1), None);
    }

    #[test]
    fn opaque_sessions_keep_one_token() {
        let keys = SimKeys::from_seed(1);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for credential in [Credential::Cookie, Credential::ApiKey] {
            let mut b = SessionBuilder::new(&keys, credential, "u".into(), &mut rng, 900, 1200);
            assert_eq!(b.owner_token(&mut rng, 0), 0);
            assert_eq!(b.owner_token(&mut rng, 86_400_000), 0);
            assert_eq!(b.token_at(86_400_000), Some((0, i64::MAX)));
            assert!(!crate::credential::Canonical::of(&b.tokens[0].raw).is_jwt());
            assert!(b.sid.is_none());
        }
    }
}
