/**
 * Resume bookkeeping. Every session-scoped ServerMessage carries a seq
 * (1 for Joined, then +1 each, never skipping); after a resume the server
 * replays everything after the `lastSeq` we report, so frames we already
 * processed may arrive twice and must be dropped. seq 0 marks
 * connection-scoped replies (Pong, Resumed, pre-session errors): always
 * delivered, never counted.
 */
export type SeqVerdict = "deliver" | "duplicate";

export class SeqTracker {
  private last = 0n;
  private gapCount = 0;

  /** Highest seq processed in this session (0 before Joined). */
  get lastSeq(): bigint {
    return this.last;
  }

  /** How many times a seq jumped ahead by more than one (should be 0). */
  get gaps(): number {
    return this.gapCount;
  }

  /** Decides whether a frame is new, and records it if so. */
  accept(seq: bigint): SeqVerdict {
    if (seq === 0n) return "deliver";
    if (seq <= this.last) return "duplicate";
    if (seq !== this.last + 1n) this.gapCount += 1;
    this.last = seq;
    return "deliver";
  }

  /** Continues a session from an earlier page at its last seq. */
  restore(seq: bigint): void {
    this.last = seq > 0n ? seq : 0n;
    this.gapCount = 0;
  }

  /** A fresh Join starts a new session numbered from 1. */
  reset(): void {
    this.last = 0n;
    this.gapCount = 0;
  }
}
