//! The edge with its conformance echo at `/conformance/echo`, for the
//! Autobahn cases (`scripts/autobahn.sh`) only: never deployed. Listens on
//! 127.0.0.1 (an ephemeral port unless given) and prints `LISTEN edge <url>`.
#![forbid(unsafe_code)]

use switchboard_edge::{AdmissionConfig, EdgeConfig, OriginPolicy, RateLimit};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(0), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("LISTEN edge http://{}", listener.local_addr()?);
    let config = EdgeConfig {
        // The cases' client sends no Origin.
        origins: OriginPolicy {
            allow_missing: true,
            ..OriginPolicy::default()
        },
        // Hundreds of cases from one address, one connection each: the
        // per-address rate is not what is tested.
        admission: AdmissionConfig {
            per_ip_rate: RateLimit {
                per_second: 10_000,
                burst: 10_000,
            },
            ..AdmissionConfig::default()
        },
        ..EdgeConfig::default()
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    switchboard_edge::run(listener, config, stop, |_| {}).await?;
    Ok(())
}
