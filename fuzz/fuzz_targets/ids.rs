//! Typed ids from untrusted strings: rooms, participants, session ids (the
//! first half of a resume), and a W3C traceparent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::{ParticipantId, RoomId, SessionId, trace};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(room) = RoomId::new(text) {
        assert_eq!(room.as_str(), text);
    }
    let _ = ParticipantId::new(text);
    if let Some(id) = SessionId::parse(text) {
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
    }
    trace::configure(1.0);
    let _ = trace::continue_from("fuzz", "server", text);
});
