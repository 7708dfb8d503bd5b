//! The one schema of Switchboard.
//!
//! `proto/` is compiled by `build.rs`; this crate re-exports the generated
//! types (`pb`), and adds what every service shares about them: typed ids
//! ([`ids`]), the error table ([`error`]), protocol limits ([`limits`]),
//! request validation ([`validate`]) and the browser frame codec ([`wire`]).
#![forbid(unsafe_code)]

pub mod auth_client;
pub mod circuit_breaker;
pub mod error;
pub mod grants;
pub mod grpc;
pub mod grpc_listen;
pub mod grpc_metrics;
pub mod health;
pub mod ids;
pub mod limits;
pub mod local_relay;
pub mod message_kinds;
pub mod metrics;
pub mod mtls;
pub mod peer_check;
pub mod service_credential;
pub mod tls_files;
pub mod token_bucket;
pub mod trace;
pub mod tuning;
pub mod validate;
pub mod wire;

/// Generated protobuf, gRPC and JSON code for package `switchboard.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs, unused_qualifications)]
    tonic::include_proto!("switchboard.v1");
    include!(concat!(env!("OUT_DIR"), "/switchboard.v1.serde.rs"));
}

/// Generated code of the standard `grpc.health.v1` (shipped in
/// `proto/grpc/health/v1/health.proto`).
pub mod health_pb {
    #![allow(clippy::all, missing_docs, unused_qualifications)]
    tonic::include_proto!("grpc.health.v1");
}

/// The encoded `FileDescriptorSet` of `proto/`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/switchboard_descriptor.bin"));

pub use error::{ErrorCode, SignalError};
pub use ids::{ConnId, ParticipantId, RoomId, SessionId};
/// Why a participant left (`ParticipantLeft.reason`), defined in the proto.
pub use pb::LeaveReason;
