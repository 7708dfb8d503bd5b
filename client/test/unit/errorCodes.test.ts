import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode, ErrorCodeSchema } from "@switchboard/signaling/proto";
import { errorCodeFromName, errorCodeName } from "@switchboard/signaling";

test("error codes map to and from the protocol's names", () => {
  assert.equal(errorCodeName(ErrorCode.not_found), "not_found");
  assert.equal(errorCodeName(ErrorCode.invalid_utf8), "invalid_utf8");
  assert.equal(errorCodeFromName("rate_limited"), ErrorCode.rate_limited);
  for (const v of ErrorCodeSchema.values) {
    if (v.number === ErrorCode.error_code_unspecified) continue;
    assert.equal(errorCodeFromName(errorCodeName(v.number)), v.number, v.name);
  }
});

test("no code has no name, and an unknown name no code", () => {
  assert.equal(errorCodeName(ErrorCode.error_code_unspecified), "");
  assert.equal(errorCodeName(999 as ErrorCode), "");
  assert.equal(errorCodeFromName(""), undefined);
  assert.equal(errorCodeFromName("error_code_unspecified"), undefined);
  assert.equal(errorCodeFromName("brand_new_code"), undefined);
  // Not the enum object's other keys.
  assert.equal(errorCodeFromName("toString"), undefined);
  assert.equal(errorCodeFromName("10"), undefined);
});
