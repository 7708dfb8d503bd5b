import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode, ErrorCodeSchema } from "@switchboard/signaling/proto";
import { classifyClose, closeErrorCode, type CloseAction } from "@switchboard/signaling";

test("the error code is read from the start of the close reason", () => {
  assert.equal(closeErrorCode("session_replaced: joined elsewhere"), ErrorCode.session_replaced);
  assert.equal(closeErrorCode("shutting_down"), ErrorCode.shutting_down);
  assert.equal(closeErrorCode("invalid_utf8: text frame is not valid utf-8"), ErrorCode.invalid_utf8);
  assert.equal(closeErrorCode(""), ErrorCode.error_code_unspecified);
  assert.equal(closeErrorCode("left"), ErrorCode.error_code_unspecified);
  assert.equal(closeErrorCode("brand_new_code: from a newer server"), ErrorCode.error_code_unspecified);
  assert.equal(closeErrorCode("error_code_unspecified"), ErrorCode.error_code_unspecified);
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
  assert.equal(classifyClose({ code: 1000, reason: "left" }, false), "stop");
});

test("a code this client does not know falls back to the close code", () => {
  const reason = "brand_new_code: from a newer server";
  assert.equal(classifyClose({ code: 1013, reason }, false), "reconnect");
  assert.equal(classifyClose({ code: 4404, reason }, false), "stop");
  assert.equal(classifyClose({ code: 4404, reason }, true), "rejoin");
  assert.equal(classifyClose({ code: 4403, reason }, false), "stop");
  // On 4409 a named conflict means the session is gone; an empty reason may
  // be session_replaced, so that one stays away.
  assert.equal(classifyClose({ code: 4409, reason }, false), "rejoin");
  assert.equal(classifyClose({ code: 4409, reason: "" }, false), "stop");
});

test("the limits on 4429 (room_full, too_many_sessions) are never retried automatically", () => {
  const reason = "too_many_sessions: this identity holds its maximum of 16 sessions at once; leave one first";
  assert.equal(classifyClose({ code: 4429, reason }, false), "stop");
  assert.equal(classifyClose({ code: 4429, reason }, true), "stop");
  // Every code on 4429 is such a limit: one this client does not know, or
  // none at all, stays away too.
  assert.equal(classifyClose({ code: 4429, reason: "brand_new_code: from a newer server" }, false), "stop");
  assert.equal(classifyClose({ code: 4429, reason: "" }, false), "stop");
});

/**
 * Every error code with the close code the server sends it with
 * (docs/protocol.md §8.1) and the action expected, [not resuming, resuming].
 * Typed by the enum's names, so a code added to the proto must be added
 * here, with its action, before this compiles (lint) or passes (below).
 */
type Name = Exclude<keyof typeof ErrorCode, "error_code_unspecified">;
const EXPECTED = {
  bad_request: [4400, "stop", "rejoin"],
  unknown_message: [4400, "stop", "rejoin"],
  message_too_large: [1009, "reconnect", "reconnect"],
  invalid_utf8: [1007, "stop", "stop"],
  protocol_error: [1002, "stop", "stop"],
  unauthenticated: [4401, "stop", "rejoin"],
  token_expired: [4401, "refresh-token", "refresh-token"],
  token_revoked: [4401, "stop", "rejoin"],
  permission_denied: [4403, "stop", "stop"],
  not_found: [4404, "stop", "rejoin"],
  not_joined: [4409, "rejoin", "rejoin"],
  already_joined: [4409, "rejoin", "rejoin"],
  room_full: [4429, "stop", "stop"],
  rate_limited: [1008, "reconnect", "reconnect"],
  slow_consumer: [1008, "reconnect", "reconnect"],
  keepalive_timeout: [4408, "reconnect", "reconnect"],
  session_replaced: [4409, "stop", "stop"],
  origin_not_allowed: [4403, "stop", "stop"],
  unavailable: [1013, "reconnect", "reconnect"],
  shutting_down: [1012, "reconnect", "reconnect"],
  internal: [1011, "reconnect", "reconnect"],
  participant_removed: [4410, "stop", "stop"],
  too_many_sessions: [4429, "stop", "stop"],
} as const satisfies Record<Name, readonly [number, CloseAction, CloseAction]>;

test("every ErrorCode has a decided close action", () => {
  const codes = ErrorCodeSchema.values.filter((v) => v.number !== ErrorCode.error_code_unspecified);
  assert.ok(codes.length > 0);
  for (const v of codes) {
    const row = (EXPECTED as Record<string, readonly [number, CloseAction, CloseAction] | undefined>)[v.name];
    assert.ok(row, `ErrorCode.${v.name} has no expected close action in this test: decide one`);
    const [code, plain, resuming] = row;
    const reason = `${v.name}: some message`;
    assert.equal(closeErrorCode(reason), v.number, `${v.name} is parsed from the reason`);
    assert.equal(classifyClose({ code, reason }, false), plain, `${code} ${v.name}`);
    assert.equal(classifyClose({ code, reason }, true), resuming, `${code} ${v.name} while resuming`);
    // The bare code, without ": message", reads the same.
    assert.equal(classifyClose({ code, reason: v.name }, false), plain, `${code} ${v.name} (bare)`);
  }
  const names = new Set(codes.map((v) => v.name));
  for (const name of Object.keys(EXPECTED)) assert.ok(names.has(name), `${name} is not an ErrorCode any more`);
});
