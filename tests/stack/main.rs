//! Cross-service tests: the real edge, auth, signal and health on
//! `127.0.0.1:0`, real gRPC between them, real WebSocket clients.

mod admission;
mod auth_gate;
mod auth_lifecycle;
mod bad_input;
mod breakers;
mod concurrent_joins;
mod connection_flood;
mod enumeration;
mod h2_limits;
mod health;
mod join_hook;
mod metrics;
mod presence;
mod quotas;
mod relay;
mod replicas;
mod resume;
mod revocation_rules;
mod room_admin;
mod room_service;
mod router_suite;
mod signal_trust;
mod slow_consumer;
mod slow_link;
mod slow_loris;
mod static_client;
mod store_suite;
mod tls;
mod webhooks;
