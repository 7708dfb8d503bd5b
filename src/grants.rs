//! What a verified token permits, decided in one place for every service:
//! which room a join may enter (the edge, at the join), which session a
//! resume may continue (signal, which alone knows the session's room), and
//! which signals a session may send (signal, per offer).

use crate::{ErrorCode, SignalError, pb, validate};

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
    RoomCreate,
    RoomAdmin,
}

impl BackendGrant {
    fn held_by(self, grants: &pb::Grants) -> bool {
        match self {
            Self::RoomList => grants.room_list,
            Self::RoomClose => grants.room_close,
            Self::Kick => grants.kick,
            Self::RoomData => grants.room_data,
            Self::RoomCreate => grants.room_create,
            Self::RoomAdmin => grants.room_admin,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::RoomList => "roomList",
            Self::RoomClose => "roomClose",
            Self::Kick => "kick",
            Self::RoomData => "roomData",
            Self::RoomCreate => "roomCreate",
            Self::RoomAdmin => "roomAdmin",
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

/// Whether a session that may (`publish`) or may not publish may send
/// `signal`: an offer needs `publish` (the token's grant at the join, or
/// what the application's backend set since; signal decides, as it alone
/// knows the live value).
pub fn may_signal(publish: bool, signal: &pb::PeerSignal) -> Result<(), SignalError> {
    if is_offer(signal) && !publish {
        return Err(SignalError::new(
            ErrorCode::PermissionDenied,
            "this participant may not publish",
        ));
    }
    Ok(())
}

/// An SDP offer.
pub fn is_offer(signal: &pb::PeerSignal) -> bool {
    matches!(
        &signal.kind,
        Some(pb::peer_signal::Kind::Description(d))
            if d.r#type == pb::session_description::Type::Offer as i32
    )
}

/// The name prefix a room listing may cover for a token granting
/// `grant` when the caller asks for names starting with `requested`: the
/// longer of the two when one extends the other, `None` when they exclude
/// each other (nothing to list). The store is asked with this prefix, so
/// a page — and its page token, the last name on it — never holds a room
/// outside the grant. An exact grant lists no other room: the caller gets
/// its prefix and keeps only the exact name.
pub fn listing_prefix(grant: &str, requested: &str) -> Option<String> {
    let granted = grant.strip_suffix('*').unwrap_or(grant);
    if requested.starts_with(granted) {
        Some(requested.to_owned())
    } else if granted.starts_with(requested) {
        Some(granted.to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_stays_within_the_grant() {
        assert_eq!(listing_prefix("team-*", ""), Some("team-".into()));
        assert_eq!(listing_prefix("team-*", "te"), Some("team-".into()));
        assert_eq!(listing_prefix("team-*", "team-a"), Some("team-a".into()));
        assert_eq!(listing_prefix("team-*", "lobby"), None);
        assert_eq!(listing_prefix("*", "x"), Some("x".into()));
        assert_eq!(listing_prefix("room1", ""), Some("room1".into()));
        assert_eq!(listing_prefix("room1", "room2"), None);
    }
}
