/**
 * Re-sending what the room's message quota refused (docs/protocol.md §6.2,
 * §6.3). Past the room's rate, a `signal` or `updatePresence` is dropped and
 * answered with a retryable `rate_limited` error carrying its request id.
 * The server counts the message as handled (an `accepted` covers it), so
 * the outbox never sends it again: only a new message, with a new seq,
 * retries it.
 *
 * `RetryBook` remembers by request id what each numbered message carried,
 * and turns such a refusal into one of:
 * - a new message after a backoff (250 ms doubling to 4 s, equal jitter),
 *   at most RETRY_ATTEMPTS times;
 * - nothing, when a later message made it stale: a description to the same
 *   participant numbered since (an old offer never follows a newer one), a
 *   candidate of a peer connection since replaced (the SDP session id, the
 *   `o=` line, of our descriptions to that participant changed), a
 *   presence update since replaced by another (an update replaces the
 *   whole map);
 * - giving up, once the retries are spent.
 * The host (the client) numbers and sends, and reports what was given up.
 *
 * Order towards one participant. Our messages to them arrive in the order
 * they are numbered, and a retry is numbered after whatever followed the
 * original. Candidates among themselves do not mind; a description does:
 * the candidates numbered after it reached the peer before its retry, and
 * a peer with no description of that ICE session yet drops them. So the
 * retry of a description is followed by the candidates numbered to the
 * same participant after the original (sent again, as new messages), and a
 * refused candidate waits for such a retry instead of going first.
 *
 * A message is remembered until it is answered, or until RETAIN_MS after
 * an `accepted` covered it (its refusal may trail the `accepted`); at most
 * RETAIN_MAX, the oldest forgotten first.
 */
import { jitteredDelay } from "./backoff.ts";
import type { Clock, SignalKindInit } from "./client.ts";
import { ErrorCode, type Error as ServerError } from "./gen/switchboard/v1/client_pb.ts";

/** Re-sends of one refused message, at most; then it is given up. */
export const RETRY_ATTEMPTS = 6;
/** The first re-send's delay before jitter; it doubles up to RETRY_MAX_MS. */
export const RETRY_INITIAL_MS = 250;
export const RETRY_MAX_MS = 4000;
/** How long a message is remembered after an `accepted` covered it. */
const RETAIN_MS = 10_000;
/** Most messages remembered (twice the outbox's bound: resends and follow-ups). */
const RETAIN_MAX = 2048;

/** What a numbered message carried: enough to send it again. */
export type Resendable =
  | { readonly kind: "signal"; readonly to: string; readonly signal: SignalKindInit }
  | { readonly kind: "presence"; readonly attributes: Readonly<Record<string, string>> };

/** One numbered message. */
export interface Sent {
  /** Its request id (what a refusal names). */
  readonly id: number;
  /** Its ClientMessage.seq. */
  readonly seq: bigint;
  readonly message: Resendable;
  /** Times its content was sent before this message (0: the original). */
  readonly retries: number;
}

interface Entry extends Sent {
  /** For a signal: our SDP session towards its receiver when it was numbered. */
  readonly sdpSession: string | null;
  /** When an `accepted` first covered it; null: not yet. */
  acceptedAt: number | null;
}

/** A refused message waiting for its re-send. */
interface Waiting {
  readonly entry: Entry;
  readonly error: ServerError;
  timer: unknown;
  /** A candidate held for a description retry to the same participant. */
  held: boolean;
}

/** What the book needs from the client. */
export interface RetryHost {
  readonly clock: Clock;
  /** Source of jitter in [0, 1). */
  readonly random: () => number;
  /**
   * Numbers and sends `entry.message` again as a new message (which comes
   * back through `sent`), `retries` being the new count. `error` is the
   * refusal that led here, for the host's report if it cannot send.
   */
  resend(entry: Sent, retries: number, error: ServerError): void;
  /** A refused message that a later one made stale: it is not sent again. */
  superseded(entry: Sent): void;
  /** A refused message whose retries are spent. */
  exhausted(entry: Sent, error: ServerError): void;
}

