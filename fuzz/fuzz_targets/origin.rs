//! The Origin check: any Origin and Host header values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_edge::OriginPolicy;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (origin, host) = text.split_once('\n').unwrap_or((&text, "edge.example.com"));
    let policy = OriginPolicy {
        allowed: vec!["https://app.example.com".into()],
        ..OriginPolicy::default()
    };
    let _ = policy.allows(Some(origin), Some(host));
    let dev = OriginPolicy {
        allow_loopback: true,
        serves_https: true,
        ..OriginPolicy::default()
    };
    let _ = dev.allows(Some(origin), None);
});
