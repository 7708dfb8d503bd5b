/**
 * @switchboard/signaling: the browser side of the Switchboard signaling
 * protocol (docs/protocol.md). One `SignalingClient` per participant joins a
 * room with a token, relays peer signals (SDP and ICE candidates) exactly
 * once, and survives reconnects (resume, or a fresh join with a fresh
 * token). The protocol's messages themselves are in
 * `@switchboard/signaling/proto`.
 */
export {
  SignalingClient,
  type Clock,
  type ConnectionState,
  type SignalingEvents,
  type SignalingOptions,
  type SignalingStats,
  type SignalKind,
  type SignalKindInit,
  type SignalRefused,
  type SocketLike,
  type StoredSession,
  type Undelivered,
} from "./client.ts";
export { Emitter, type Listener } from "./emitter.ts";
export type { BackoffOptions } from "./backoff.ts";
export { classifyClose, closeErrorCode, type CloseAction, type CloseInfo } from "./close.ts";
export { errorCodeFromName, errorCodeName } from "./errorCodes.ts";
export {
  FrameTooLargeError,
  MAX_FRAME_BYTES,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  type ClientMessageInit,
} from "./codec.ts";
export { participantMayPublish } from "./permissions.ts";
export { OUTBOX_MAX_BYTES, OUTBOX_MAX_MESSAGES, OutboxFullError } from "./outbox.ts";
export { RETRY_ATTEMPTS, RETRY_INITIAL_MS, RETRY_MAX_MS } from "./retry.ts";