/** The session id of an SDP's `o=` line: one per RTCPeerConnection. */
function sdpSessionId(sdp: string | undefined): string | null {
  if (!sdp) return null;
  return /^o=\S+ (\S+) /m.exec(sdp)?.[1] ?? null;
}

function isDescription(e: Sent): boolean {
  return e.message.kind === "signal" && e.message.signal?.case === "description";
}

/** A candidate or endOfCandidates to `to`. */
function isCandidateTo(e: Sent, to: string): boolean {
  return e.message.kind === "signal" && e.message.to === to && !isDescription(e);
}

function receiver(e: Sent): string | null {
  return e.message.kind === "signal" ? e.message.to : null;
}

export class RetryBook {
  /** By request id, in numbering order. */
  private readonly entries = new Map<number, Entry>();
  private waiting: Waiting[] = [];
  /** Participant → request id of the latest description numbered to them. */
  private readonly lastDescription = new Map<string, number>();
  /** Participant → SDP session id of that description. */
  private readonly sdpSessions = new Map<string, string | null>();
  /** Request id of the latest presence update (0: none). */
  private latestPresence = 0;

  constructor(private readonly host: RetryHost) {}

  /** Refused messages waiting for their re-send. */
  get pending(): number {
    return this.waiting.length;
  }

  /** A message was numbered (sent, or kept in the outbox until a resume). */
  sent(s: Sent): void {
    let sdpSession: string | null = null;
    const m = s.message;
    if (m.kind === "signal") {
      if (m.signal?.case === "description") {
        this.lastDescription.set(m.to, s.id);
        this.sdpSessions.set(m.to, sdpSessionId(m.signal.value.sdp));
      }
      sdpSession = this.sdpSessions.get(m.to) ?? null;
    } else {
      this.latestPresence = s.id;
    }
    this.entries.set(s.id, { ...s, sdpSession, acceptedAt: null });
    this.prune();
  }

  /** `accepted { seq }`: starts the countdown of everything it covers. */
  accepted(seq: bigint): void {
    const now = this.host.clock.now();
    for (const e of this.entries.values()) {
      if (e.seq > seq) break;
      e.acceptedAt ??= now;
    }
    this.prune();
  }

  /** An `ack` answered this request: nothing to retry. */
  answered(requestId: number): void {
    this.entries.delete(requestId);
  }

  /**
   * An error answering a request. A retryable `rate_limited` refusing a
   * remembered message is taken care of here (re-sent later, dropped as
   * stale, or reported as exhausted): returns true. Any other answer
   * forgets the message and returns false.
   */
  refused(err: ServerError): boolean {
    const e = err.requestId === 0 ? undefined : this.entries.get(err.requestId);
    if (!e) return false;
    this.entries.delete(e.id);
    if (err.code !== ErrorCode.rate_limited || !err.retryable) return false;
    this.refuse(e, err);
    return true;
  }

  /**
   * A `rate_limited` without a request id: the edge dropped a frame over
   * this connection's own rate (§11) before reading it, so which one is
   * unknown. A signal cannot be guessed (a second copy of an offer is not
   * harmless), but the latest presence update, if still unanswered, is
   * sent again: an update replaces the whole map, so a copy changes
   * nothing.
   */
  droppedUnknown(err: ServerError): void {
    const e = this.entries.get(this.latestPresence);
    if (!e) return;
    this.entries.delete(e.id);
    this.refuse(e, err);
  }

  /** Forgets what was sent to `to` (they left): nothing more goes to them. */
  forgetPeer(to: string): void {
    this.forget((e) => receiver(e) === to);
    this.lastDescription.delete(to);
    this.sdpSessions.delete(to);
  }

  /** Forgets every signal (we moved to another room); presence stays. */
  forgetSignals(): void {
    this.forget((e) => e.message.kind === "signal");
    this.lastDescription.clear();
    this.sdpSessions.clear();
  }

  /** A new session (or none): nothing of the old one is sent again. */
  reset(): void {
    this.forget(() => true);
    this.lastDescription.clear();
    this.sdpSessions.clear();
    this.latestPresence = 0;
  }

