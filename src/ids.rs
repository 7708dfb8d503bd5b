//! Typed identifiers. Each wraps the wire representation and is created only
//! through a constructor that checks it, so a `RoomId` can never be passed
//! where a `ParticipantId` is expected.

use std::{fmt, sync::Arc};

use rand::RngCore;

use crate::limits::MAX_ID_BYTES;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {MAX_ID_BYTES} bytes")]
    TooLong { kind: &'static str },
    #[error("{kind} contains a control character")]
    Control { kind: &'static str },
    /// `*` is the wildcard of room grants (`team-*`): a room named with it
    /// would turn a backend's concrete grant into a pattern.
    #[error("{kind} contains '*'")]
    Wildcard { kind: &'static str },
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, wildcard: $wildcard:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Checks `raw` (non-empty, at most [`MAX_ID_BYTES`], no control
            /// characters) and wraps it.
            pub fn new(raw: &str) -> Result<Self, IdError> {
                check_id(raw, $kind)?;
                if !$wildcard && raw.contains('*') {
                    return Err(IdError::Wildcard { kind: $kind });
                }
                Ok(Self(Arc::from(raw)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

string_id!(
    /// A room name, taken from the token's room claim. Never contains `*`.
    RoomId,
    "room",
    wildcard: false
);
string_id!(
    /// A participant: the token's `sub`. Unique within a room.
    ParticipantId,
    "participant id",
    wildcard: true
);

fn check_id(raw: &str, kind: &'static str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if raw.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong { kind });
    }
    if raw.chars().any(char::is_control) {
        return Err(IdError::Control { kind });
    }
    Ok(())
}

/// One connection's life in a room: 128 random bits, rendered as 32 hex
/// digits. Unguessable, so it can name a session in a resume request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

impl SessionId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses the 32-hex-digit form.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(raw, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// An edge-local connection number, unique on one edge–signal stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(RoomId::new("lobby").is_ok());
        assert_eq!(RoomId::new(""), Err(IdError::Empty { kind: "room" }));
        assert_eq!(
            RoomId::new("team-*"),
            Err(IdError::Wildcard { kind: "room" }),
            "a room name is never a grant pattern"
        );
        assert!(RoomId::new("}x{").is_ok());
        assert!(matches!(
            ParticipantId::new(&"x".repeat(MAX_ID_BYTES + 1)),
            Err(IdError::TooLong { .. })
        ));
        assert!(matches!(
            ParticipantId::new("a\u{0}b"),
            Err(IdError::Control { .. })
        ));
    }

    #[test]
    fn session_ids_round_trip_and_differ() {
        let a = SessionId::random();
        let b = SessionId::random();
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 32);
        assert_eq!(SessionId::parse(&a.to_string()), Some(a));
        assert_eq!(SessionId::parse("not-hex"), None);
    }
}
