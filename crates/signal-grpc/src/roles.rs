//! Perfect-negotiation roles. Of each pair of participants exactly one is
//! polite (it rolls back its own offer on glare); both sides compute the
//! same answer without talking to each other.

use switchboard_proto::ParticipantId;

/// Whether `me` should be polite towards `peer`: the participant with the
/// lexicographically smaller id is.
pub fn is_polite(me: &ParticipantId, peer: &ParticipantId) -> bool {
    me < peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_each_pair_is_polite() {
        let ids: Vec<_> = ["alice", "bob", "carol", "Zed"]
            .iter()
            .map(|s| ParticipantId::new(s).expect("id"))
            .collect();
        for a in &ids {
            for b in &ids {
                if a != b {
                    assert_ne!(is_polite(a, b), is_polite(b, a), "{a} vs {b}");
                }
            }
        }
    }
}
