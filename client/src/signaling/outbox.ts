/**
 * Exactly-once sending. Messages the room must see (signal, updatePresence)
 * carry `ClientMessage.seq`: 1 for the first numbered message of a session,
 * then +1 each, continuing across resumes and restarting at 1 with every
 * new session (a fresh Join). Each one stays here, as the exact frame that
 * was (or will be) sent, until a connection-scoped `Accepted { seq }` covers
 * it (cumulative: everything with seq <= Accepted.seq). After a resume the
 * client sends what is still here again, in order, byte for byte the same
 * (same id, same seq); the server drops what it already accepted by
 * (session, seq). Join, Resume, Ping and Leave are never numbered.
 */
import { encodeClientMessage, type ClientMessageInit } from "./codec.ts";

/** At most this many numbered messages wait for Accepted. */
export const OUTBOX_MAX_MESSAGES = 1024;
/** At most this many bytes of encoded frames wait for Accepted (1 MiB). */
export const OUTBOX_MAX_BYTES = 1024 * 1024;

/**
 * Thrown (by `sendSignal`; `updatePresence` rejects with it) for a message
 * that would push the outbox past its bound. The message is not numbered,
 * not sent and not kept; everything already in the outbox stays, so the
 * numbering has no gap and nothing accepted so far is lost.
 */
export class OutboxFullError extends Error {
  constructor(
    readonly messages: number,
    readonly bytes: number,
  ) {
    super(
      `outbox full: ${messages} messages / ${bytes} bytes not yet accepted ` +
        `(limits ${OUTBOX_MAX_MESSAGES} messages, ${OUTBOX_MAX_BYTES} bytes)`,
    );
    this.name = "OutboxFullError";
  }
}

/** One numbered message, as the text frame that goes on the wire. */
export interface OutboxEntry {
  readonly seq: bigint;
  readonly id: number;
  readonly frame: string;
  readonly bytes: number;
}

const utf8 = new TextEncoder();

export class Outbox {
  private entries: OutboxEntry[] = [];
  private next = 1n;
  private total = 0;

  /** Numbered messages not yet covered by an Accepted. */
  get size(): number {
    return this.entries.length;
  }

  /** Encoded size of those messages, in bytes. */
  get bytes(): number {
    return this.total;
  }

  /** The seq the next numbered message gets. */
  get nextSeq(): bigint {
    return this.next;
  }

  /** What a resume must send again, oldest first (a copy). */
  pending(): OutboxEntry[] {
    return [...this.entries];
  }

  /**
   * Numbers a message and keeps it until accepted; returns the entry whose
   * frame is to be sent. Throws FrameTooLargeError (frame over the server's
   * limit) or OutboxFullError; in both cases nothing is numbered or kept.
   */
  push(msg: ClientMessageInit): OutboxEntry {
    const seq = this.next;
    const frame = encodeClientMessage({ ...msg, seq });
    const bytes = utf8.encode(frame).byteLength;
    if (this.entries.length + 1 > OUTBOX_MAX_MESSAGES || this.total + bytes > OUTBOX_MAX_BYTES) {
      throw new OutboxFullError(this.entries.length, this.total);
    }
    const entry: OutboxEntry = { seq, id: msg.id ?? 0, frame, bytes };
    this.entries.push(entry);
    this.total += bytes;
    this.next = seq + 1n;
    return entry;
  }

  /** Accepted { seq }: drops every entry with seq <= `seq`; returns how many. */
  accept(seq: bigint): number {
    let n = 0;
    for (const e of this.entries) {
      if (e.seq > seq) break;
      this.total -= e.bytes;
      n += 1;
    }
    if (n > 0) this.entries = this.entries.slice(n);
    return n;
  }

  /**
   * Continues the numbering of a session sent from an earlier page (a
   * reload): the server drops numbers it already accepted as duplicates.
   */
  restore(nextSeq: bigint): void {
    this.reset();
    if (nextSeq > 1n) this.next = nextSeq;
  }

  /** A new session: nothing to resend, numbering restarts at 1. */
  reset(): void {
    this.entries = [];
    this.total = 0;
    this.next = 1n;
  }
}