  private refuse(e: Entry, err: ServerError): void {
    if (this.stale(e)) {
      this.host.superseded(e);
      return;
    }
    if (e.retries >= RETRY_ATTEMPTS) {
      this.host.exhausted(e, err);
      return;
    }
    const w: Waiting = { entry: e, error: err, timer: null, held: false };
    this.waiting.push(w);
    const delay = jitteredDelay(e.retries, RETRY_INITIAL_MS, RETRY_MAX_MS, 2, this.host.random);
    w.timer = this.host.clock.setTimeout(() => this.fire(w), delay);
  }

  private stale(e: Entry): boolean {
    const m = e.message;
    if (m.kind === "presence") return e.id !== this.latestPresence;
    if (m.signal?.case === "description") return this.lastDescription.get(m.to) !== e.id;
    return (this.sdpSessions.get(m.to) ?? null) !== e.sdpSession;
  }

  private fire(w: Waiting): void {
    w.timer = null;
    const e = w.entry;
    const to = receiver(e);
    // A candidate goes after the retry of a description numbered before it.
    if (to !== null && !isDescription(e) && this.descriptionWaitingBefore(to, e.seq)) {
      w.held = true;
      return;
    }
    this.drop(w);
    if (this.stale(e)) {
      this.host.superseded(e);
      if (to !== null && isDescription(e)) this.release(to);
      return;
    }
    const followers = to !== null && isDescription(e) ? this.followers(to, e.seq, w.error) : [];
    this.host.resend(e, e.retries + 1, w.error);
    for (const f of followers) {
      if (this.stale(f.entry)) this.host.superseded(f.entry);
      else this.host.resend(f.entry, f.retries, f.error);
    }
  }

  private descriptionWaitingBefore(to: string, seq: bigint): boolean {
    return this.waiting.some((w) => receiver(w.entry) === to && isDescription(w.entry) && w.entry.seq < seq);
  }

  /**
   * The candidates to `to` numbered after `seq`, which go again after the
   * description being re-sent: refused ones waiting for their own re-send
   * (counted as a retry) and remembered ones (relayed, but ahead of the
   * description; a second copy is harmless). Taken out of the book: a late
   * refusal of one of them is then not retried twice.
   */
  private followers(to: string, seq: bigint, error: ServerError): { entry: Entry; retries: number; error: ServerError }[] {
    const out: { entry: Entry; retries: number; error: ServerError }[] = [];
    for (const w of [...this.waiting]) {
      if (!isCandidateTo(w.entry, to) || w.entry.seq <= seq) continue;
      this.drop(w);
      out.push({ entry: w.entry, retries: w.entry.retries + 1, error: w.error });
    }
    for (const e of [...this.entries.values()]) {
      if (!isCandidateTo(e, to) || e.seq <= seq) continue;
      this.entries.delete(e.id);
      // Not refused itself: the description's refusal is what a report of
      // a failed re-send would name.
      out.push({ entry: e, retries: e.retries, error });
    }
    return out.sort((a, b) => (a.entry.seq < b.entry.seq ? -1 : 1));
  }

  /** Candidates held for a description to `to` that will not be re-sent: their turn now. */
  private release(to: string): void {
    for (const w of this.waiting.filter((x) => x.held && receiver(x.entry) === to)) {
      w.held = false;
      this.fire(w);
    }
  }

  private drop(w: Waiting): void {
    if (w.timer !== null) this.host.clock.clearTimeout(w.timer);
    w.timer = null;
    this.waiting = this.waiting.filter((x) => x !== w);
  }

  private forget(which: (e: Sent) => boolean): void {
    for (const w of this.waiting.filter((x) => which(x.entry))) this.drop(w);
    for (const [id, e] of this.entries) if (which(e)) this.entries.delete(id);
  }

  private prune(): void {
    const now = this.host.clock.now();
    for (const [id, e] of this.entries) {
      const expired = e.acceptedAt !== null && now - e.acceptedAt >= RETAIN_MS;
      if (!expired && this.entries.size <= RETAIN_MAX) break;
      this.entries.delete(id);
    }
  }
}
