/**
 * Reconnect delays: exponential growth capped at `maxMs`, with "equal
 * jitter" (half the delay fixed, half random) so that a room full of clients
 * dropped by one server restart does not reconnect in lockstep, while no
 * client retries immediately in a tight loop.
 */
export interface BackoffOptions {
  /** First delay before jitter. */
  initialMs?: number;
  /** Upper bound of any delay. */
  maxMs?: number;
  /** Growth per attempt. */
  factor?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 500;
    this.maxMs = opts.maxMs ?? 15_000;
    this.factor = opts.factor ?? 2;
    this.random = opts.random ?? Math.random;
  }

  /** Attempts made since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt; counts the attempt. */
  next(): number {
    const delay = jitteredDelay(this.attempt, this.initialMs, this.maxMs, this.factor, this.random);
    this.attempt += 1;
    return delay;
  }

  /** Called once a connection is established and joined/resumed. */
  reset(): void {
    this.attempt = 0;
  }
}

/**
 * The delay before retry number `attempt` (0 for the first): `initialMs`
 * grown by `factor` per attempt, capped at `maxMs`, with equal jitter.
 */
export function jitteredDelay(attempt: number, initialMs: number, maxMs: number, factor: number, random: () => number): number {
  const ceiling = Math.min(maxMs, initialMs * factor ** attempt);
  const half = ceiling / 2;
  return Math.round(half + random() * half);
}
