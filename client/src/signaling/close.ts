/**
 * What to do when the WebSocket closes, from the close code and the reason
 * (which starts with the stable error code from the server's error table,
 * docs/protocol.md §8–9: `"<code>: <message>"`).
 */
import { ErrorCode } from "./gen/switchboard/v1/client_pb.ts";
import { errorCodeFromName } from "./errorCodes.ts";

export type CloseAction =
  /** Reconnect after a backoff delay, resuming the session if there is one. */
  | "reconnect"
  /** Reconnect and start a new session with Join (the old one is gone). */
  | "rejoin"
  /** Reconnect with a fresh token from the token provider (expired token). */
  | "refresh-token"
  /** Stop: reconnecting cannot help, or we were told not to. */
  | "stop";

export interface CloseInfo {
  code: number;
  reason: string;
}

/**
 * The word a close reason starts with, e.g. "not_found" ("" if none). Digits
 * count after the first character: "invalid_utf8" is a code.
 */
function reasonWord(reason: string): string {
  const m = /^[a-z_][a-z0-9_]*/.exec(reason);
  return m ? m[0] : "";
}

/**
 * The error code at the start of a close reason, e.g.
 * "session_replaced: joined elsewhere" → `ErrorCode.session_replaced`.
 * `error_code_unspecified` when the reason names no code this client knows:
 * an empty reason (browsers report 1006 without one), "left" after our
 * leave, or a code added by a newer server.
 */
export function closeErrorCode(reason: string): ErrorCode {
  return errorCodeFromName(reasonWord(reason)) ?? ErrorCode.error_code_unspecified;
}

/**
 * The action an error code decides whatever the close code, or null when
 * the close code decides (the same for every error code that shares it).
 * Every member of ErrorCode is listed: a code added to the proto does not
 * compile here until it is given an action.
 */
function actionForCode(code: ErrorCode): CloseAction | null {
  switch (code) {
    case ErrorCode.session_replaced:
      // The same identity joined elsewhere: that tab wins, we stay away.
      return "stop";
    case ErrorCode.token_expired:
      return "refresh-token";
    case ErrorCode.already_joined:
    case ErrorCode.not_joined:
      return "rejoin";
    case ErrorCode.origin_not_allowed:
    case ErrorCode.permission_denied:
    case ErrorCode.room_full: // the room holds its maximum; retrying will not help
    case ErrorCode.too_many_sessions: // 4429: this identity is in its maximum of rooms; one must end first
    case ErrorCode.participant_removed: // 4410: the application's backend removed us
    case ErrorCode.invalid_utf8: // 1007, and 1002: our own frames are broken
    case ErrorCode.protocol_error:
      return "stop";
    // Decided by the close code (see classifyClose):
    case ErrorCode.bad_request: // 4400
    case ErrorCode.unknown_message: // 4400
    case ErrorCode.unauthenticated: // 4401
    case ErrorCode.token_revoked: // 4401
    case ErrorCode.not_found: // 4404
    case ErrorCode.message_too_large: // 1009
    case ErrorCode.rate_limited: // 1008
    case ErrorCode.slow_consumer: // 1008
    case ErrorCode.keepalive_timeout: // 4408
    case ErrorCode.unavailable: // 1013
    case ErrorCode.shutting_down: // 1012
    case ErrorCode.internal: // 1011
    case ErrorCode.error_code_unspecified: // no reason, or an unknown code
      return null;
    default:
      return unclassified(code);
  }
}

/** Compile-time check that actionForCode lists every ErrorCode. */
function unclassified(_code: never): null {
  return null;
}

/**
 * Classifies a close. `resuming` is true while a Resume request is
 * outstanding on this connection: errors that mean "no such session" then
 * send us back to a fresh Join instead of giving up.
 */
export function classifyClose({ code, reason }: CloseInfo, resuming: boolean): CloseAction {
  const byCode = actionForCode(closeErrorCode(reason));
  if (byCode !== null) return byCode;
  // No error code decides: the close code does. These also cover closes
  // without a reason, which browsers deliver (1006 on network loss).
  switch (code) {
    case 1000: // normal: we left, or the server ended the session on purpose
      return "stop";
    case 4400: // bad_request / unknown_message
    case 4401: // unauthenticated / token_revoked
    case 4404: // not_found
      // A resume attempt the server cannot honour (expired session, spent
      // token, or a server without resume): fall back to a fresh Join.
      return resuming ? "rejoin" : "stop";
    case 4403:
    case 4429: // room_full / too_many_sessions: no place until someone leaves
      return "stop";
    case 4409:
      // Without a reason it may be session_replaced: stay away. A code we
      // do not know on 4409 is a conflict with a session that is gone.
      return reasonWord(reason) === "" ? "stop" : "rejoin";
    default:
      // 1001 going away, 1006 abnormal (network), 1008 rate_limited /
      // slow_consumer, 1009 message_too_large, 1011 internal, 1012
      // shutting_down, 1013 unavailable, 4408 keepalive_timeout, ...
      return "reconnect";
  }
}
