//! Test harness for cross-service tests: real servers on `127.0.0.1:0`,
//! real gRPC between them, real WebSocket clients. Nothing here sleeps to
//! wait for readiness: every wait polls a condition with a deadline.

pub mod auth_server;
pub mod client;
pub mod http;
pub mod metrics;
pub mod process;
pub mod redis_server;
pub mod stack;
pub mod wait;
pub mod webhook_receiver;

pub use client::{Closed, Refused, SocketOptions, WsClient, candidate, description, raw_frame};
pub use stack::{Stack, StackConfig};
pub use wait::{DEADLINE, wait_until};
