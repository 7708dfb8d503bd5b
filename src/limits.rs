//! Protocol limits shared by the edge, signal and the docs. Changing one is a
//! protocol change: `docs/protocol.md` lists them.

/// Largest WebSocket message (and frame) the edge accepts. Above it the
/// connection is closed with 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest room name or participant id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Largest SDP relayed, in bytes (bounded by the frame limit anyway).
pub const MAX_SDP_BYTES: usize = 60 * 1024;
/// Longest ICE candidate line, in bytes.
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// Most presence attributes per participant.
pub const MAX_ATTRIBUTES: usize = 16;
/// Most bytes over all presence attribute keys and values.
pub const MAX_ATTRIBUTE_BYTES: usize = 1024;
/// Longest display name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// How often clients should send a Ping, and the edge sends WebSocket pings.
pub const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);
/// A connection silent for this long is closed (`keepalive_timeout`).
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45);
/// A connection must send Join (or Resume) within this long after the
/// upgrade, or it is closed (`unauthenticated`).
pub const AUTH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
/// Sustained client messages per second per connection.
pub const MESSAGES_PER_SECOND: u32 = 50;
/// Burst of client messages allowed above the sustained rate.
pub const MESSAGE_BURST: u32 = 200;

/// What clients are told of the keepalive when nothing else is configured
/// (the edge says what it enforces; a direct gRPC caller gets this).
pub fn default_keepalive() -> crate::pb::Keepalive {
    crate::pb::Keepalive {
        interval_ms: PING_INTERVAL.as_millis() as u32,
        timeout_ms: KEEPALIVE_TIMEOUT.as_millis() as u32,
    }
}

/// The connection limits clients are told when nothing else is configured
/// (`max_participants` is the room service's to fill in).
pub fn default_limits() -> crate::pb::Limits {
    crate::pb::Limits {
        max_message_bytes: MAX_MESSAGE_BYTES as u32,
        messages_per_second: MESSAGES_PER_SECOND,
        burst: MESSAGE_BURST,
        max_participants: 0,
    }
}
