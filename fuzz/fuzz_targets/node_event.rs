//! What a signal node reads from its Redis channel (`sb:node:<node>`),
//! written by other replicas' Lua: any bytes decode or fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use switchboard_proto::pb;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = pb::NodeEvent::decode(data)
        && let Some(pb::node_event::Event::Message(message)) = event.event
    {
        let _ = pb::ServerMessage::decode(message.message.as_slice());
    }
});
