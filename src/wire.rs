//! The browser frame codec: a WebSocket text frame is the proto3 canonical
//! JSON of a message, a binary frame its protobuf encoding. A frame is
//! parsed once, here, into a typed message or a typed error.

use prost::Message as _;

use crate::{ErrorCode, SignalError, limits::MAX_MESSAGE_BYTES, pb};

/// How a client encodes its frames; the server answers in the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text frames, canonical JSON.
    Json,
    /// Binary frames, protobuf.
    Binary,
}

/// A frame that could not become a [`pb::ClientMessage`]. `request_id` is
/// the frame's id when it could be read, else 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub request_id: u32,
    pub error: SignalError,
}

/// Parses one client frame. The size is checked before any parsing.
pub fn decode_client(format: Format, data: &[u8]) -> Result<pb::ClientMessage, FrameError> {
    if data.len() > MAX_MESSAGE_BYTES {
        return Err(FrameError {
            request_id: 0,
            error: SignalError::new(
                ErrorCode::MessageTooLarge,
                format!("frame of {} bytes exceeds {MAX_MESSAGE_BYTES}", data.len()),
            ),
        });
    }
    let msg = match format {
        Format::Json => {
            sonic_rs::from_slice::<pb::ClientMessage>(data).map_err(|e| FrameError {
                request_id: 0,
                error: SignalError::new(ErrorCode::BadRequest, format!("malformed JSON: {e}")),
            })?
        }
        Format::Binary => pb::ClientMessage::decode(data).map_err(|e| FrameError {
            request_id: 0,
            error: SignalError::new(ErrorCode::BadRequest, format!("malformed protobuf: {e}")),
        })?,
    };
    if msg.message.is_none() {
        return Err(FrameError {
            request_id: msg.id,
            error: SignalError::new(ErrorCode::UnknownMessage, "unknown or missing message type"),
        });
    }
    Ok(msg)
}

/// An encoded server frame, ready for the WebSocket writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodedFrame {
    Text(String),
    Binary(Vec<u8>),
}

pub fn encode_server(format: Format, msg: &pb::ServerMessage) -> EncodedFrame {
    match format {
        // Serializing generated pbjson types into a String cannot fail: no
        // maps with non-string keys, no floats.
        Format::Json => EncodedFrame::Text(sonic_rs::to_string(msg).unwrap_or_default()),
        Format::Binary => EncodedFrame::Binary(msg.encode_to_vec()),
    }
}

/// Encodes a client message (used by test clients and tools).
pub fn encode_client(format: Format, msg: &pb::ClientMessage) -> EncodedFrame {
    match format {
        Format::Json => EncodedFrame::Text(serde_json::to_string(msg).unwrap_or_default()),
        Format::Binary => EncodedFrame::Binary(msg.encode_to_vec()),
    }
}

/// Parses a server frame (used by test clients and tools).
pub fn decode_server(format: Format, data: &[u8]) -> Result<pb::ServerMessage, String> {
    match format {
        Format::Json => serde_json::from_slice(data).map_err(|e| e.to_string()),
        Format::Binary => pb::ServerMessage::decode(data).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Error codes and leave reasons are proto enums whose value names are
    /// the protocol's strings: JSON carries exactly those strings.
    #[test]
    fn codes_and_leave_reasons_travel_as_their_stable_strings() {
        let json = |message| match encode_server(
            Format::Json,
            &pb::ServerMessage {
                seq: 0,
                message: Some(message),
            },
        ) {
            EncodedFrame::Text(text) => text,
            EncodedFrame::Binary(_) => panic!("json"),
        };
        let error = json(pb::server_message::Message::Error(
            SignalError::new(ErrorCode::NotFound, "gone").to_proto(3),
        ));
        assert!(error.contains(r#""code":"not_found""#), "{error}");
        let left = json(pb::server_message::Message::ParticipantLeft(
            pb::ParticipantLeft {
                participant_id: "bob".into(),
                reason: crate::LeaveReason::Disconnected as i32,
            },
        ));
        assert!(left.contains(r#""reason":"disconnected""#), "{left}");
    }

    #[test]
    fn json_uses_the_canonical_mapping() {
        let msg = decode_client(
            Format::Json,
            br#"{"id":7,"signal":{"to":"bob","from":"mallory","description":{"type":"TYPE_OFFER","sdp":"v=0"}}}"#,
        )
        .expect("valid");
        assert_eq!(msg.id, 7);
        let Some(pb::client_message::Message::Signal(signal)) = msg.message else {
            panic!("not a signal: {msg:?}");
        };
        assert_eq!(signal.to, "bob");
        let reply = pb::ServerMessage {
            seq: 3,
            message: Some(pb::server_message::Message::Pong(pb::Pong { nonce: 9 })),
        };
        let EncodedFrame::Text(text) = encode_server(Format::Json, &reply) else {
            panic!("json encodes to text");
        };
        assert_eq!(text, r#"{"seq":"3","pong":{"nonce":"9"}}"#);
    }

    #[test]
    fn malformed_and_unknown_frames_are_typed() {
        let err = decode_client(Format::Json, b"{not json").expect_err("malformed");
        assert_eq!(err.error.code, ErrorCode::BadRequest);
        let err = decode_client(Format::Json, br#"{"id":4,"teleport":{}}"#).expect_err("unknown");
        assert_eq!(
            (err.request_id, err.error.code),
            (4, ErrorCode::UnknownMessage)
        );
        let err = decode_client(Format::Binary, &[0xff, 0xff, 0xff]).expect_err("truncated");
        assert_eq!(err.error.code, ErrorCode::BadRequest);
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        let err = decode_client(Format::Json, &big).expect_err("too large");
        assert_eq!(err.error.code, ErrorCode::MessageTooLarge);
    }

    #[test]
    fn binary_round_trips() {
        let msg = pb::ClientMessage {
            id: 1,
            seq: 0,
            ack: 0,
            message: Some(pb::client_message::Message::Ping(pb::Ping { nonce: 5 })),
        };
        let EncodedFrame::Binary(bytes) = encode_client(Format::Binary, &msg) else {
            panic!("binary encodes to bytes");
        };
        assert_eq!(decode_client(Format::Binary, &bytes), Ok(msg));
    }
}
