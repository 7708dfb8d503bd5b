//! The one error table. Every failure a client or another service can see
//! has an [`ErrorCode`]; this file alone decides its stable string, its gRPC
//! code, its HTTP status, its WebSocket close code and whether retrying may
//! help. Browsers see the code and a short message, never internals; logs
//! get the detail.

use std::fmt;

use crate::pb;

/// The stable error codes: defined once, in the proto (`ErrorCode` in
/// `client.proto`, whose value names are the protocol's strings); this file
/// gives each its gRPC code, HTTP status, close code and retryability.
/// `Unspecified` is never sent: it stands for "no code" on the wire and is
/// treated as `Internal` if it ever meets the table.
pub use crate::pb::ErrorCode;

/// One row of the table.
struct Row {
    code: ErrorCode,
    grpc: tonic::Code,
    http: u16,
    close: u16,
    retryable: bool,
}

/// The table. Close codes: 1008/1009/1011/1012/1013 are RFC 6455 codes;
/// 44xx are private codes mirroring the HTTP status.
#[rustfmt::skip]
const TABLE: &[Row] = &[
    //  code                         gRPC                                 HTTP  close retryable
    row(ErrorCode::BadRequest,       tonic::Code::InvalidArgument,       400, 4400, false),
    row(ErrorCode::UnknownMessage,   tonic::Code::InvalidArgument,       400, 4400, false),
    row(ErrorCode::MessageTooLarge,  tonic::Code::InvalidArgument,       413, 1009, false),
    row(ErrorCode::InvalidUtf8,      tonic::Code::InvalidArgument,       400, 1007, false),
    row(ErrorCode::ProtocolError,    tonic::Code::InvalidArgument,       400, 1002, false),
    row(ErrorCode::Unauthenticated,  tonic::Code::Unauthenticated,       401, 4401, false),
    row(ErrorCode::TokenExpired,     tonic::Code::Unauthenticated,       401, 4401, true),
    row(ErrorCode::TokenRevoked,     tonic::Code::Unauthenticated,       401, 4401, false),
    row(ErrorCode::PermissionDenied, tonic::Code::PermissionDenied,      403, 4403, false),
    row(ErrorCode::NotFound,         tonic::Code::NotFound,              404, 4404, false),
    row(ErrorCode::NotJoined,        tonic::Code::FailedPrecondition,    409, 4409, false),
    row(ErrorCode::AlreadyJoined,    tonic::Code::FailedPrecondition,    409, 4409, false),
    row(ErrorCode::RoomFull,         tonic::Code::ResourceExhausted,     403, 4429, false),
    row(ErrorCode::RateLimited,      tonic::Code::ResourceExhausted,     429, 1008, true),
    row(ErrorCode::SlowConsumer,     tonic::Code::ResourceExhausted,     429, 1008, true),
    row(ErrorCode::KeepaliveTimeout, tonic::Code::DeadlineExceeded,      408, 4408, true),
    row(ErrorCode::SessionReplaced,  tonic::Code::Aborted,               409, 4409, false),
    row(ErrorCode::OriginNotAllowed, tonic::Code::PermissionDenied,      403, 4403, false),
    row(ErrorCode::Unavailable,      tonic::Code::Unavailable,           503, 1013, true),
    row(ErrorCode::ShuttingDown,     tonic::Code::Unavailable,           503, 1012, true),
    row(ErrorCode::ParticipantRemoved, tonic::Code::FailedPrecondition, 410, 4410, false),
    row(ErrorCode::TooManySessions,  tonic::Code::ResourceExhausted,     429, 4429, false),
    row(ErrorCode::Internal,         tonic::Code::Internal,              500, 1011, true),
];

const fn row(code: ErrorCode, grpc: tonic::Code, http: u16, close: u16, retryable: bool) -> Row {
    Row {
        code,
        grpc,
        http,
        close,
        retryable,
    }
}

impl ErrorCode {
    /// Every code a client can see, in table order.
    pub fn all() -> impl Iterator<Item = ErrorCode> {
        TABLE.iter().map(|r| r.code)
    }

