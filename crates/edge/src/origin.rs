//! The Origin allow-list checked at the WebSocket handshake. Browsers always
//! send Origin; a missing, foreign or `null` Origin is refused unless
//! explicitly allowed.

/// Which Origins may open a WebSocket.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Exact origins (`https://app.example.com`), compared case-insensitively.
    pub allowed: Vec<String>,
    /// Dev mode: also allow `http://localhost:*`, `http://127.0.0.1:*` and
    /// `http://[::1]:*`.
    pub allow_loopback: bool,
    /// Allow requests without an Origin header (non-browser clients).
    pub allow_missing: bool,
    /// The edge serves HTTPS itself (same-origin is then `https://`).
    pub serves_https: bool,
}

/// An origin as RFC 6454 serializes it: scheme, host, port (the scheme's
/// default when absent). Anything else in the header (userinfo, a path, a
/// trailing `/`, a second origin, a bad port) makes it no origin at all.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.to_ascii_lowercase();
        let (https, rest) = if let Some(rest) = raw.strip_prefix("https://") {
            (true, rest)
        } else {
            (false, raw.strip_prefix("http://")?)
        };
        let (host, port) = host_and_port(rest)?;
        let port = port.unwrap_or(if https { 443 } else { 80 });
        Some(Self {
            https,
            host: host.to_owned(),
            port,
        })
    }
}

/// `host[:port]` with a DNS name, an IPv4 address or a bracketed IPv6
/// address, and a port of 1–65535 in plain digits.
fn host_and_port(raw: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if raw.starts_with('[') {
        let end = raw.find(']')?;
        let (host, rest) = raw.split_at(end + 1);
        let v6 = &host[1..host.len() - 1];
        if v6.is_empty()
            || !v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        match rest {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match raw.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (raw, None),
        };
        let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if host.is_empty() || !host.chars().all(name_char) {
            return None;
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|p| *p > 0)?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

impl OriginPolicy {
    /// Whether a handshake with this Origin header (and Host) may proceed.
    /// The edge's own origin (the request's Host, over the scheme the edge
    /// serves) is always allowed: that is the client it serves. Behind a
    /// TLS-terminating proxy, list the public origin in `allowed`.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(raw) = origin else {
            return self.allow_missing;
        };
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("null") {
            return self.allowed.iter().any(|o| o == "null");
        }
        let Some(origin) = Origin::parse(raw) else {
            return false;
        };
        if let Some((host, port)) = host
            .and_then(|h| host_and_port(&h.to_ascii_lowercase()).map(|(h, p)| (h.to_owned(), p)))
        {
            let own = Origin {
                https: self.serves_https,
                host,
                port: port.unwrap_or(if self.serves_https { 443 } else { 80 }),
            };
            if origin == own {
                return true;
            }
        }
        if self
            .allowed
            .iter()
            .filter_map(|o| Origin::parse(o))
            .any(|o| o == origin)
        {
            return true;
        }
        self.allow_loopback
            && !origin.https
            && matches!(origin.host.as_str(), "localhost" | "127.0.0.1" | "[::1]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_policy() {
        let policy = OriginPolicy {
            allowed: vec!["https://app.example.com".into()],
            ..Default::default()
        };
        assert!(policy.allows(Some("https://app.example.com"), None));
        assert!(policy.allows(Some("HTTPS://APP.example.com"), None));
        assert!(!policy.allows(Some("https://evil.example.com"), None));
        assert!(!policy.allows(Some("null"), None));
        assert!(!policy.allows(None, None));
        assert!(!policy.allows(Some("http://localhost:3000"), None));
        // Same origin as the edge itself (plain HTTP here).
        assert!(policy.allows(Some("http://edge.example.com"), Some("edge.example.com")));
        assert!(!policy.allows(
            Some("https://edge.example.com.evil.io"),
            Some("edge.example.com")
        ));
        assert!(!policy.allows(Some("https://evil.io"), Some("edge.example.com")));
    }

    /// RFC 6454 serializations only: scheme, host and port, nothing else.
    #[test]
    fn only_well_formed_origins_match() {
        let dev = OriginPolicy {
            allow_loopback: true,
            ..Default::default()
        };
        for bad in [
            "http://127.0.0.1:1@evil.example",
            "http://127.0.0.1:8080/path",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:abc",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:0",
            "http://127.0.0.1:+80",
            "http://127.0.0.1:8080, https://evil.example",
            "http://localhost:3000 https://evil.example",
            "http://user@localhost:3000",
            "http://localhost:3000?x",
            "http://localhost:3000#x",
            "http:/localhost:3000",
            "ftp://localhost:3000",
            "http://",
            "http://[::1",
        ] {
            assert!(!dev.allows(Some(bad), None), "{bad}");
        }
        assert!(dev.allows(Some("http://localhost"), None));
        assert!(dev.allows(Some("http://LOCALHOST:3000"), None));
        let listed = OriginPolicy {
            allowed: vec!["https://app.example.com".into()],
            ..Default::default()
        };
        assert!(
            listed.allows(Some("https://app.example.com:443"), None),
            "default port"
        );
        assert!(!listed.allows(Some("https://app.example.com:8443"), None));
        assert!(!listed.allows(Some("https://app.example.com/"), None));
        assert!(!listed.allows(Some("https://app.example.com, https://evil.example"), None));
    }

    /// Same origin means the scheme the edge serves, not either scheme.
    #[test]
    fn same_origin_uses_the_scheme_the_edge_serves() {
        let plain = OriginPolicy::default();
        assert!(plain.allows(Some("http://edge.example.com"), Some("edge.example.com")));
        assert!(!plain.allows(Some("https://edge.example.com"), Some("edge.example.com")));
        assert!(plain.allows(Some("http://edge:8080"), Some("edge:8080")));
        assert!(!plain.allows(Some("http://edge:8081"), Some("edge:8080")));
        let tls = OriginPolicy {
            serves_https: true,
            ..Default::default()
        };
        assert!(tls.allows(Some("https://edge.example.com"), Some("edge.example.com")));
        assert!(tls.allows(
            Some("https://edge.example.com"),
            Some("edge.example.com:443")
        ));
        assert!(!tls.allows(Some("http://edge.example.com"), Some("edge.example.com")));
        assert!(!tls.allows(Some("https://edge.example.com/x"), Some("edge.example.com")));
    }

    #[test]
    fn dev_policy_allows_loopback_only() {
        let policy = OriginPolicy {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(policy.allows(Some("http://localhost:3000"), None));
        assert!(policy.allows(Some("http://127.0.0.1:8080"), None));
        assert!(policy.allows(Some("http://[::1]:8080"), None));
        assert!(!policy.allows(Some("http://localhost.evil.com"), None));
        assert!(!policy.allows(Some("http://127.0.0.1.evil.com:80"), None));
        assert!(!policy.allows(Some("null"), None));
    }
}
