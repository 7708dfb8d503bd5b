//! A browser frame, JSON or protobuf (the first byte picks), decoded as the
//! edge does; a decoded message is re-encoded and decoded again, and must
//! come back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::wire::{self, EncodedFrame, Format};

fuzz_target!(|data: &[u8]| {
    let Some((&first, frame)) = data.split_first() else {
        return;
    };
    let format = if first & 1 == 0 { Format::Json } else { Format::Binary };
    if let Ok(message) = wire::decode_client(format, frame) {
        let again = match wire::encode_client(format, &message) {
            EncodedFrame::Text(text) => wire::decode_client(format, text.as_bytes()),
            EncodedFrame::Binary(bytes) => wire::decode_client(format, &bytes),
        };
        assert_eq!(again.ok(), Some(message), "a decoded frame re-encodes to itself");
    }
});
