import { test } from "node:test";
import assert from "node:assert/strict";
import { classifyClose, closeErrorCode } from "../../src/signaling/close";

test("the error code is read from the start of the close reason", () => {
  assert.equal(closeErrorCode("session_replaced: joined elsewhere"), "session_replaced");
  assert.equal(closeErrorCode("shutting_down"), "shutting_down");
  assert.equal(closeErrorCode(""), "");
});

test("transient closes reconnect (and resume)", () => {
  for (const [code, reason] of [
    [1006, ""],
    [1001, ""],
    [1008, "rate_limited: slow down"],
    [1008, "slow_consumer"],
    [1011, "internal"],
    [1012, "shutting_down: draining"],
    [1013, "unavailable"],
    [4408, "keepalive_timeout"],
  ] as const) {
    assert.equal(classifyClose({ code, reason }, false), "reconnect", `${code} ${reason}`);
  }
});

test("session_replaced never reconnects", () => {
  assert.equal(classifyClose({ code: 4409, reason: "session_replaced" }, false), "stop");
  assert.equal(classifyClose({ code: 4409, reason: "session_replaced" }, true), "stop");
  assert.equal(classifyClose({ code: 4409, reason: "" }, false), "stop");
});

test("not_joined / already_joined start a fresh session", () => {
  assert.equal(classifyClose({ code: 4409, reason: "not_joined" }, false), "rejoin");
  assert.equal(classifyClose({ code: 4409, reason: "already_joined" }, false), "rejoin");
});

test("auth and request errors stop, except while resuming", () => {
  assert.equal(classifyClose({ code: 4401, reason: "unauthenticated" }, false), "stop");
  assert.equal(classifyClose({ code: 4404, reason: "not_found" }, false), "stop");
  assert.equal(classifyClose({ code: 4400, reason: "bad_request" }, false), "stop");
  assert.equal(classifyClose({ code: 4403, reason: "origin_not_allowed" }, true), "stop");
  // A resume the server cannot honour falls back to Join.
  assert.equal(classifyClose({ code: 4404, reason: "not_found" }, true), "rejoin");
  assert.equal(classifyClose({ code: 4401, reason: "unauthenticated" }, true), "rejoin");
  assert.equal(classifyClose({ code: 4400, reason: "unknown_message" }, true), "rejoin");
});

test("an expired token asks for a new one; a normal close stops", () => {
  assert.equal(classifyClose({ code: 4401, reason: "token_expired" }, false), "refresh-token");
  assert.equal(classifyClose({ code: 1000, reason: "" }, false), "stop");
});
