/**
 * The words and decisions of the call around moves: what the live region
 * says when someone moves away, which error frames become a notice after
 * our own move, and the banner that says where we are now.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ErrorCode, ErrorSchema, LeaveReason } from "@switchboard/signaling/proto";
import { MOVE_SETTLE_MS, errorNotice, leftText } from "../../src/rtc/call";
import { PUBLISH_ALLOWED } from "../../src/rtc/publishPermission";
import { callStatus, movedText } from "../../src/ui/callStatus";

test("someone who was moved 'moved to another room'; every other reason 'left'", () => {
  assert.equal(leftText("Bob", LeaveReason.moved), "Bob moved to another room");
  assert.equal(leftText("Bob", LeaveReason.left), "Bob left");
  assert.equal(leftText("Bob", LeaveReason.removed), "Bob left");
  assert.equal(leftText("", LeaveReason.moved), "Someone moved to another room");
});

const err = (code: ErrorCode, requestId = 0) => create(ErrorSchema, { code, requestId, message: "gone" });

test("after our move, not_found for a signal still on its way to the old room is no news; later it is", () => {
  assert.equal(errorNotice(err(ErrorCode.not_found), 200), null);
  assert.equal(errorNotice(err(ErrorCode.not_found), MOVE_SETTLE_MS - 1), null);
  assert.equal(errorNotice(err(ErrorCode.not_found), MOVE_SETTLE_MS)?.kind, "error");
  assert.equal(errorNotice(err(ErrorCode.not_found), null)?.kind, "error", "never moved: as before");
  assert.deepEqual(errorNotice(err(ErrorCode.bad_request), 200), {
    kind: "error",
    code: ErrorCode.bad_request,
    detail: "bad_request: gone",
  }, "other errors are not hidden by a move");
  assert.equal(errorNotice(err(ErrorCode.not_found, 7), null), null, "an answer to a request is handled where it was made");
});

const joined = { status: "joined" as const, attempt: 0, retryInMs: undefined, room: "breakout-1", meshLoad: null, publish: PUBLISH_ALLOWED };

test("moved by the backend: one passing banner that names the room; the indicator stays Connected", () => {
  const s = callStatus({ ...joined, notice: { kind: "moved", room: "breakout-1", by: "backend" } }, { online: true });
  assert.deepEqual(s.indicator, { state: "connected", text: "Connected" });
  assert.equal(s.banner?.state, "moved");
  assert.equal(s.banner?.text, "You were moved to breakout-1.");
  assert.equal(s.banner?.dismissible, undefined, "it passes by itself");
});

test("a new session back in the token's room says where we are, not just 'Reconnected.'", () => {
  assert.equal(movedText("standup", "rejoin"), "Reconnected. You're back in standup.");
  const s = callStatus({ ...joined, room: "standup", notice: { kind: "moved", room: "standup", by: "rejoin" } }, { online: true });
  assert.equal(s.banner?.text, "Reconnected. You're back in standup.");
});

test("losing the connection right after a move: the reconnecting banner wins", () => {
  const s = callStatus({ ...joined, status: "reconnecting", notice: { kind: "moved", room: "breakout-1", by: "backend" } }, { online: true });
  assert.equal(s.banner?.state, "reconnecting");
});
