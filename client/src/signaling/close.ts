/**
 * What to do when the WebSocket closes, from the close code and the reason
 * (which starts with the stable error code from the server's error table).
 */
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

/** The stable error code at the start of a close reason, e.g. "not_found". */
export function closeErrorCode(reason: string): string {
  const m = /^[a-z_]+/.exec(reason);
  return m ? m[0] : "";
}

/**
 * Classifies a close. `resuming` is true while a Resume request is
 * outstanding on this connection: errors that mean "no such session" then
 * send us back to a fresh Join instead of giving up.
 */
export function classifyClose({ code, reason }: CloseInfo, resuming: boolean): CloseAction {
  const name = closeErrorCode(reason);
  switch (name) {
    case "session_replaced":
      // The same identity joined elsewhere: that tab wins, we stay away.
      return "stop";
    case "token_expired":
      return "refresh-token";
    case "already_joined":
    case "not_joined":
      return "rejoin";
    case "origin_not_allowed":
    case "permission_denied":
    case "room_full": // the room holds its maximum; retrying will not help
    case "invalid_utf8": // 1007, and 1002 below: our own frames are broken
    case "protocol_error":
      return "stop";
    default:
      break;
  }
  switch (code) {
    case 1000: // normal: we left, or the server ended the session on purpose
      return "stop";
    case 4400: // bad_request / unknown_message
    case 4401: // unauthenticated
    case 4404: // not_found
      // A resume attempt the server cannot honour (expired session, spent
      // token, or a server without resume): fall back to a fresh Join.
      return resuming ? "rejoin" : "stop";
    case 4403:
      return "stop";
    case 4409:
      return name === "" ? "stop" : "rejoin";
    default:
      // 1001 going away, 1006 abnormal (network), 1008 rate_limited /
      // slow_consumer, 1009 message_too_large, 1011 internal, 1012
      // shutting_down, 1013 unavailable, 4408 keepalive_timeout, ...
      return "reconnect";
  }
}
