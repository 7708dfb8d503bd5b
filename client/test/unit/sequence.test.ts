import { test } from "node:test";
import assert from "node:assert/strict";
import { SeqTracker } from "../../src/signaling/sequence";

test("new seqs are delivered and recorded", () => {
  const s = new SeqTracker();
  assert.equal(s.accept(1n), "deliver");
  assert.equal(s.accept(2n), "deliver");
  assert.equal(s.lastSeq, 2n);
});

test("replayed seqs at or below lastSeq are duplicates", () => {
  const s = new SeqTracker();
  for (const n of [1n, 2n, 3n]) s.accept(n);
  assert.equal(s.accept(2n), "duplicate");
  assert.equal(s.accept(3n), "duplicate");
  assert.equal(s.lastSeq, 3n);
  assert.equal(s.accept(4n), "deliver");
});

test("seq 0 (connection-scoped) is always delivered and never counted", () => {
  const s = new SeqTracker();
  s.accept(5n);
  assert.equal(s.accept(0n), "deliver");
  assert.equal(s.accept(0n), "deliver");
  assert.equal(s.lastSeq, 5n);
});

test("gaps are delivered but counted", () => {
  const s = new SeqTracker();
  s.accept(1n);
  assert.equal(s.accept(4n), "deliver");
  assert.equal(s.gaps, 1);
});

test("reset starts a new session from seq 1", () => {
  const s = new SeqTracker();
  s.accept(1n);
  s.accept(2n);
  s.reset();
  assert.equal(s.lastSeq, 0n);
  assert.equal(s.accept(1n), "deliver");
});
