//! The Redis key schema: every key Switchboard writes, its hash tag and its
//! lifetime, in one place (docs/architecture.md repeats this table).
//!
//! | key | type | slot | lifetime |
//! |---|---|---|---|
//! | `sb:{<room>}:members` | hash participant → session id | the room's | `record_ttl`, refreshed on every join; deleted with the last member |
//! | `sb:{<room>}:session:<sid>` | hash: participant, name, attributes (JSON), joined_at_ms | the room's | `record_ttl`; deleted on leave or replacement |
//! | `sb:session:<sid>:room` | string: the room of a session | its own | `record_ttl`; deleted on leave or replacement |
//!
//! The `{<room>}` hash tag keeps a room's keys in one Redis Cluster slot,
//! so the scripts that update a room are atomic there too.

/// Prefix of every Switchboard key.
pub const PREFIX: &str = "sb:";

pub fn members(room: &str) -> String {
    format!("sb:{{{room}}}:members")
}

/// The room's session keys are this prefix followed by the session id.
pub fn session_prefix(room: &str) -> String {
    format!("sb:{{{room}}}:session:")
}

pub fn session(room: &str, session: &str) -> String {
    format!("{}{session}", session_prefix(room))
}

pub fn locator(session: &str) -> String {
    format!("sb:session:{session}:room")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_keys_share_a_hash_tag() {
        assert_eq!(members("lobby"), "sb:{lobby}:members");
        assert_eq!(session("lobby", "abc"), "sb:{lobby}:session:abc");
        assert!(locator("abc").starts_with(PREFIX));
    }
}
