//! SDP and candidate validation, and the publish check, on any PeerSignal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use switchboard_proto::{grants, pb, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(signal) = pb::PeerSignal::decode(data) else {
        return;
    };
    let _ = validate::peer_signal(&signal);
    let _ = grants::may_signal(false, &signal);
    let _ = grants::is_offer(&signal);
});
