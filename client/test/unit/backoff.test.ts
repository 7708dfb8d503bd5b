import { test } from "node:test";
import assert from "node:assert/strict";
import { Backoff } from "../../src/signaling/backoff";

test("delays double from the initial value and stay within [ceiling/2, ceiling]", () => {
  const lows = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => 0 });
  const highs = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => 0.999999 });
  const lo = [1, 2, 3, 4, 5].map(() => lows.next());
  const hi = [1, 2, 3, 4, 5].map(() => highs.next());
  assert.deepEqual(lo, [50, 100, 200, 400, 800]);
  assert.deepEqual(hi, [100, 200, 400, 800, 1600]);
});

test("delays are capped at maxMs", () => {
  const b = new Backoff({ initialMs: 1000, maxMs: 5000, random: () => 0.999999 });
  const seen = Array.from({ length: 10 }, () => b.next());
  assert.equal(Math.max(...seen), 5000);
  assert.equal(seen[9], 5000);
});

test("jitter spreads clients apart", () => {
  let r = 0;
  const values = [0.1, 0.5, 0.9];
  const delays = values.map((v) => {
    r = v;
    return new Backoff({ initialMs: 1000, random: () => r }).next();
  });
  assert.deepEqual(delays, [550, 750, 950]);
  assert.equal(new Set(delays).size, 3);
});

test("reset starts over after a successful connection", () => {
  const b = new Backoff({ initialMs: 100, random: () => 0 });
  b.next();
  b.next();
  b.next();
  assert.equal(b.attempts, 3);
  b.reset();
  assert.equal(b.attempts, 0);
  assert.equal(b.next(), 50);
});
