//! How a client's address appears in the log (`--log-client-address`).
//!
//! An address identifies a person's home or phone, so by default the log
//! shows only its network (IPv4 /24, IPv6 /48): enough to see where a
//! flood comes from and which proxy misbehaves, not who a caller is. An
//! operator who must block single addresses turns on `full`; `off` leaves
//! it out. The address is the one admission uses: the TCP peer, or the
//! nearest untrusted hop when the peer is a trusted proxy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AddressInLogs {
    /// The whole address.
    Full,
    /// Its network: IPv4 /24, IPv6 /48 (`203.0.113.0/24`).
    #[default]
    Network,
    /// Not logged.
    Off,
}

impl AddressInLogs {
    /// The address as the log shows it (empty for `Off`).
    pub fn show(self, ip: IpAddr) -> String {
        match (self, ip) {
            (Self::Off, _) => String::new(),
            (Self::Full, ip) => ip.to_string(),
            (Self::Network, IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                format!("{}/24", Ipv4Addr::new(a, b, c, 0))
            }
            (Self::Network, IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_shows_the_network_only() {
        let v4: IpAddr = "203.0.113.77".parse().expect("ip");
        let v6: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().expect("ip");
        assert_eq!(AddressInLogs::default().show(v4), "203.0.113.0/24");
        assert_eq!(AddressInLogs::Network.show(v6), "2001:db8:abcd::/48");
        assert_eq!(AddressInLogs::Full.show(v4), "203.0.113.77");
        assert_eq!(AddressInLogs::Off.show(v4), "");
    }
}
