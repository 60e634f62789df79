//! Brute-force and scanner defence: failed-authentication counters per digest
//! username and per source address, lock-outs, scanner User-Agents, trusted networks.
//!
//! Counters are sliding windows of failure times; reaching the threshold locks the key
//! for `lockout`. Unknown users count exactly like known ones (the key is the
//! username as given), so a lock-out says nothing about whether a user exists.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::warn;

/// `[security]` settings (see the README's configuration table).
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// Failed authentications for one username within `failure_window` that lock it.
    pub user_failures: u32,
    /// Failed authentications from one IP address within `failure_window` that lock it.
    pub ip_failures: u32,
    pub failure_window: Duration,
    /// How long a lock-out lasts.
    pub lockout: Duration,
    /// User-Agent substrings (case-insensitive) of known scanners.
    pub scanner_user_agents: Vec<String>,
    /// Drop scanners' requests silently (true) or answer them 403 (false).
    pub drop_scanners: bool,
    /// Sources that skip authentication (gateways).
    pub trusted_networks: Vec<Cidr>,
    /// Anonymous callers may call users' extensions (default: only rooms and services).
    pub anonymous_may_call_users: bool,
}

/// The scanners we know by their User-Agent (sipvicious and its forks, SIPVicious-era
/// toolkits, and the brute-forcers seen in the wild).
pub const DEFAULT_SCANNERS: &[&str] =
    &["friendly-scanner", "sipvicious", "sipcli", "vaxsipuseragent", "sundayddr", "iwar", "sivus", "sipsak", "smap", "pplsip", "sip-scan", "fscanner"];

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            user_failures: 5,
            ip_failures: 20,
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            scanner_user_agents: DEFAULT_SCANNERS.iter().map(|s| s.to_string()).collect(),
            drop_scanners: true,
            trusted_networks: Vec::new(),
            anonymous_may_call_users: false,
        }
    }
}

