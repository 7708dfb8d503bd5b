import { test } from "node:test";
import assert from "node:assert/strict";
import { roomSize } from "../../src/ui/roomSize";

test("shows the count against the room's limit", () => {
  assert.deepEqual(roomSize(3, 8), { text: "3 of 8 participants", full: false, fullText: null });
});

test("at the limit the room says plainly that it is full", () => {
  const v = roomSize(8, 8);
  assert.equal(v.text, "8 of 8 participants");
  assert.equal(v.full, true);
  assert.match(v.fullText ?? "", /room is full/i);
});

test("over the limit (a stale count) is still full", () => {
  assert.equal(roomSize(9, 8).full, true);
});

test("an unknown limit (0 or missing) shows just the count", () => {
  assert.deepEqual(roomSize(1, 0), { text: "1 participant", full: false, fullText: null });
  assert.deepEqual(roomSize(2, undefined), { text: "2 participants", full: false, fullText: null });
});

test("a limit of one is singular", () => {
  assert.equal(roomSize(1, 1).text, "1 of 1 participant");
  assert.equal(roomSize(1, 1).full, true);
});
