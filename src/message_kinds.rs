//! The kinds of browser messages the edge counts (`switchboard_edge_messages`
//! by `kind`): fixed lists, so each kind's counter is resolved once.

use crate::pb;

/// Client message kinds, counted on the edge as they arrive.
pub const IN_KINDS: [&str; 8] = [
    "join",
    "signal",
    "update_presence",
    "leave",
    "ping",
    "resume",
    "unknown",
    "invalid",
];

/// Server message kinds, counted on the edge as they are written.
pub const OUT_KINDS: [&str; 16] = [
    "joined",
    "signal",
    "participant_joined",
    "participant_left",
    "participant_updated",
    "ack",
    "error",
    "pong",
    "resumed",
    "token_refreshed",
    "accepted",
    "data",
    "self_updated",
    "room_updated",
    "moved",
    "unknown",
];

/// The index in [`IN_KINDS`] of a client message.
pub fn in_kind(message: Option<&pb::client_message::Message>) -> usize {
    use pb::client_message::Message as In;
    match message {
        Some(In::Join(_)) => 0,
        Some(In::Signal(_)) => 1,
        Some(In::UpdatePresence(_)) => 2,
        Some(In::Leave(_)) => 3,
        Some(In::Ping(_)) => 4,
        Some(In::Resume(_)) => 5,
        None => 6,
    }
}

/// The index in [`OUT_KINDS`] of a server message.
pub fn out_kind(message: Option<&pb::server_message::Message>) -> usize {
    use pb::server_message::Message as Out;
    match message {
        Some(Out::Joined(_)) => 0,
        Some(Out::Signal(_)) => 1,
        Some(Out::ParticipantJoined(_)) => 2,
        Some(Out::ParticipantLeft(_)) => 3,
        Some(Out::ParticipantUpdated(_)) => 4,
        Some(Out::Ack(_)) => 5,
        Some(Out::Error(_)) => 6,
        Some(Out::Pong(_)) => 7,
        Some(Out::Resumed(_)) => 8,
        Some(Out::TokenRefreshed(_)) => 9,
        Some(Out::Accepted(_)) => 10,
        Some(Out::Data(_)) => 11,
        Some(Out::SelfUpdated(_)) => 12,
        Some(Out::RoomUpdated(_)) => 13,
        Some(Out::Moved(_)) => 14,
        None => 15,
    }
}
