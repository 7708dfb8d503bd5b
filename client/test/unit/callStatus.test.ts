import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ErrorCode, ErrorSchema } from "@switchboard/signaling/proto";
import { errorNotice, undeliveredNotice } from "../../src/rtc/call";
import type { MeshLoadWarning } from "../../src/rtc/meshLoad";
import { PUBLISH_ALLOWED } from "../../src/rtc/publishPermission";
import { UNDELIVERED_TEXT, callStatus, endedText } from "../../src/ui/callStatus";

const base = { status: "joined" as const, attempt: 0, retryInMs: undefined, notice: null, room: "demo", meshLoad: null, publish: PUBLISH_ALLOWED };
const CODE = /\b[a-z]+_[a-z_]+\b|\b4\d{3}\b|unauthenticated/;

test("joined with nothing to say: Connected, no banner", () => {
  assert.deepEqual(callStatus(base, { online: true }), { indicator: { state: "connected", text: "Connected" }, banner: null });
});

test("offline wins over a socket that still looks joined: indicator and banner agree", () => {
  const s = callStatus(base, { online: false });
  assert.equal(s.indicator.state, "offline");
  assert.equal(s.banner?.state, "offline");
});

test("reconnecting: the counters go to details, the words promise nothing", () => {
  const s = callStatus({ ...base, status: "reconnecting", attempt: 3, retryInMs: 4000 }, { online: true });
  assert.equal(s.indicator.text, "Reconnecting");
  assert.doesNotMatch(s.banner?.text ?? "", /attempt|\d/);
  assert.doesNotMatch(s.banner?.text ?? "", /continues/i);
  assert.equal(s.banner?.detail, "attempt 3, next try in 4 s");
});

test("an error notice is worded for a person; the code is a detail", () => {
  const s = callStatus(
    { ...base, notice: { kind: "error", code: ErrorCode.rate_limited, detail: "rate_limited: too many messages" } },
    { online: true },
  );
  assert.equal(s.indicator.text, "Connected");
  assert.equal(s.banner?.tone, "error");
  assert.doesNotMatch(s.banner?.text ?? "", CODE);
  assert.equal(s.banner?.detail, "rate_limited: too many messages");
});

test("the ended screen's words carry no codes", () => {
  for (const reason of [
    "unauthenticated: unknown signing key",
    "session_replaced",
    "participant_removed: kicked",
    "too_many_sessions: this identity holds its maximum of 16 sessions at once; leave one first",
    "internal",
    "",
  ]) {
    const w = endedText(reason);
    assert.doesNotMatch(`${w.title} ${w.text}`, CODE, reason);
  }
  assert.match(endedText("session_replaced").title, /somewhere else/);
});

test("too_many_sessions: the ended screen says to leave another call; no retry is promised", () => {
  const w = endedText("too_many_sessions: this identity holds its maximum of 16 sessions at once; leave one first");
  assert.equal(w.title, "You're in too many calls");
  assert.equal(w.text, "You're already in the maximum number of calls at once. Leave another call, then try again.");
  assert.notEqual(w.text, endedText("").text, "not the lost-connection words");
  const s = callStatus(
    { ...base, notice: { kind: "error", code: ErrorCode.too_many_sessions, detail: "too_many_sessions: leave one first" } },
    { online: true },
  );
  assert.equal(s.banner?.text, w.text);
  assert.doesNotMatch(s.banner?.text ?? "", CODE);
});

const strained: MeshLoadWarning = { cause: "device", worstFps: 9, sourceFps: 30, limitation: "cpu", peers: 4, video: "camera" };

