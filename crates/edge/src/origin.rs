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
    /// The edge's own origin (same host as the request, over http or https:
    /// TLS may end at a proxy in front of the edge) is always allowed: that
    /// is the client it serves.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return self.allow_missing;
        };
        let origin = origin.trim().to_ascii_lowercase();
        if origin == "null" {
            return self.allowed.iter().any(|o| o == "null");
        }
        if let Some(host) = host {
            let host = host.to_ascii_lowercase();
            let origin_host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            if origin_host == Some(host.as_str()) {
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
        assert!(policy.allows(Some("https://app.example.com"), None));
        assert!(policy.allows(Some("HTTPS://APP.example.com"), None));
        assert!(!policy.allows(Some("https://evil.example.com"), None));
        assert!(!policy.allows(Some("null"), None));
        assert!(!policy.allows(None, None));
        assert!(!policy.allows(Some("http://localhost:3000"), None));
        // Same origin as the edge itself, over http or https.
        assert!(policy.allows(Some("https://edge.example.com"), Some("edge.example.com")));
        assert!(policy.allows(Some("http://edge.example.com"), Some("edge.example.com")));
        assert!(!policy.allows(
            Some("https://edge.example.com.evil.io"),
            Some("edge.example.com")
        ));
        assert!(!policy.allows(Some("https://evil.io"), Some("edge.example.com")));
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
