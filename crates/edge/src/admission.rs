//! Per-client-address admission of WebSockets: at most so many open at once
//! and so many new ones per second from one address, checked at the upgrade
//! (before any work for the connection), refused with 503 + `Retry-After`
//! (at the cap) or 429 (too fast), each refusal counted.
//!
//! The address is the TCP peer, unless the peer is a trusted proxy (an
//! explicit CIDR list, empty by default): then the nearest untrusted address
//! in `X-Forwarded-For`. IPv6 clients are keyed by their /64, which one
//! subscriber usually holds whole. One map does both the count and the rate
//! under one lock per shard (`governor`'s keyed limiter rates but does not
//! count open connections); it is bounded, and idle entries are dropped.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use http::HeaderMap;

use switchboard_proto::token_bucket::TokenBucket;

use crate::connection::RateLimit;

/// Addresses tracked at most; beyond, new addresses are refused (503) until
/// some go idle. Far above any honest edge's distinct clients.
const MAX_TRACKED: usize = 1 << 18;
const SHARDS: usize = 16;

/// What admission allows (flags `--max-connections-per-ip`,
/// `--new-connections-per-ip-per-second`, `--trusted-proxy`).
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// Open WebSockets per client address.
    pub per_ip: usize,
    /// New WebSockets per client address.
    pub per_ip_rate: RateLimit,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            // Generous: carrier-grade NAT puts many subscribers behind one
            // address.
            per_ip: 500,
            per_ip_rate: RateLimit {
                per_second: 20,
                burst: 100,
            },
            trusted_proxies: Vec::new(),
        }
    }
}

/// An IP network, `10.0.0.0/8` or `fd00::/8` (a bare address is /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?
        };
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer, or behind trusted proxies the nearest
/// address in `X-Forwarded-For` that is not one of them.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    hops.iter()
        .rev()
        .copied()
        .find(|ip| !is_trusted(*ip))
        .or_else(|| hops.first().copied())
        .unwrap_or(peer)
}

/// What admission is keyed by: the address, or an IPv6 address's /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Why a WebSocket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address holds its maximum of open connections (503).
    AtCap,
    /// The address opens connections too fast (429).
    TooFast,
}

#[derive(Debug)]
struct Entry {
    open: usize,
    bucket: TokenBucket,
}

#[derive(Debug)]
struct Inner {
    config: AdmissionConfig,
    shards: Vec<Mutex<HashMap<IpAddr, Entry>>>,
    refused_at_cap: AtomicU64,
    refused_too_fast: AtomicU64,
}

/// Handle on the per-address admission state.
#[derive(Debug, Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

/// One admitted WebSocket's share of its address's count; released on drop.
#[derive(Debug)]
pub struct Admitted {
    admission: Admission,
    key: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut shard = self.admission.shard(self.key);
        if let Some(entry) = shard.get_mut(&self.key) {
            entry.open = entry.open.saturating_sub(1);
        }
    }
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                refused_at_cap: AtomicU64::new(0),
                refused_too_fast: AtomicU64::new(0),
            }),
        }
    }

    pub fn trusted_proxies(&self) -> &[Cidr] {
        &self.inner.config.trusted_proxies
    }

    fn shard(&self, key: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        let index = match key {
            IpAddr::V4(v4) => u32::from(v4) as usize,
            IpAddr::V6(v6) => (u128::from(v6) >> 64) as usize,
        } % SHARDS;
        self.inner.shards[index]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one more WebSocket from `ip`, or says why not (and counts it).
    pub fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        let config = &self.inner.config;
        let key = key(ip);
        let now = Instant::now();
        let refusal = {
            let mut shard = self.shard(key);
            if !shard.contains_key(&key) {
                // Drop idle entries before growing (their buckets are full
                // again, so forgetting them changes nothing).
                if shard.len() * SHARDS >= MAX_TRACKED {
                    shard.retain(|_, e| e.open > 0);
                }
                if shard.len() * SHARDS >= MAX_TRACKED {
                    return Err(self.count(Refusal::AtCap));
                }
            }
            let entry = shard.entry(key).or_insert_with(|| Entry {
                open: 0,
                bucket: TokenBucket::new(
                    config.per_ip_rate.per_second,
                    config.per_ip_rate.burst,
                    now,
                ),
            });
            if entry.open >= config.per_ip {
                Some(Refusal::AtCap)
            } else if !entry.bucket.try_take(now) {
                Some(Refusal::TooFast)
            } else {
                entry.open += 1;
                None
            }
        };
        match refusal {
            Some(refusal) => Err(self.count(refusal)),
            None => Ok(Admitted {
                admission: self.clone(),
                key,
            }),
        }
    }

    fn count(&self, refusal: Refusal) -> Refusal {
        let counter = match refusal {
            Refusal::AtCap => &self.inner.refused_at_cap,
            Refusal::TooFast => &self.inner.refused_too_fast,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        refusal
    }

    /// WebSockets refused so far: (at the per-address cap, too fast).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.inner.refused_at_cap.load(Ordering::Relaxed),
            self.inner.refused_too_fast.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.1.0.0/16".parse().expect("cidr");
        assert!(net.contains(ip("10.1.2.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.9.9")), "mapped v4");
        let one: Cidr = "192.0.2.7".parse().expect("bare address");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().expect("v6");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.1, 10.0.0.2"
                .parse()
                .expect("header"),
        );
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().expect("cidr")];
        // From an untrusted peer the header is ignored.
        assert_eq!(
            client_ip(ip("192.0.2.1"), &headers, &trusted),
            ip("192.0.2.1")
        );
        // From a trusted proxy: the nearest untrusted hop (a client cannot
        // pick its address by prepending to the header).
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("198.51.100.1")
        );
        // Nothing trusted by default.
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &[]), ip("10.0.0.1"));
        // A garbage hop ends the chain; the proxy is then the client.
        let mut bad = HeaderMap::new();
        bad.insert("x-forwarded-for", "junk".parse().expect("header"));
        assert_eq!(client_ip(ip("10.0.0.1"), &bad, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn the_cap_and_the_rate_are_per_address() {
        let admission = Admission::new(AdmissionConfig {
            per_ip: 3,
            per_ip_rate: RateLimit {
                per_second: 1,
                burst: 5,
            },
            trusted_proxies: vec![],
        });
        let a = ip("192.0.2.1");
        let held: Vec<_> = (0..3)
            .map(|_| admission.admit(a).expect("admitted"))
            .collect();
        assert_eq!(admission.admit(a).err(), Some(Refusal::AtCap));
        // Another address is not affected.
        let _b = admission.admit(ip("192.0.2.2")).expect("other address");
        // Closing frees the slot; the burst (5) is then what limits.
        drop(held);
        let again: Vec<_> = (0..2)
            .map(|_| admission.admit(a).expect("admitted"))
            .collect();
        drop(again);
        assert_eq!(admission.admit(a).err(), Some(Refusal::TooFast));
        assert_eq!(admission.refused(), (1, 1));
        // One IPv6 subscriber's /64 counts as one address.
        let v6: Vec<_> = (1..=3)
            .map(|i| admission.admit(ip(&format!("2001:db8::{i}"))).expect("v6"))
            .collect();
        assert_eq!(
            admission.admit(ip("2001:db8::ffff")).err(),
            Some(Refusal::AtCap)
        );
        drop(v6);
    }
}
