/**
 * The signaling client: one logical session with the Switchboard edge that
 * survives reconnects.
 *
 * Lifecycle: open the WebSocket → send Join (first connection) or Resume
 * (later connections while we hold a session) → Joined/Resumed → keepalive
 * Pings every `keepalive.intervalMs`. When the socket drops, reconnect with
 * exponential backoff and jitter; the close code decides whether to resume,
 * start a fresh session, or stop (see close.ts).
 *
 * Resume: every ServerMessage with seq > 0 is counted; frames at or below
 * the last seq are replays of what we already handled and are dropped. A
 * resume the server cannot honour (error, or `complete: false`) falls back
 * to a fresh Join; listeners then get `joined` with `rejoin: true`. The
 * peer connections do not depend on the session (the mesh keeps those that
 * work). That Join uses a fresh token from `refreshToken` when there is one:
 * the refusal may be the token's (a restarted dev server signs with a new
 * key).
 *
 * Moves: the application's backend may move the session to another room
 * (`moved`). The session, its seq and its resume token continue; `room`,
 * `roomMetadata` and `maxParticipants` follow, and the stored session
 * carries them, so a reload resumes in the new room. A fresh Join (after a
 * lost session) goes back to the room its token grants: the server's rule.
 *
 * A session can be restored from an earlier page (`restore`, e.g. from
 * sessionStorage across a reload): the first connection then resumes it.
 * The `session` event reports what to store for that.
 *
 * Exactly-once sending (see outbox.ts): signals and presence updates are
 * numbered with ClientMessage.seq and kept until the server's Accepted
 * covers them. After a complete resume, whatever is still kept is sent
 * again, in order and unchanged, before anything new; the server drops
 * what it already accepted. A fresh Join starts numbering at 1 again and
 * forgets the old session's messages (peers are renegotiated anyway).
 *
 * Refused for the room's message rate (a retryable `rate_limited` naming
 * the request): the server drops the message and counts it as handled, so
 * the outbox does not resend it; retry.ts sends it again as a new message
 * after a backoff, unless a later message made it stale, and `undelivered`
 * reports what could not be sent in the end.
 */
