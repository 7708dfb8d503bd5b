//! The Redis key schema: every key and channel the signal service writes,
//! its hash tag and its lifetime, in one place (docs/architecture.md
//! repeats this table).
//!
//! | key | type | slot | lifetime |
//! |---|---|---|---|
//! | `sb:{<room tag>}:members` | hash participant → session id | the room's | `record_ttl`, refreshed on every join; gone with the last member |
//! | `sb:{<room tag>}:records` | hash session id → record JSON (id, room, participant, name, attributes JSON, joined_at_ms, publish) | the room's | `record_ttl`, refreshed on every join; a record is deleted on leave or replacement |
//! | `sb:{<room tag>}:room` | hash: a room's own settings (`max`, `empty_timeout`, `metadata`, `created`, `created_at_ms`) | the room's | a created room: its empty timeout once empty (or from creation), else `record_ttl` + its empty timeout, refreshed on every join; metadata only: deleted with the last member |
//! | `sb:rooms` | sorted set of room names, all scored 0 (listed by name with `ZRANGEBYLEX`) | its own | a room is added when its first member joins or it is created, removed when it is neither occupied nor created (at its last leave, or found so by a listing) |
//! | `sb:webhook:{<endpoint digest>}:lease`, `…:cursor` | strings: the node delivering to a webhook endpoint, and the last event it acknowledged (see `webhooks::progress`) | the endpoint's | lease 10 s, renewed; cursor owned |
//! | `sb:session:<sid>:room` | string: the room of a session | its own | `record_ttl`; deleted on leave or replacement |
//! | `sb:{<sid>}:out` | hash: `next_seq`, the resume token's SHA-1 (`token`; the token itself is never stored), `log_bytes`, `started`, attached `node` (empty = detached), attachment `gen`, `c:<sender sid>` = highest client seq accepted from that sender | the session's | `record_ttl`, refreshed on every delivery; deleted when the session ends |
//! | `sb:{<sid>}:held` | list of encoded messages that arrived before the session's Joined | the session's | `record_ttl`; deleted when the session starts or ends |
//! | `sb:{<sid>}:log` | stream, entry id `<seq>-0`, field `m` = the encoded ServerMessage | the session's | as `out` |
//! | `sb:{nodes}` | set of registered signal nodes | the nodes' | owned by the nodes: a node adds itself, the replica that reaps it removes it |
//! | `sb:{nodes}:alive:<node>` | string, the node's heartbeat | the nodes' | [`NODE_TTL`](crate::router::NODE_TTL), refreshed every second |
//! | `sb:{nodes}:sessions:<node>` | set of sessions the node holds | the nodes' | `record_ttl`, refreshed as the node attaches sessions; deleted by the reaper |
//! | `sb:events` | stream of encoded `RoomEvent`s (`WatchRoomEvents`, see `events`) | its own | `MAXLEN ~ 100000` |
//! | `sb:canary:<random>` | string, a random value the readiness probe writes and reads back | its own | 10 s |
//! | `sb:idem:{<room tag>}:<key digest>:<session>` | string: a RoomService idempotency key used for one recipient session | the room's | 10 min |
//! | `sb:ident:{<identity tag>}` | sorted set of an identity's session ids by join time (ms) | the identity's | `record_ttl`, refreshed on every claim; a session is removed when it ends or is replaced |
//! | `sb:detached` | sorted set `<sid>:<gen>:<reason>` by end time (Unix ms) | its own | owned: each entry removed by the replica that ends the session |
//!
//! Channels: `sb:node:<node>`, one per node, carrying protobuf
//! `switchboard.v1.NodeEvent`s: what is delivered to the
//! sessions attached to it (see `router::redis_node` for the format).
//!
//! The room tag is a digest of the room name (the first 16 bytes of its
//! SHA-1, hex): any name, braces included, slots correctly, and a room's
//! keys share one Redis Cluster slot, so the scripts that update a room
//! (which declare every key they touch) are atomic there too; `{<sid>}` does
//! the same for a session's outbound state, and `{nodes}` for node
//! membership (the heartbeat and the reaper's claim are one script each).

