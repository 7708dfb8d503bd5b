import assert from "node:assert";
import { createHmac, timingSafeEqual } from "node:crypto";

const TOLERANCE = 300; // seconds

/** Checks a Switchboard-Signature header against the raw request body (a Buffer). */
export function verify(secret, header, body, now = Date.now() / 1000) {
  const parts = Object.fromEntries(header.split(",").map((p) => p.split("=", 2)));
  const timestamp = Number(parts.t);
  if (!Number.isInteger(timestamp) || typeof parts.v1 !== "string") return false;
  if (Math.abs(now - timestamp) > TOLERANCE) return false; // a replay, or from the future
  const expected = createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest();
  const given = Buffer.from(parts.v1, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// The self-check CI runs (scripts/test.sh).
const body = Buffer.from("what do ya want for nothing?");
const header = "t=1800000000,v1=ab5a2e6f7ddd4f6783bae7a65618acf1b188b4ca973bbebbbdeb60024ee0f3f3";
assert.ok(verify("Jefe", header, body, 1800000010), "valid");
assert.ok(!verify("Jefe", header, Buffer.concat([body, Buffer.from(" ")]), 1800000010), "forged");
assert.ok(!verify("Jefe", header, body, 1800000400), "stale");
console.log("node ok");
