//! Rules on message contents beyond what the schema says: lengths, counts,
//! forbidden bytes. Signal applies them to every request, whoever sends it.

use std::collections::HashMap;

use crate::{
    ErrorCode, ParticipantId, SignalError,
    limits::{
        MAX_ATTRIBUTE_BYTES, MAX_ATTRIBUTES, MAX_CANDIDATE_BYTES, MAX_NAME_BYTES, MAX_SDP_BYTES,
    },
    pb::{self, peer_signal::Kind},
};

fn bad(message: impl Into<String>) -> SignalError {
    SignalError::new(ErrorCode::BadRequest, message)
}

/// Checks presence attributes against the count and size limits.
pub fn attributes(attrs: &HashMap<String, String>) -> Result<(), SignalError> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(bad(format!("more than {MAX_ATTRIBUTES} attributes")));
    }
    let bytes: usize = attrs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_ATTRIBUTE_BYTES {
        return Err(bad(format!(
            "attributes exceed {MAX_ATTRIBUTE_BYTES} bytes"
        )));
    }
    if attrs.keys().any(|k| k.is_empty()) {
        return Err(bad("empty attribute key"));
    }
    Ok(())
}

/// Checks a display name.
pub fn name(name: &str) -> Result<(), SignalError> {
    if name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(bad("invalid display name"));
    }
    Ok(())
}

/// Whether a room grant (an exact room, a `prefix*` pattern, or `*`) allows
/// joining `room`.
pub fn room_granted(grant: &str, room: &str) -> bool {
    match grant.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => !grant.is_empty() && grant == room,
    }
}

/// Checks a peer signal and returns its target. The SDP and candidate are
/// relayed unmodified when they pass.
pub fn peer_signal(signal: &pb::PeerSignal) -> Result<ParticipantId, SignalError> {
    let to = ParticipantId::new(&signal.to).map_err(|e| bad(format!("to: {e}")))?;
    match &signal.kind {
        Some(Kind::Description(d)) => {
            if !matches!(
                pb::session_description::Type::try_from(d.r#type),
                Ok(pb::session_description::Type::Offer | pb::session_description::Type::Answer)
            ) {
                return Err(bad("description type must be TYPE_OFFER or TYPE_ANSWER"));
            }
            if d.sdp.is_empty() || d.sdp.len() > MAX_SDP_BYTES {
                return Err(bad(format!("sdp must be 1..={MAX_SDP_BYTES} bytes")));
            }
            if d.sdp.contains('\0') {
                return Err(bad("sdp contains a NUL byte"));
            }
        }
        Some(Kind::Candidate(c)) => {
            if c.candidate.len() > MAX_CANDIDATE_BYTES
                || c.candidate.contains('\0')
                || c.sdp_mid.as_ref().is_some_and(|m| m.len() > 64)
                || c.username_fragment.as_ref().is_some_and(|u| u.len() > 256)
            {
                return Err(bad("invalid ice candidate"));
            }
        }
        Some(Kind::EndOfCandidates(_)) => {}
        None => {
            return Err(bad(
                "signal needs a description, candidate or endOfCandidates",
            ));
        }
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(sdp: &str) -> pb::PeerSignal {
        pb::PeerSignal {
            to: "bob".into(),
            from: String::new(),
            kind: Some(Kind::Description(pb::SessionDescription {
                r#type: pb::session_description::Type::Offer as i32,
                sdp: sdp.into(),
            })),
            probe: None,
        }
    }

    #[test]
    fn signals_are_checked() {
        assert_eq!(
            peer_signal(&offer("v=0")).map(|p| p.to_string()),
            Ok("bob".into())
        );
        assert!(peer_signal(&offer("")).is_err());
        assert!(peer_signal(&offer("v=0\0")).is_err());
        assert!(peer_signal(&offer(&"a".repeat(MAX_SDP_BYTES + 1))).is_err());
        let mut no_target = offer("v=0");
        no_target.to.clear();
        assert!(peer_signal(&no_target).is_err());
    }

    #[test]
    fn room_grants() {
        assert!(room_granted("lobby", "lobby"));
        assert!(!room_granted("lobby", "lobby2"));
        assert!(room_granted("team-*", "team-red"));
        assert!(!room_granted("team-*", "other"));
        assert!(room_granted("*", "anything"));
        assert!(!room_granted("", "anything"));
    }

    #[test]
    fn attributes_are_bounded() {
        let many: HashMap<_, _> = (0..=MAX_ATTRIBUTES)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(attributes(&many).is_err());
        let big = HashMap::from([("k".to_string(), "v".repeat(MAX_ATTRIBUTE_BYTES))]);
        assert!(attributes(&big).is_err());
        assert!(attributes(&HashMap::from([("muted".into(), "true".into())])).is_ok());
    }
}
