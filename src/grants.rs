//! What a verified token permits, decided in one place for every service:
//! which room a join may enter (the edge, at the join), which session a
//! resume may continue (signal, which alone knows the session's room), and
//! which messages a session may send (the edge, per message).

use crate::{
    ErrorCode, SignalError,
    pb::{self, client_message::Message as In},
    validate,
};

/// The room a join asks for, if the token grants it. Without an explicit
/// room the token must grant exactly one.
pub fn granted_room(claims: &pb::Claims, requested: &str) -> Result<String, SignalError> {
    let grant = claims
        .grants
        .as_ref()
        .map(|g| g.room.as_str())
        .unwrap_or("");
    let room = if requested.is_empty() {
        if grant.is_empty() || grant.contains('*') {
            return Err(SignalError::new(
                ErrorCode::BadRequest,
                "join.room is required unless the token grants exactly one room",
            ));
        }
        grant
    } else {
        requested
    };
    if !validate::room_granted(grant, room) {
        return Err(SignalError::new(
            ErrorCode::PermissionDenied,
            "the token does not grant this room",
        ));
    }
    Ok(room.to_owned())
}

/// What a backend call needs (RoomService, docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendGrant {
    RoomList,
    RoomClose,
    Kick,
    RoomData,
}

impl BackendGrant {
    fn held_by(self, grants: &pb::Grants) -> bool {
        match self {
            Self::RoomList => grants.room_list,
            Self::RoomClose => grants.room_close,
            Self::Kick => grants.kick,
            Self::RoomData => grants.room_data,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::RoomList => "roomList",
            Self::RoomClose => "roomClose",
            Self::Kick => "kick",
            Self::RoomData => "roomData",
        }
    }
}

/// Whether a backend holding `claims` may make a call needing `grant` on
/// `room`: the grant, and a `room` grant covering it.
pub fn may_call(claims: &pb::Claims, grant: BackendGrant, room: &str) -> Result<(), SignalError> {
    let grants = claims.grants.clone().unwrap_or_default();
    if !grant.held_by(&grants) {
        return Err(SignalError::new(
            ErrorCode::PermissionDenied,
            format!("the token does not grant {}", grant.name()),
        ));
    }
    if !validate::room_granted(&grants.room, room) {
        return Err(SignalError::new(
            ErrorCode::PermissionDenied,
            "the token does not grant this room",
        ));
    }
    Ok(())
}

/// Whether a token granting `room_grant` may resume a session in `room`.
pub fn may_resume(room_grant: &str, room: &str) -> bool {
    validate::room_granted(room_grant, room)
}

/// Whether a joined session holding `grants` may send `message`: an offer
/// needs `publish`.
pub fn may_send(grants: Option<&pb::Grants>, message: &In) -> Result<(), SignalError> {
    let publishes = grants.is_some_and(|g| g.publish);
    if is_offer(message) && !publishes {
        return Err(SignalError::new(
            ErrorCode::PermissionDenied,
            "the token does not grant publish",
        ));
    }
    Ok(())
}

fn is_offer(message: &In) -> bool {
    matches!(
        message,
        In::Signal(pb::PeerSignal {
            kind: Some(pb::peer_signal::Kind::Description(d)),
            ..
        }) if d.r#type == pb::session_description::Type::Offer as i32
    )
}
