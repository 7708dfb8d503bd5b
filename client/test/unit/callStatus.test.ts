import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode } from "@switchboard/signaling/proto";
import { callStatus, endedText } from "../../src/ui/callStatus";

const base = { status: "joined" as const, attempt: 0, retryInMs: undefined, notice: null, room: "demo" };
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
  for (const reason of ["unauthenticated: unknown signing key", "session_replaced", "participant_removed: kicked", "internal", ""]) {
    const w = endedText(reason);
    assert.doesNotMatch(`${w.title} ${w.text}`, CODE, reason);
  }
  assert.match(endedText("session_replaced").title, /somewhere else/);
});