    fn row(self) -> &'static Row {
        // The table has one row per variant but Unspecified (checked by a
        // test), which is Internal's (the last row).
        TABLE
            .iter()
            .find(|r| r.code == self)
            .unwrap_or(&TABLE[TABLE.len() - 1])
    }

    /// The stable string clients see, e.g. `"not_found"`: the proto name.
    pub fn as_str(self) -> &'static str {
        self.as_str_name()
    }

    /// The code in a proto field (`Error.code`, `CloseConnection.code`);
    /// `None` for unspecified (a normal closure) or a value this build does
    /// not know.
    pub fn of(value: i32) -> Option<ErrorCode> {
        ErrorCode::try_from(value)
            .ok()
            .filter(|c| *c != ErrorCode::Unspecified)
    }

    pub fn grpc_code(self) -> tonic::Code {
        self.row().grpc
    }

    pub fn http_status(self) -> u16 {
        self.row().http
    }

    /// The WebSocket close code used when this error ends a connection.
    pub fn close_code(self) -> u16 {
        self.row().close
    }

    /// Whether the same request may succeed later.
    pub fn retryable(self) -> bool {
        self.row().retryable
    }

    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::from_str_name(name).filter(|c| *c != ErrorCode::Unspecified)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// gRPC metadata key carrying the stable code next to the gRPC status.
pub const ERROR_CODE_METADATA: &str = "x-switchboard-error";

/// An error with its code and a client-safe message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SignalError {
    pub code: ErrorCode,
    pub message: String,
}

impl SignalError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The protocol form, answering request `request_id` (0 for none).
    pub fn to_proto(&self, request_id: u32) -> pb::Error {
        pb::Error {
            request_id,
            code: self.code as i32,
            message: self.message.clone(),
            retryable: self.code.retryable(),
        }
    }

    /// The gRPC form: the status code from the table plus the stable code in
    /// metadata.
    pub fn to_status(&self) -> tonic::Status {
        let mut status = tonic::Status::new(self.code.grpc_code(), self.message.clone());
        if let Ok(value) = self.code.as_str().parse() {
            status.metadata_mut().insert(ERROR_CODE_METADATA, value);
        }
        status
    }

    /// Reads a status produced by [`SignalError::to_status`]; any other
    /// status is mapped by its gRPC code.
    pub fn from_status(status: &tonic::Status) -> Self {
        let code = status
            .metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorCode::parse)
            .unwrap_or(match status.code() {
                tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
                tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
                tonic::Code::NotFound => ErrorCode::NotFound,
                tonic::Code::InvalidArgument => ErrorCode::BadRequest,
                tonic::Code::ResourceExhausted => ErrorCode::RateLimited,
                // Cancelled: the call's own deadline passed (tonic's client
                // ends it so): as retryable as no answer at all.
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            });
        Self::new(code, status.message())
    }
}

impl From<SignalError> for tonic::Status {
    fn from(err: SignalError) -> Self {
        err.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_row_and_a_unique_name() {
        let all: Vec<_> = ErrorCode::all().collect();
        // Every proto value but unspecified has its row.
        let proto = (1..)
            .take_while(|v| ErrorCode::try_from(*v).is_ok())
            .count();
        assert_eq!(
            all.len(),
            proto,
            "a code of the proto is missing from TABLE"
        );
        assert!(!all.contains(&ErrorCode::Unspecified));
        for code in &all {
            assert_eq!(TABLE.iter().filter(|r| r.code == *code).count(), 1);
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
        let mut names: Vec<_> = all.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn close_codes_are_valid_application_or_rfc_codes() {
        for code in ErrorCode::all() {
            let c = code.close_code();
            assert!(
                [1002, 1007].contains(&c)
                    || (1008..=1013).contains(&c)
                    || (4000..5000).contains(&c),
                "{code}: {c}"
            );
        }
        assert_eq!(ErrorCode::MessageTooLarge.close_code(), 1009);
        assert_eq!(ErrorCode::RateLimited.close_code(), 1008);
        assert_eq!(ErrorCode::InvalidUtf8.close_code(), 1007);
        assert_eq!(ErrorCode::ProtocolError.close_code(), 1002);
    }

    #[test]
    fn status_round_trip_keeps_the_code() {
        let err = SignalError::new(ErrorCode::TokenExpired, "token expired");
        let status = err.to_status();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(SignalError::from_status(&status), err);
        let foreign = tonic::Status::unavailable("down");
        assert_eq!(
            SignalError::from_status(&foreign).code,
            ErrorCode::Unavailable
        );
    }
}
