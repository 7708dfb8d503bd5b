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
}

impl OriginPolicy {
    /// Whether a handshake with this Origin header (and Host) may proceed.
    /// The edge's own origin (same host as the request) is always allowed:
    /// that is the client it serves.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>, tls: bool) -> bool {
        let Some(origin) = origin else {
            return self.allow_missing;
        };
        let origin = origin.trim().to_ascii_lowercase();
        if origin == "null" {
            return self.allowed.iter().any(|o| o == "null");
        }
        if let Some(host) = host {
            let scheme = if tls { "https" } else { "http" };
            if origin == format!("{scheme}://{}", host.to_ascii_lowercase()) {
                return true;
            }
        }
        if self.allowed.iter().any(|o| o.eq_ignore_ascii_case(&origin)) {
            return true;
        }
        self.allow_loopback && is_loopback_origin(&origin)
    }
}

fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().map(|h| format!("[{h}]"))
    } else {
        rest.split(':').next().map(str::to_owned)
    };
    matches!(host.as_deref(), Some("localhost" | "127.0.0.1" | "[::1]"))
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
        assert!(policy.allows(Some("https://app.example.com"), None, true));
        assert!(policy.allows(Some("HTTPS://APP.example.com"), None, true));
        assert!(!policy.allows(Some("https://evil.example.com"), None, true));
        assert!(!policy.allows(Some("null"), None, true));
        assert!(!policy.allows(None, None, true));
        assert!(!policy.allows(Some("http://localhost:3000"), None, false));
        // Same origin as the edge itself.
        assert!(policy.allows(
            Some("https://edge.example.com"),
            Some("edge.example.com"),
            true
        ));
        assert!(!policy.allows(
            Some("http://edge.example.com"),
            Some("edge.example.com"),
            true
        ));
    }

    #[test]
    fn dev_policy_allows_loopback_only() {
        let policy = OriginPolicy {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(policy.allows(Some("http://localhost:3000"), None, false));
        assert!(policy.allows(Some("http://127.0.0.1:8080"), None, false));
        assert!(policy.allows(Some("http://[::1]:8080"), None, false));
        assert!(!policy.allows(Some("http://localhost.evil.com"), None, false));
        assert!(!policy.allows(Some("http://127.0.0.1.evil.com:80"), None, false));
        assert!(!policy.allows(Some("null"), None, false));
    }
}