/// Prefix of every Switchboard key.
pub const PREFIX: &str = "sb:";

use sha1::{Digest, Sha1};

/// The hash tag of a room's keys.
fn room_tag(room: &str) -> String {
    hex::encode(&Sha1::digest(room.as_bytes())[..16])
}

/// An identity's sessions (`--max-sessions-per-identity`).
pub fn identity(identity: &str) -> String {
    format!("sb:ident:{{{}}}", room_tag(identity))
}

/// A room's members: participant → session id.
pub fn members(room: &str) -> String {
    format!("sb:{{{}}}:members", room_tag(room))
}

/// A room's session records: session id → record.
pub fn records(room: &str) -> String {
    format!("sb:{{{}}}:records", room_tag(room))
}

/// A room's own settings (CreateRoom, UpdateRoomMetadata).
pub fn room(room: &str) -> String {
    format!("sb:{{{}}}:room", room_tag(room))
}

/// Every room that exists, by name.
pub const ROOMS: &str = "sb:rooms";

/// An idempotency mark: one RoomService call's key, for one recipient
/// session (the key is hashed: any bytes, bounded length).
pub fn idempotency(room: &str, key: &str, session: &str) -> String {
    let digest = hex::encode(&Sha1::digest(key.as_bytes())[..16]);
    format!("sb:idem:{{{}}}:{digest}:{session}", room_tag(room))
}

/// The readiness canary of one signal node.
pub fn canary(node: &str) -> String {
    format!("sb:canary:{node}")
}

pub fn locator(session: &str) -> String {
    format!("sb:session:{session}:room")
}

/// A session's outbound state (seq counter, resume token digest,
/// attachment, log size, exactly-once marks).
pub fn outbox(session: &str) -> String {
    format!("sb:{{{session}}}:out")
}

/// A session's message log.
pub fn log(session: &str) -> String {
    format!("sb:{{{session}}}:log")
}

/// Messages held for a session that has not started (its Joined is not
/// logged yet).
pub fn held(session: &str) -> String {
    format!("sb:{{{session}}}:held")
}

/// The set of registered signal nodes.
pub const NODES: &str = "sb:{nodes}";

/// A node's heartbeat.
pub fn alive(node: &str) -> String {
    format!("sb:{{nodes}}:alive:{node}")
}

/// The sessions a node has held.
pub fn node_sessions(node: &str) -> String {
    format!("sb:{{nodes}}:sessions:{node}")
}

/// Detached sessions by the time they end unless resumed.
pub const EXPIRIES: &str = "sb:detached";

/// A node's pub/sub channel.
pub fn channel(node: &str) -> String {
    format!("sb:node:{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_scripts_share_share_a_hash_tag() {
        let tag = |key: &str| key.split(['{', '}']).nth(1).map(str::to_owned);
        for room in ["lobby", "}x", "a{b}c", "{"] {
            let (m, r) = (members(room), records(room));
            assert_eq!(tag(&m), tag(&r), "{room}: one slot");
            assert_eq!(tag(&m), tag(&super::room(room)), "{room}: one slot");
            let t = tag(&m).expect("tag");
            assert!(
                t.len() == 32 && t.chars().all(|c| c.is_ascii_hexdigit()),
                "{m}"
            );
        }
        assert_ne!(members("a"), members("b"));
        assert!(locator("abc").starts_with(PREFIX));
        assert_eq!(outbox("s1"), "sb:{s1}:out");
        assert_eq!(log("s1"), "sb:{s1}:log");
        assert_eq!(held("s1"), "sb:{s1}:held");
        for key in [NODES.to_owned(), alive("n"), node_sessions("n")] {
            assert!(key.starts_with("sb:{nodes}"), "{key}");
        }
    }
}
