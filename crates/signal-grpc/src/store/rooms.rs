//! What a store knows of a room besides its members: the settings a
//! backend gave it (RoomService.CreateRoom, UpdateRoomMetadata).

use std::time::Duration;

use switchboard_proto::{RoomId, pb};

/// A room's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomSettings {
    /// The most it admits; 0 = the service's default.
    pub max_participants: u32,
    /// How long it lives empty (created rooms only).
    pub empty_timeout: Duration,
    pub metadata: String,
    /// Made by CreateRoom (else: only metadata on an occupied room, gone
    /// with its last member).
    pub created: bool,
    pub created_at_ms: u64,
}

impl RoomSettings {
    /// The most the room admits, given the service's default (also the
    /// ceiling).
    pub fn max_participants(&self, default: usize) -> usize {
        match self.max_participants as usize {
            0 => default,
            own => own.min(default),
        }
    }

    /// As stored in Redis: a hash's field/value pairs.
    pub(super) fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("max", self.max_participants.to_string()),
            ("empty_timeout", self.empty_timeout.as_secs().to_string()),
            ("metadata", self.metadata.clone()),
            ("created", u8::from(self.created).to_string()),
            ("created_at_ms", self.created_at_ms.to_string()),
        ]
    }

    /// From a Redis hash's values (HGETALL); `None` if it is empty.
    pub(super) fn from_fields(fields: &std::collections::HashMap<String, String>) -> Option<Self> {
        if fields.is_empty() {
            return None;
        }
        let number = |k: &str| {
            fields
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Some(Self {
            max_participants: number("max") as u32,
            empty_timeout: Duration::from_secs(number("empty_timeout")),
            metadata: fields.get("metadata").cloned().unwrap_or_default(),
            created: number("created") == 1,
            created_at_ms: number("created_at_ms"),
        })
    }
}

/// A room as a store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub name: RoomId,
    pub members: u32,
    pub settings: Option<RoomSettings>,
}

impl RoomInfo {
    /// Occupied, or created (and not yet timed out).
    pub fn exists(&self) -> bool {
        self.members > 0 || self.settings.as_ref().is_some_and(|s| s.created)
    }

    /// The most it admits: its own maximum, else (and at most) `default`.
    pub fn max_participants(&self, default: usize) -> usize {
        self.settings
            .as_ref()
            .map_or(default, |s| s.max_participants(default))
    }

    pub fn metadata(&self) -> &str {
        self.settings.as_ref().map_or("", |s| s.metadata.as_str())
    }

    /// The RoomService view, given the service's default maximum.
    pub fn to_proto(&self, default_max: usize) -> pb::Room {
        let settings = self.settings.clone().unwrap_or_default();
        pb::Room {
            name: self.name.to_string(),
            num_participants: self.members,
            max_participants: self.max_participants(default_max) as u32,
            metadata: settings.metadata.clone(),
            created: settings.created,
            empty_timeout_seconds: if settings.created {
                settings.empty_timeout.as_secs() as u32
            } else {
                0
            },
            created_at_ms: settings.created_at_ms,
        }
    }
}

/// What CreateRoom did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created(RoomInfo),
    /// Created already (and not yet deleted).
    Exists,
    /// The limit of created rooms is reached.
    TooMany,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_s_own_maximum_is_capped_by_the_service_s() {
        let own = |max| RoomSettings {
            max_participants: max,
            ..Default::default()
        };
        assert_eq!(own(0).max_participants(50), 50);
        assert_eq!(own(3).max_participants(50), 3);
        assert_eq!(own(80).max_participants(50), 50);
    }

    #[test]
    fn settings_survive_the_redis_encoding() {
        let settings = RoomSettings {
            max_participants: 4,
            empty_timeout: Duration::from_secs(30),
            metadata: "{\"topic\":\"standup\"}".into(),
            created: true,
            created_at_ms: 1_700_000_000_000,
        };
        let fields = settings
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(RoomSettings::from_fields(&fields), Some(settings));
        assert_eq!(RoomSettings::from_fields(&Default::default()), None);
    }
}
