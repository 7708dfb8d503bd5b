import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeClientMessage } from "@switchboard/signaling";
import { OUTBOX_MAX_MESSAGES, Outbox, OutboxFullError } from "../../src/signaling/outbox";

const eoc = { message: { case: "signal" as const, value: { to: "bob", kind: { case: "endOfCandidates" as const, value: {} } } } };

test("push numbers from 1 and encodes seq and id into the frame", () => {
  const o = new Outbox();
  const a = o.push(eoc);
  const b = o.push({ ...eoc, id: 7 });
  assert.deepEqual([a.seq, b.seq], [1n, 2n]);
  const m = decodeClientMessage(b.frame);
  assert.equal(m.seq, 2n);
  assert.equal(m.id, 7);
  assert.equal(b.id, 7);
  assert.equal(o.size, 2);
  assert.equal(o.bytes, a.bytes + b.bytes);
  assert.equal(o.nextSeq, 3n);
});

test("accept is cumulative and ignores stale seqs", () => {
  const o = new Outbox();
  for (let i = 0; i < 5; i++) o.push(eoc);
  assert.equal(o.accept(3n), 3);
  assert.deepEqual(o.pending().map((e) => e.seq), [4n, 5n]);
  assert.equal(o.accept(1n), 0);
  assert.equal(o.accept(99n), 2);
  assert.equal(o.size, 0);
  assert.equal(o.bytes, 0);
  assert.equal(o.push(eoc).seq, 6n, "accepting does not renumber");
});

test("reset restarts numbering at 1 and forgets everything", () => {
  const o = new Outbox();
  o.push(eoc);
  o.push(eoc);
  o.reset();
  assert.equal(o.size, 0);
  assert.equal(o.bytes, 0);
  assert.equal(o.push(eoc).seq, 1n);
});

test("a refused push takes no seq and keeps what is there", () => {
  const o = new Outbox();
  for (let i = 0; i < OUTBOX_MAX_MESSAGES; i++) o.push(eoc);
  assert.throws(() => o.push(eoc), (e: unknown) => e instanceof OutboxFullError && e.messages === OUTBOX_MAX_MESSAGES);
  assert.equal(o.size, OUTBOX_MAX_MESSAGES);
  o.accept(1n);
  assert.equal(o.push(eoc).seq, BigInt(OUTBOX_MAX_MESSAGES) + 1n);
});