/// An address range, `10.0.0.0/8` or `::1/128` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("`{s}` is not an address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(|| format!("`{s}`: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.addr.is_ipv4() => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            other => other,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Default)]
struct Failures {
    times: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

pub struct Guard {
    pub cfg: SecurityConfig,
    lowered_scanners: Vec<String>,
    /// Keyed by `realm "/" username`.
    users: HashMap<String, Failures>,
    ips: HashMap<IpAddr, Failures>,
    last_prune: Option<Instant>,
}

impl Guard {
    pub fn new(cfg: SecurityConfig) -> Guard {
        let lowered_scanners = cfg.scanner_user_agents.iter().map(|s| s.to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
        Guard { cfg, lowered_scanners, users: HashMap::new(), ips: HashMap::new(), last_prune: None }
    }

    pub fn is_scanner(&self, user_agent: Option<&str>) -> bool {
        let Some(ua) = user_agent else { return false };
        let ua = ua.to_ascii_lowercase();
        self.lowered_scanners.iter().any(|s| ua.contains(s.as_str()))
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.cfg.trusted_networks.iter().any(|c| c.contains(ip))
    }

    pub fn ip_locked(&self, ip: IpAddr, now: Instant) -> bool {
        self.ips.get(&ip).and_then(|f| f.locked_until).is_some_and(|t| t > now)
    }

    pub fn user_locked(&self, realm: &str, username: &str, now: Instant) -> bool {
        self.users.get(&user_key(realm, username)).and_then(|f| f.locked_until).is_some_and(|t| t > now)
    }

    /// Counts a failed authentication; true when it (or an earlier one) locked the
    /// user or the address.
    pub fn failed(&mut self, realm: &str, username: &str, ip: IpAddr, now: Instant) -> bool {
        let (window, lockout) = (self.cfg.failure_window, self.cfg.lockout);
        let u = count(self.users.entry(user_key(realm, username)).or_default(), now, window, self.cfg.user_failures, lockout);
        if u == Count::JustLocked {
            warn!(%realm, %username, source = %ip, secs = lockout.as_secs(), "too many failed authentications: username locked out");
        }
        let i = count(self.ips.entry(ip).or_default(), now, window, self.cfg.ip_failures, lockout);
        if i == Count::JustLocked {
            warn!(source = %ip, secs = lockout.as_secs(), "too many failed authentications: address locked out");
        }
        u != Count::Open || i != Count::Open
    }

    /// A success clears the username's failures (not the address's: one good password
    /// must not let a scanner behind the same NAT go on guessing).
    pub fn succeeded(&mut self, realm: &str, username: &str) {
        self.users.remove(&user_key(realm, username));
    }

    /// Forgets counters that can no longer lock anything.
    pub fn prune(&mut self, now: Instant) {
        if self.last_prune.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(10)) {
            return;
        }
        self.last_prune = Some(now);
        let window = self.cfg.failure_window;
        let keep = |f: &mut Failures| {
            f.locked_until.is_some_and(|t| t > now) || f.times.back().is_some_and(|&t| now.saturating_duration_since(t) < window)
        };
        self.users.retain(|_, f| keep(f));
        self.ips.retain(|_, f| keep(f));
    }
}

#[derive(PartialEq, Eq)]
enum Count {
    Open,
    JustLocked,
    Locked,
}

fn count(f: &mut Failures, now: Instant, window: Duration, threshold: u32, lockout: Duration) -> Count {
    if f.locked_until.is_some_and(|t| t > now) {
        return Count::Locked;
    }
    f.locked_until = None;
    while f.times.front().is_some_and(|&t| now.saturating_duration_since(t) >= window) {
        f.times.pop_front();
    }
    f.times.push_back(now);
    if threshold > 0 && f.times.len() >= threshold as usize {
        f.times.clear();
        f.locked_until = Some(now + lockout);
        return Count::JustLocked;
    }
    Count::Open
}

fn user_key(realm: &str, username: &str) -> String {
    format!("{}/{}", realm.to_ascii_lowercase(), username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(one.prefix, 32);
        assert!("::1/129".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert!("::/0".parse::<Cidr>().unwrap().contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn lockout_window_and_expiry_in_virtual_time() {
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut g = Guard::new(SecurityConfig { user_failures: 3, ip_failures: 100, ..Default::default() });
        assert!(!g.failed("r", "bob", ip, t0));
        // Spread past the window: the first failure no longer counts.
        assert!(!g.failed("r", "bob", ip, t0 + Duration::from_secs(30)));
        assert!(!g.failed("r", "bob", ip, t0 + Duration::from_secs(61)));
        assert!(!g.user_locked("r", "bob", t0 + Duration::from_secs(61)));
        assert!(g.failed("r", "bob", ip, t0 + Duration::from_secs(62)));
        assert!(g.user_locked("r", "bob", t0 + Duration::from_secs(62)));
        assert!(!g.user_locked("r", "alice", t0 + Duration::from_secs(62)));
        assert!(g.user_locked("r", "bob", t0 + Duration::from_secs(361)));
        assert!(!g.user_locked("r", "bob", t0 + Duration::from_secs(363)), "lock-out lapses");
        assert!(!g.ip_locked(ip, t0 + Duration::from_secs(62)));
    }

    #[test]
    fn address_lockout_across_usernames_and_scanners() {
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut g = Guard::new(SecurityConfig { ip_failures: 4, ..Default::default() });
        for (i, u) in ["100", "101", "102"].iter().enumerate() {
            assert!(!g.failed("r", u, ip, t0 + Duration::from_secs(i as u64)));
        }
        assert!(g.failed("r", "103", ip, t0 + Duration::from_secs(3)));
        assert!(g.ip_locked(ip, t0 + Duration::from_secs(4)));
        assert!(!g.ip_locked("192.0.2.8".parse().unwrap(), t0));
        assert!(g.is_scanner(Some("friendly-scanner")));
        assert!(g.is_scanner(Some("SIPVicious 0.3.4")));
        assert!(!g.is_scanner(Some("PJSUA v2.15 Linux")));
        assert!(!g.is_scanner(None));
        g.prune(t0 + Duration::from_secs(1000));
        assert!(!g.ip_locked(ip, t0 + Duration::from_secs(1000)));
    }
}