test("the mesh-load warning: words for a person, the numbers in details, a button that follows the advice", () => {
  const s = callStatus({ ...base, meshLoad: strained }, { online: true });
  assert.equal(s.indicator.text, "Connected", "advice, not trouble");
  assert.equal(s.banner?.state, "strained");
  assert.equal(s.banner?.text, "This device is struggling to send your video to 4 people. Turning off your camera may help.");
  assert.doesNotMatch(s.banner?.text ?? "", CODE);
  assert.doesNotMatch(s.banner?.text ?? "", /fps|cpu/);
  assert.equal(s.banner?.detail, "9 fps sent of 30 captured on the slowest of 4 connections; quality limited by cpu");
  assert.deepEqual(s.banner?.action, { kind: "camera-off", label: "Turn off camera" });
  assert.equal(s.banner?.dismissible, true);
});

test("the mesh-load warning names the connection, and the screen share when that is what we send", () => {
  const s = callStatus({ ...base, meshLoad: { ...strained, cause: "connection", limitation: "bandwidth", video: "screen", worstFps: null } }, { online: true });
  assert.equal(s.banner?.text, "Your connection is struggling to send your video to 4 people. Stopping your screen share may help.");
  assert.deepEqual(s.banner?.action, { kind: "stop-share", label: "Stop sharing" });
  assert.match(s.banner?.detail ?? "", /^frame rate not reported/);
});

test("the mesh-load warning gives way to every other banner (one banner at a time)", () => {
  const withLoad = { ...base, meshLoad: strained };
  assert.equal(callStatus(withLoad, { online: false }).banner?.state, "offline");
  assert.equal(callStatus({ ...withLoad, status: "reconnecting", attempt: 1 }, { online: true }).banner?.state, "reconnecting");
  assert.equal(callStatus({ ...withLoad, notice: { kind: "resumed" } }, { online: true }).banner?.state, "resumed");
  assert.equal(
    callStatus({ ...withLoad, notice: { kind: "error", code: ErrorCode.rate_limited, detail: "" } }, { online: true }).banner?.state,
    "error",
  );
  assert.equal(callStatus({ ...withLoad, status: "closed" }, { online: true }).banner, null);
});

test("what signaling could not send (a message rate): one passing 'busy' banner; what was lost goes to the details", () => {
  const roomRate = create(ErrorSchema, {
    requestId: 9,
    code: ErrorCode.rate_limited,
    message: "message dropped: this room is over its 1000 messages a second; retry shortly",
    retryable: true,
  });
  const notice = undeliveredNotice({ message: "signal", to: "bob", signal: "offer", attempts: 7, error: roomRate });
  assert.deepEqual(notice, {
    kind: "undelivered",
    detail: "offer to bob not sent after 7 attempts; rate_limited: message dropped: this room is over its 1000 messages a second; retry shortly",
  });
  const s = callStatus({ ...base, notice }, { online: true });
  assert.equal(s.indicator.text, "Connected", "the call goes on");
  assert.equal(s.banner?.state, "busy");
  assert.equal(s.banner?.tone, "warn");
  assert.equal(s.banner?.text, "The call is busy; some updates could not be sent.");
  assert.equal(s.banner?.text, UNDELIVERED_TEXT);
  assert.doesNotMatch(s.banner?.text ?? "", CODE);
  assert.equal(s.banner?.dismissible, undefined, "it passes by itself");
  const edge = create(ErrorSchema, { code: ErrorCode.rate_limited, message: "message dropped: rate exceeded", retryable: true });
  assert.equal(
    undeliveredNotice({ message: "unknown", attempts: 1, error: edge }).detail,
    "a message (which one is unknown) not sent; rate_limited: message dropped: rate exceeded",
  );
  assert.match(undeliveredNotice({ message: "presence", attempts: 7, error: roomRate }).detail, /^presence update not sent after 7 attempts/);
  // The error frame itself is no second notice ("That was too fast" would
  // ask the person to retry what the client retries or reports).
  assert.equal(errorNotice(edge, null), null);
  assert.equal(callStatus({ ...base, status: "reconnecting", attempt: 1, notice }, { online: true }).banner?.state, "reconnecting");
});