import { clone, create, fromJson, toJson, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import { classifyClose, type CloseAction } from "./close.ts";
import { decodeServerMessage, encodeClientMessage, type ClientMessageInit } from "./codec.ts";
import { Emitter } from "./emitter.ts";
import { Outbox } from "./outbox.ts";
import { RetryBook, type Sent } from "./retry.ts";
import { SeqTracker } from "./sequence.ts";
import {
  ErrorCode,
  ErrorSchema,
  LeaveReason,
  ParticipantSchema,
  SessionDescription_Type,
  type PeerSignalSchema,
  type Data,
  type Error as ServerError,
  type IceServer,
  type Joined,
  type Moved,
  type Participant,
  type ParticipantLeft,
  type PeerSignal,
  type Resumed,
  type ServerMessage,
  type TokenRefreshed,
} from "./gen/switchboard/v1/client_pb.ts";
import { participantMayPublish } from "./permissions.ts";

/** The part of the browser WebSocket the client uses (fakeable in tests). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** Timer functions; injectable so tests can drive time by hand. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const OPEN = 1;

export type ConnectionState =
  /** Not started, or stopped for good (see `stopped`). */
  | "idle"
  /** First connection in progress. */
  | "connecting"
  /** In the room: Joined or Resumed received on the current socket. */
  | "joined"
  /** Lost the connection; waiting for the next attempt or resuming. */
  | "reconnecting"
  /** Stopped: left, or a close that reconnecting cannot fix. */
  | "closed";

/** A received peer-signal payload (description, candidate or end). */
export type SignalKind = PeerSignal["kind"];
/** A peer-signal payload to send (plain objects, no `$typeName` needed). */
export type SignalKindInit = MessageInitShape<typeof PeerSignalSchema>["kind"];

/** What it takes to resume a session from another page (keep it secret). */
export interface StoredSession {
  sessionId: string;
  resumeToken: string;
  /** Highest server seq processed, as a decimal string. */
  lastSeq: string;
  /** The latest access token. */
  token: string;
  /**
   * The ClientMessage.seq the next numbered message takes (decimal): the
   * numbering belongs to the session and continues on the next page.
   */
  nextClientSeq: string;
  /**
   * Ourselves as the server last described us (Joined, then SelfUpdated), as
   * the proto's canonical JSON: a resume does not say it again, and a
   * revoked `publish` must survive a reload.
   */
  self?: JsonValue;
  /** The room's metadata as last heard (Joined, then RoomUpdated or Moved). */
  roomMetadata?: string;
  /**
   * The room the session is in (Joined, then Moved): after a move it is not
   * the token's, and a resume does not say it.
   */
  room?: string;
  /** That room's participant limit (Joined's limits, then Moved); absent when unknown. */
  maxParticipants?: number;
}

/**
 * An offer or answer of ours that the server refused (answered with an
 * error instead of relaying it): `permission_denied` for an offer without
 * the `publish` permission, `not_found` when `to` has gone.
 */
export interface SignalRefused {
  to: string;
  type: "offer" | "answer";
  error: ServerError;
}

/**
 * Something we sent that the server dropped for a message rate
 * (`rate_limited`) and that was not sent again in the end.
 *
 * - `signal`, `presence`: the room was over its message rate (§6.2) for
 *   the original and each of its retries (`attempts` sends in all).
 * - `unknown`: the edge dropped a frame over this connection's own rate
 *   (§11). It does that before reading the frame, so its error names no
 *   request and nothing can be retried, except a presence update (sent
 *   again with backoff, as above).
 *
 * A presence update given up leaves `self.attributes` as the server last
 * acknowledged them; its `updatePresence` promise rejects with `error`.
 */
export interface Undelivered {
  message: "signal" | "presence" | "unknown";
  /** A signal's receiver. */
  to?: string;
  /** What the signal carried. */
  signal?: "offer" | "answer" | "candidate" | "endOfCandidates";
  /** Times it was sent. */
  attempts: number;
  error: ServerError;
}

export interface SignalingEvents {
  /** The resumable session changed (null: none, e.g. after leaving). */
  session: StoredSession | null;
  state: { state: ConnectionState; attempt: number; retryInMs?: number };
  /** A new session began. `rejoin` = an earlier session was lost: rebuild peers. */
  joined: { joined: Joined; rejoin: boolean };
  /** The session continued on a new connection; nothing was lost. */
  resumed: { resumed: Resumed };
  participantJoined: Participant;
  participantLeft: ParticipantLeft;
  participantUpdated: Participant;
  signal: PeerSignal;
  /**
   * The application's backend changed us (name, attributes, permissions;
   * RoomService.UpdateParticipant). `self` is the new record (also
   * `client.self`); `previous` what we had before.
   */
  selfUpdated: { self: Participant; previous: Participant | undefined };
  /** The room's metadata changed (RoomService.UpdateRoomMetadata); also `client.roomMetadata`. */
  roomUpdated: { metadata: string };
  /**
   * The application's backend moved this session to another room
   * (RoomService.MoveParticipant): `moved` has the new room, everyone in it
   * (with our negotiation role towards each), its metadata and its limit;
   * `from` is the room we left. The session continues. Close the peer
   * connections of `from` (its members heard participantLeft `moved`) and
   * connect to `moved.participants` as after a `joined` (they heard
   * participantJoined). `client.room`, `roomMetadata` and `maxParticipants`
   * already say the new room's.
   */
  moved: { moved: Moved; from: string };
  /**
   * Data from the application's backend (RoomService.SendData): `topic` and
   * `payload` are the application's, opaque to Switchboard. In the
   * session's order, each once (a resume replays what was missed).
   */
  data: Data;
  /**
   * An offer or answer we sent was refused; `serverError` follows with the
   * same error. A `rate_limited` refusal is retried first (see
   * `undelivered`); this comes only once the retries are spent, and not for
   * a description a newer one to the same participant replaced.
   */
  signalRefused: SignalRefused;
  /** A message dropped for a message rate could not be sent again (see Undelivered). */
  undelivered: Undelivered;
  tokenRefreshed: TokenRefreshed;
  /** An error frame from the server (answers to our requests included). */
  serverError: ServerError;
  /** A socket closed; `action` says what the client does about it. */
  disconnected: { code: number; reason: string; action: CloseAction };
  /** The client stopped for good (left, replaced, unauthorised...). */
  stopped: { code: number; reason: string };
}

export interface SignalingOptions {
  /** WebSocket URL, e.g. `wss://example.org/ws`. */
  url: string;
  /** Access token for Join. */
  token: string;
  /** Presence attributes for Join. */
  attributes?: Record<string, string>;
  /**
   * Gets a new token (the embedding site's token callback): when ours
   * expired, and before joining again after a session was lost. Without
   * it, expiry stops the client.
   */
  refreshToken?: () => Promise<string>;
  /** A session to resume on the first connection (from an earlier page). */
  restore?: StoredSession;
  createSocket?: (url: string) => SocketLike;
  clock?: Clock;
  backoff?: BackoffOptions;
  /** Give up on a connection that has not joined/resumed within this time. */
  handshakeTimeoutMs?: number;
  /** Keepalive used until Joined says otherwise. */
  defaultKeepalive?: { intervalMs: number; timeoutMs: number };
}

/** Counters that tests and the UI read. */
export interface SignalingStats {
  connects: number;
  joins: number;
  resumes: number;
  resumeFallbacks: number;
  duplicatesDropped: number;
  /** Numbered messages sent again after a resume (not yet accepted). */
  resent: number;
  /** Messages sent again as new ones after a `rate_limited` refusal (retry.ts). */
  retried: number;
  /** Messages dropped for a rate and not sent again (`undelivered` events). */
  undelivered: number;
}

interface Session {
  sessionId: string;
  resumeToken: string;
}

/** A presence update waiting for its Ack. */
interface Pending {
  /** What `self.attributes` become on the Ack. */
  attributes: Record<string, string>;
  resolve: () => void;
  reject: (err: ServerError) => void;
}

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Close code we use for connections we abandon ourselves (private range). */
const CLIENT_ABANDON = 4000;
/** Token callback failures in a row before a lost session is given up. */
const MAX_TOKEN_FAILURES = 8;
/**
 * Descriptions (offers, answers) remembered by request id, to name the one
 * an error refuses. A refusal answers within a round trip; a relayed one is
 * never answered, so the oldest are forgotten past this many.
 */
const TRACKED_DESCRIPTIONS = 64;

export class SignalingClient extends Emitter<SignalingEvents> {
  private readonly opts: Required<
    Pick<SignalingOptions, "handshakeTimeoutMs" | "defaultKeepalive">
  > &
    SignalingOptions;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly seqs = new SeqTracker();
  /** Numbered messages not yet covered by Accepted (our side of exactly-once). */
  private readonly outbox = new Outbox();
  /** What a `rate_limited` refusal sends again (retry.ts). */
  private readonly retries: RetryBook;
  private readonly createSocket: (url: string) => SocketLike;

  private socket: SocketLike | null = null;
  private session: Session | null = null;
  /** Whether any session existed before (so the next Joined is a rejoin). */
  private hadSession = false;
  private token: string;
  private attributes: Record<string, string>;
  private nextId = 1;
  private resumeRequestId = 0;
  private joinRequestId = 0;
  private keepalive: { intervalMs: number; timeoutMs: number };
  private lastHeard = 0;
  private nextNonce = 1n;
  private keepaliveTimer: unknown = null;
  private handshakeTimer: unknown = null;
  private retryTimer: unknown = null;
  private readonly pending = new Map<number, Pending>();
  private current: ConnectionState = "idle";
  private leaving = false;
  /** The next Join follows a lost session: get a fresh token first. */
  private freshTokenWanted = false;
  private tokenFailures = 0;
  private iceServerList: IceServer[] = [];
  private selfInfo: Participant | undefined;
  private metadata = "";
  private roomName = "";
  private roomLimit = 0;
  /** Request id → the description it carried (see TRACKED_DESCRIPTIONS). */
  private readonly descriptions = new Map<number, { to: string; type: "offer" | "answer" }>();
  readonly stats: SignalingStats = {
    connects: 0,
    joins: 0,
    resumes: 0,
    resumeFallbacks: 0,
    duplicatesDropped: 0,
    resent: 0,
    retried: 0,
    undelivered: 0,
  };

  constructor(opts: SignalingOptions) {
    super();
    this.opts = {
      handshakeTimeoutMs: 10_000,
      defaultKeepalive: { intervalMs: 15_000, timeoutMs: 45_000 },
      ...opts,
    };
    this.clock = opts.clock ?? realClock;
    this.backoff = new Backoff(opts.backoff);
    this.createSocket = opts.createSocket ?? ((url) => new WebSocket(url) as unknown as SocketLike);
    this.token = opts.token;
    this.attributes = { ...(opts.attributes ?? {}) };
    this.keepalive = this.opts.defaultKeepalive;
    this.retries = new RetryBook({
      clock: this.clock,
      random: opts.backoff?.random ?? Math.random,
      resend: (entry, retries, error) => this.resend(entry, retries, error),
      superseded: (entry) => this.superseded(entry),
      exhausted: (entry, error) => this.giveUp(entry, error),
    });
    if (opts.restore) {
      this.session = { sessionId: opts.restore.sessionId, resumeToken: opts.restore.resumeToken };
      this.seqs.restore(BigInt(opts.restore.lastSeq || "0"));
      this.outbox.restore(BigInt(opts.restore.nextClientSeq || "1"));
      this.token = opts.restore.token || this.token;
      this.selfInfo = restoredSelf(opts.restore.self);
      this.metadata = opts.restore.roomMetadata ?? "";
      this.roomName = opts.restore.room ?? "";
      this.roomLimit = opts.restore.maxParticipants ?? 0;
      this.hadSession = true;
    }
  }

  get state(): ConnectionState {
    return this.current;
  }
  get lastSeq(): bigint {
    return this.seqs.lastSeq;
  }
  get sessionId(): string | undefined {
    return this.session?.sessionId;
  }
  /** The latest token: the initial one, or the last `tokenRefreshed`. */
  get currentToken(): string {
    return this.token;
  }
  get iceServers(): IceServer[] {
    return this.iceServerList;
  }
  /**
   * Ourselves as the server describes us: from Joined, then every
   * SelfUpdated (the backend renamed us or changed our permissions) and
   * our acknowledged presence updates. Kept across a resume; a new session
   * (rejoin) starts from its Joined.
   */
  get self(): Participant | undefined {
    return this.selfInfo;
  }
  /**
   * Whether the server relays our offers now (`self.permissions.publish`;
   * true before the first Joined and from servers that do not send
   * permissions). Answers and candidates always pass.
   */
  get mayPublish(): boolean {
    return participantMayPublish(this.selfInfo);
  }
  /** The room's metadata (opaque, set by the application's backend): Joined, then RoomUpdated or Moved. */
  get roomMetadata(): string {
    return this.metadata;
  }
  /**
   * The room we are in: Joined's, then Moved's ("" before the first Joined,
   * unless restored). A new session (rejoin) is in its token's room again.
   */
  get room(): string {
    return this.roomName;
  }
  /** The most participants our room admits (Joined's limits, then Moved); 0 when unknown. */
  get maxParticipants(): number {
    return this.roomLimit;
  }
  /** Numbered messages sent (or waiting to be sent) but not yet accepted. */
  get unaccepted(): number {
    return this.outbox.size;
  }

  /** Opens the first connection. */
  connect(): void {
    if (this.current !== "idle") return;
    this.leaving = false;
    this.setState("connecting", 0);
    this.open();
  }

  /**
   * Sends a peer signal, numbered (exactly once, see outbox.ts). While
   * reconnecting with a live session, it is numbered and kept, and goes out
   * after a complete resume; a fresh Join drops it (peers are renegotiated
   * then anyway). Without a session it is dropped.
   *
   * Throws FrameTooLargeError for a frame over the server's limit, and
   * OutboxFullError when OUTBOX_MAX_MESSAGES / OUTBOX_MAX_BYTES of messages
   * are still waiting for Accepted: then this signal is refused as a whole
   * (not numbered, not sent, not kept) while everything already kept stays.
   * Refusing the new message, rather than evicting an old one, keeps the
   * promise that what was sent arrives, and the caller learns of the loss
   * the same way it learns of an oversize frame.
   */
  sendSignal(to: string, kind: SignalKindInit): void {
    this.numberSignal(to, kind, 0);
  }

  /** sendSignal, for the `retries`-th time (0: the original). */
  private numberSignal(to: string, kind: SignalKindInit, retries: number): void {
    if (!this.session || this.current === "closed") return;
    // Every signal carries a request id, so that an error refusing it names
    // it: a description's is `signalRefused` (an offer without `publish`),
    // and any `rate_limited` is retried (retry.ts), candidates included.
    const type = descriptionType(kind);
    const id = this.takeId();
    const entry = this.outbox.push({ id, message: { case: "signal", value: { to, kind } } });
    if (type) this.trackDescription(id, to, type);
    this.retries.sent({ id, seq: entry.seq, message: { kind: "signal", to, signal: kind }, retries });
    if (this.live()) this.sendFrame(entry.frame);
    this.reportSession();
  }

  private trackDescription(id: number, to: string, type: "offer" | "answer"): void {
    this.descriptions.set(id, { to, type });
    if (this.descriptions.size > TRACKED_DESCRIPTIONS) {
      const oldest = this.descriptions.keys().next();
      if (!oldest.done) this.descriptions.delete(oldest.value);
    }
  }

  /**
   * Replaces our presence attributes, as a numbered message (exactly once).
   * Resolves on the server's Ack. While disconnected it resolves at once:
   * with a session, the update is numbered, kept and sent after the resume;
   * without one, the attributes go with the next Join. Rejects with
   * FrameTooLargeError or OutboxFullError (see sendSignal) when the update
   * cannot be kept; the attributes are still the ones the next Join sends.
   *
   * Refused for the room's message rate, the update is sent again after a
   * backoff and the promise waits for that one's Ack; it rejects with the
   * `rate_limited` error once the retries are spent (`undelivered`), and
   * resolves without changing `self` when a newer update replaced it
   * before it was applied (the newer one carries the attributes now).
   */
  updatePresence(attributes: Record<string, string>): Promise<void> {
    this.attributes = { ...attributes };
    const live = this.live();
    let id: number;
    try {
      id = this.numberPresence(attributes, 0);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!live || id === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.pending.set(id, { attributes: { ...attributes }, resolve, reject }));
  }

  /**
   * Numbers, keeps and (when live) sends a presence update; returns its
   * request id, 0 without a session. Throws as Outbox.push does.
   */
  private numberPresence(attributes: Readonly<Record<string, string>>, retries: number): number {
    if (!this.session || this.current === "closed") return 0;
    const id = this.takeId();
    const entry = this.outbox.push({ id, message: { case: "updatePresence", value: { attributes: { ...attributes } } } });
    this.retries.sent({ id, seq: entry.seq, message: { kind: "presence", attributes }, retries });
    if (this.live()) this.sendFrame(entry.frame);
    this.reportSession();
    return id;
  }

  // ---- rate_limited retries (retry.ts) --------------------------------

  /** Sends a refused message again as a new one; its Ack settles the original's promise. */
  private resend(entry: Sent, retries: number, error: ServerError): void {
    const m = entry.message;
    this.stats.retried += 1;
    try {
      if (m.kind === "signal") {
        this.numberSignal(m.to, m.signal, retries);
        return;
      }
      const id = this.numberPresence(m.attributes, retries);
      const p = this.pending.get(entry.id);
      if (!p) return;
      this.pending.delete(entry.id);
      if (id === 0) p.resolve(); // no session: the next Join carries them
      else this.pending.set(id, p);
    } catch {
      // The outbox is full: this one is lost like the refused original.
      this.giveUp(entry, error);
    }
  }

  /** A refused message that a later one replaced: nothing was lost. */
  private superseded(entry: Sent): void {
    // A presence update's promise resolves without changing `self`.
    const p = this.pending.get(entry.id);
    this.pending.delete(entry.id);
    p?.resolve();
    this.descriptions.delete(entry.id);
  }

  /** A refused message not sent again: say so. */
  private giveUp(entry: Sent, error: ServerError): void {
    const m = entry.message;
    this.stats.undelivered += 1;
    const attempts = entry.retries + 1;
    if (m.kind === "presence") {
      this.settle(entry.id, error);
      this.emit("undelivered", { message: "presence", attempts, error });
      return;
    }
    const type = descriptionType(m.signal);
    this.emit("undelivered", { message: "signal", to: m.to, signal: type ?? signalCase(m.signal), attempts, error });
    if (type) {
      this.descriptions.delete(entry.id);
      this.emit("signalRefused", { to: m.to, type, error });
    }
  }

  /** Leaves the room; the server closes with 1000. */
  leave(): void {
    if (this.current === "closed" || this.current === "idle") return;
    this.leaving = true;
    this.clearTimers();
    const sock = this.socket;
    if (sock && sock.readyState === OPEN && this.current === "joined") {
      this.sendNow({ message: { case: "leave", value: {} } });
      // Do not wait on the server's close for long.
      this.clock.setTimeout(() => sock.close(1000, "left"), 1000);
    } else {
      sock?.close(1000, "left");
      this.detach();
      this.finish(1000, "left");
    }
  }

  /**
   * Stops without leaving (page unload): the socket closes, the session
   * waits on the server for the resume window, and a `restore` of what the
   * last `session` event said resumes it. No `stopped` event.
   */
  suspend(): void {
    if (this.current === "closed" || this.current === "idle") return;
    this.clearTimers();
    this.retries.reset();
    const sock = this.socket;
    this.detach();
    sock?.close(CLIENT_ABANDON, "suspended");
    this.setState("closed", 0);
  }

  /**
   * Drops the connection as a network failure would (no Leave): the client
   * reconnects and resumes. Used by the UI's test hook and by tests.
   */
  dropConnection(opts: { spoilResume?: boolean } = {}): void {
    const sock = this.socket;
    if (!sock) return;
    // Diagnostics: make the server refuse the resume, to exercise the
    // fall-back to a fresh Join.
    if (opts.spoilResume && this.session) this.session = { ...this.session, resumeToken: "spoiled" };
    this.detach();
    sock.close(CLIENT_ABANDON, "client_dropped");
    this.onSocketClosed(1006, "");
  }

  // ---- connection management ------------------------------------------

  private open(): void {
    this.stats.connects += 1;
    let sock: SocketLike;
    try {
      sock = this.createSocket(this.opts.url);
    } catch {
      this.onSocketClosed(1006, "");
      return;
    }
    this.socket = sock;
    this.resumeRequestId = 0;
    this.joinRequestId = 0;
    this.handshakeTimer = this.clock.setTimeout(() => {
      if (this.socket === sock) this.abandon("handshake_timeout");
    }, this.opts.handshakeTimeoutMs);
    sock.onopen = () => {
      if (this.socket === sock) this.onOpen();
    };
    sock.onmessage = (ev) => {
      if (this.socket === sock && typeof ev.data === "string") this.onFrame(ev.data);
    };
    sock.onclose = (ev) => {
      if (this.socket === sock) {
        this.detach();
        this.onSocketClosed(ev.code, ev.reason);
      }
    };
    sock.onerror = () => {
      /* a close event always follows */
    };
  }

  private onOpen(): void {
    this.lastHeard = this.clock.now();
    if (this.session) {
      this.resumeRequestId = this.takeId();
      this.sendNow({
        id: this.resumeRequestId,
        message: {
          case: "resume",
          value: {
            sessionId: this.session.sessionId,
            resumeToken: this.session.resumeToken,
            lastSeq: this.seqs.lastSeq,
            // The server checks that this token's subject owns the session.
            token: this.token,
          },
        },
      });
    } else {
      // A new session: server seqs and our numbering both start again.
      this.seqs.reset();
      this.outbox.reset();
      this.joinRequestId = this.takeId();
      this.sendNow({
        id: this.joinRequestId,
        message: { case: "join", value: { token: this.token, attributes: this.attributes } },
      });
    }
  }

  private onFrame(text: string): void {
    this.lastHeard = this.clock.now();
    let msg: ServerMessage;
    try {
      msg = decodeServerMessage(text);
    } catch (err) {
      console.warn("switchboard: undecodable frame dropped", err);
      return;
    }
    if (msg.message.case === "accepted") {
      // Connection-scoped (seq 0, never replayed): it must not take part in
      // the server-seq bookkeeping, whatever seq it carries.
      this.outbox.accept(msg.message.value.seq);
      this.retries.accepted(msg.message.value.seq);
      return;
    }
    if (this.seqs.accept(msg.seq) === "duplicate") {
      this.stats.duplicatesDropped += 1;
      return;
    }
    this.dispatch(msg);
    if (msg.seq > 0n || msg.message.case === "tokenRefreshed") this.reportSession();
  }

  /** What a later page needs to resume this session (null: none). */
  storedSession(): StoredSession | null {
    const s = this.session;
    if (!s || this.current === "closed") return null;
    return {
      sessionId: s.sessionId,
      resumeToken: s.resumeToken,
      lastSeq: this.seqs.lastSeq.toString(),
      token: this.token,
      nextClientSeq: this.outbox.nextSeq.toString(),
      ...(this.selfInfo ? { self: toJson(ParticipantSchema, this.selfInfo) } : {}),
      ...(this.metadata ? { roomMetadata: this.metadata } : {}),
      ...(this.roomName ? { room: this.roomName } : {}),
      ...(this.roomLimit > 0 ? { maxParticipants: this.roomLimit } : {}),
    };
  }

  private reportSession(): void {
    this.emit("session", this.storedSession());
  }

  private dispatch(msg: ServerMessage): void {
    const m = msg.message;
    switch (m.case) {
      case "joined":
        this.onJoined(m.value);
        break;
      case "resumed":
        this.onResumed(m.value);
        break;
      case "participantJoined":
        if (m.value.participant) this.emit("participantJoined", m.value.participant);
        break;
      case "participantLeft":
        // Nothing more goes to them; a replaced session is back at once.
        if (m.value.reason !== LeaveReason.replaced) this.retries.forgetPeer(m.value.participantId);
        this.emit("participantLeft", m.value);
        break;
      case "participantUpdated":
        if (m.value.participant) this.emit("participantUpdated", m.value.participant);
        break;
      case "signal":
        this.emit("signal", m.value);
        break;
      case "ack":
        this.retries.answered(m.value.requestId);
        this.settle(m.value.requestId, null);
        break;
      case "error":
        this.onServerError(m.value);
        break;
      case "tokenRefreshed":
        this.token = m.value.token;
        this.emit("tokenRefreshed", m.value);
        break;
      case "selfUpdated": {
        const self = m.value.self;
        if (!self) break;
        const previous = this.selfInfo;
        this.selfInfo = self;
        this.emit("selfUpdated", { self, previous });
        break;
      }
      case "roomUpdated":
        this.metadata = m.value.metadata;
        this.emit("roomUpdated", { metadata: m.value.metadata });
        break;
      case "moved": {
        const from = this.roomName;
        this.roomName = m.value.room;
        this.metadata = m.value.roomMetadata;
        this.roomLimit = m.value.maxParticipants;
        // Signals to the room we left are not sent again.
        this.retries.forgetSignals();
        this.emit("moved", { moved: m.value, from });
        break;
      }
      case "data":
        this.emit("data", m.value);
        break;
      case "pong":
        break; // liveness already noted
      default:
        break; // a message type newer than this client
    }
  }

  private onJoined(joined: Joined): void {
    this.clearHandshake();
    this.session = { sessionId: joined.sessionId, resumeToken: joined.resumeToken };
    this.iceServerList = joined.iceServers;
    this.selfInfo = joined.self;
    this.metadata = joined.roomMetadata;
    this.roomName = joined.room;
    this.roomLimit = joined.limits?.maxParticipants ?? 0;
    if (joined.keepalive && joined.keepalive.intervalMs > 0) {
      this.keepalive = {
        intervalMs: joined.keepalive.intervalMs,
        timeoutMs: joined.keepalive.timeoutMs || joined.keepalive.intervalMs * 3,
      };
    }
    const rejoin = this.hadSession;
    this.hadSession = true;
    // A new session: what the old one had not delivered belonged to its
    // negotiations (renegotiated now), and numbering restarts at 1.
    this.outbox.reset();
    this.retries.reset();
    this.stats.joins += 1;
    this.backoff.reset();
    this.freshTokenWanted = false;
    this.reportSession();
    this.setState("joined", 0);
    this.startKeepalive();
    this.emit("joined", { joined, rejoin });
  }

  private onResumed(resumed: Resumed): void {
    this.clearHandshake();
    this.resumeRequestId = 0;
    if (!resumed.complete) {
      // Messages were lost: the session's state cannot be trusted. Start a
      // new session; the server replaces the old one on our Join. The
      // session would continue, so the protocol allows resending the outbox
      // here, but we abandon it at once: its messages are dropped with it
      // (forgetSession) instead of being sent into a session about to end.
      this.stats.resumeFallbacks += 1;
      this.forgetSession();
      this.abandon("resume_incomplete", 0);
      return;
    }
    this.session = {
      sessionId: resumed.sessionId || (this.session?.sessionId ?? ""),
      resumeToken: resumed.resumeToken,
    };
    this.stats.resumes += 1;
    this.backoff.reset();
    this.reportSession();
    this.setState("joined", 0);
    this.startKeepalive();
    // Everything not yet accepted goes again, oldest first, as the same
    // frames (same id and seq), before anything new: messages sent while we
    // were away are in the outbox too and keep their place. The server
    // drops the ones it already accepted.
    for (const entry of this.outbox.pending()) {
      this.sendFrame(entry.frame);
      this.stats.resent += 1;
    }
    this.emit("resumed", { resumed });
  }

  private onServerError(err: ServerError): void {
    if (err.requestId !== 0 && err.requestId === this.resumeRequestId) {
      // The session cannot be resumed (expired, token spent, ...).
      this.stats.resumeFallbacks += 1;
      this.forgetSession();
      this.abandon("resume_failed", 0);
      return;
    }
    if (err.code === ErrorCode.rate_limited && err.requestId === 0) {
      // The edge's own rate: some frame of ours was dropped, unread.
      this.stats.undelivered += 1;
      this.emit("undelivered", { message: "unknown", attempts: 1, error: err });
      this.retries.droppedUnknown(err);
    } else if (this.retries.refused(err)) {
      // The room's rate: sent again later, or reported as undelivered.
      this.descriptions.delete(err.requestId);
      this.emit("serverError", err);
      return;
    }
    const refused = err.requestId === 0 ? undefined : this.descriptions.get(err.requestId);
    if (refused) {
      this.descriptions.delete(err.requestId);
      this.emit("signalRefused", { ...refused, error: err });
    }
    this.settle(err.requestId, err);
    this.emit("serverError", err);
  }

  private onSocketClosed(code: number, reason: string): void {
    this.clearTimers();
    if (this.leaving) {
      this.finish(code, reason);
      return;
    }
    const resuming = this.resumeRequestId !== 0;
    const action = classifyClose({ code, reason }, resuming);
    this.emit("disconnected", { code, reason, action });
    switch (action) {
      case "stop":
        this.finish(code, reason);
        return;
      case "rejoin":
        if (resuming) this.stats.resumeFallbacks += 1;
        this.forgetSession();
        this.scheduleReconnect();
        return;
      case "refresh-token":
        if (!this.opts.refreshToken) {
          this.finish(code, reason);
          return;
        }
        this.opts.refreshToken().then(
          (token) => {
            this.token = token;
            this.scheduleReconnect();
          },
          () => this.finish(code, reason),
        );
        return;
      case "reconnect":
        this.scheduleReconnect();
        return;
    }
  }

  /** Closes the current socket on our initiative and reconnects. */
  private abandon(reason: string, delayMs?: number): void {
    const sock = this.socket;
    this.detach();
    this.clearTimers();
    sock?.close(CLIENT_ABANDON, reason);
    this.emit("disconnected", { code: CLIENT_ABANDON, reason, action: "reconnect" });
    this.scheduleReconnect(delayMs);
  }

  private scheduleReconnect(delayMs?: number): void {
    const delay = delayMs ?? this.backoff.next();
    this.setState("reconnecting", this.backoff.attempts, delay);
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      this.attempt();
    }, delay);
  }

  /**
   * Skips what is left of the reconnect delay: the network or the server is
   * known to be back (the page's reachability probe, the browser's `online`
   * event), so waiting out the backoff would only keep the call in
   * "reconnecting" for nothing. Does nothing unless a retry is pending.
   */
  retryNow(): void {
    if (this.current !== "reconnecting" || this.retryTimer === null) return;
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt();
  }

  private attempt(): void {
    if (this.freshTokenWanted && this.opts.refreshToken) this.openWithFreshToken(this.opts.refreshToken);
    else this.open();
  }

  /**
   * Gets a fresh token, then joins. A failure (the token service may be
   * restarting with the server) is retried with backoff, up to
   * MAX_TOKEN_FAILURES in a row.
   */
  private openWithFreshToken(refresh: () => Promise<string>): void {
    const stillWanted = () => this.current === "reconnecting" && !this.leaving && this.socket === null && this.retryTimer === null;
    refresh().then(
      (token) => {
        if (!stillWanted()) return;
        this.token = token;
        this.freshTokenWanted = false;
        this.tokenFailures = 0;
        this.open();
      },
      (err: unknown) => {
        if (!stillWanted()) return;
        this.tokenFailures += 1;
        console.warn("switchboard: token refresh failed", err);
        if (this.tokenFailures >= MAX_TOKEN_FAILURES) this.finish(CLIENT_ABANDON, "token_unavailable: could not get a new token");
        else this.scheduleReconnect();
      },
    );
  }

  private forgetSession(): void {
    this.session = null;
    this.outbox.reset();
    this.retries.reset();
    this.resumeRequestId = 0;
    // The refusal may be our token's (unknown signing key after a server
    // restart, expiry): the Join that follows takes a new one.
    this.freshTokenWanted = true;
    this.reportSession();
  }

  private finish(code: number, reason: string): void {
    this.clearTimers();
    this.socket = null;
    this.session = null;
    this.outbox.reset();
    this.retries.reset();
    this.reportSession();
    // Not from the server, so no code from its table: the message says why.
    const closed = create(ErrorSchema, {
      code: ErrorCode.error_code_unspecified,
      message: reason || "connection closed",
    });
    for (const [, p] of this.pending) p.reject(closed);
    this.pending.clear();
    this.setState("closed", 0);
    this.emit("stopped", { code, reason });
  }

  private detach(): void {
    const sock = this.socket;
    if (!sock) return;
    sock.onopen = null;
    sock.onmessage = null;
    sock.onclose = null;
    sock.onerror = null;
    this.socket = null;
  }

  // ---- keepalive ------------------------------------------------------

  private startKeepalive(): void {
    this.stopKeepalive();
    const tick = () => {
      const silentFor = this.clock.now() - this.lastHeard;
      if (silentFor > this.keepalive.timeoutMs) {
        // Half-open connection: nothing heard, not even Pongs.
        this.abandon("keepalive_timeout");
        return;
      }
      const nonce = this.nextNonce++;
      // The Ping acknowledges what we processed, so the server's log for
      // this session keeps only what follows (what a resume would replay).
      this.sendNow({ ack: this.seqs.lastSeq, message: { case: "ping", value: { nonce } } });
      this.keepaliveTimer = this.clock.setTimeout(tick, this.keepalive.intervalMs);
    };
    this.keepaliveTimer = this.clock.setTimeout(tick, this.keepalive.intervalMs);
  }

  private stopKeepalive(): void {
    if (this.keepaliveTimer !== null) this.clock.clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = null;
  }

  private clearHandshake(): void {
    if (this.handshakeTimer !== null) this.clock.clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }

  private clearTimers(): void {
    this.stopKeepalive();
    this.clearHandshake();
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  // ---- sending --------------------------------------------------------

  private takeId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_fffe ? 1 : this.nextId + 1;
    return id;
  }

  /** Settles a presence update: its Ack (the server has these attributes now) or its error. */
  private settle(requestId: number, err: ServerError | null): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    this.pending.delete(requestId);
    if (err) {
      p.reject(err);
      return;
    }
    if (this.selfInfo) {
      const self = clone(ParticipantSchema, this.selfInfo);
      self.attributes = { ...p.attributes };
      this.selfInfo = self;
      this.reportSession();
    }
    p.resolve();
  }

  /** In the room on an open socket: numbered messages may go out now. */
  private live(): boolean {
    return this.current === "joined" && this.socket?.readyState === OPEN;
  }

  /** Sends an unnumbered message (Join, Resume, Ping, Leave). */
  private sendNow(msg: ClientMessageInit): void {
    const sock = this.socket;
    if (!sock || sock.readyState !== OPEN) return;
    sock.send(encodeClientMessage(msg));
  }

  private sendFrame(frame: string): void {
    const sock = this.socket;
    if (!sock || sock.readyState !== OPEN) return;
    sock.send(frame);
  }

  private setState(state: ConnectionState, attempt: number, retryInMs?: number): void {
    this.current = state;
    this.emit("state", { state, attempt, retryInMs });
  }
}

/** "offer" or "answer" for a description signal, else null. */
function descriptionType(kind: SignalKindInit): "offer" | "answer" | null {
  if (kind?.case !== "description") return null;
  switch (kind.value.type) {
    case SessionDescription_Type.OFFER:
      return "offer";
    case SessionDescription_Type.ANSWER:
      return "answer";
    default:
      return null;
  }
}

/** What a signal carries other than a description. */
function signalCase(kind: SignalKindInit): "candidate" | "endOfCandidates" | undefined {
  return kind?.case === "candidate" || kind?.case === "endOfCandidates" ? kind.case : undefined;
}

/** The participant a stored session kept (undefined if absent or unreadable). */
function restoredSelf(json: JsonValue | undefined): Participant | undefined {
  if (json === undefined) return undefined;
  try {
    return fromJson(ParticipantSchema, json, { ignoreUnknownFields: true });
  } catch {
    return undefined;
  }
}
