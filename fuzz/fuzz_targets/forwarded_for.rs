//! The client address behind trusted proxies: any X-Forwarded-For value,
//! and CIDR parsing (`--trusted-proxy`).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use switchboard_edge::{Cidr, admission::client_ip};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = text.parse::<Cidr>();
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("x-forwarded-for", value);
    let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().expect("cidr")];
    let _ = client_ip(proxy, &headers, &trusted);
});
