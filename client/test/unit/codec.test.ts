import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_FRAME_BYTES,
  FrameTooLargeError,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
} from "@switchboard/signaling";
import { ErrorCode, LeaveReason, SessionDescription_Type } from "@switchboard/signaling/proto";

test("Join encodes as canonical JSON with lowerCamelCase fields", () => {
  const text = encodeClientMessage({
    id: 1,
    message: { case: "join", value: { token: "jwt", attributes: { audio: "on" } } },
  });
  assert.deepEqual(JSON.parse(text), { id: 1, join: { token: "jwt", attributes: { audio: "on" } } });
});

test("Resume carries lastSeq as a uint64 string", () => {
  const text = encodeClientMessage({
    id: 7,
    message: { case: "resume", value: { sessionId: "ab", resumeToken: "rt", lastSeq: 42n } },
  });
  assert.deepEqual(JSON.parse(text), {
    id: 7,
    resume: { sessionId: "ab", resumeToken: "rt", lastSeq: "42" },
  });
});

test("signals use enum names and optional candidate fields", () => {
  const offer = encodeClientMessage({
    id: 2,
    message: {
      case: "signal",
      value: { to: "bob", kind: { case: "description", value: { type: SessionDescription_Type.OFFER, sdp: "v=0\r\n" } } },
    },
  });
  assert.deepEqual(JSON.parse(offer), {
    id: 2,
    signal: { to: "bob", description: { type: "TYPE_OFFER", sdp: "v=0\r\n" } },
  });
  const cand = encodeClientMessage({
    message: {
      case: "signal",
      value: { to: "bob", kind: { case: "candidate", value: { candidate: "candidate:1", sdpMLineIndex: 0 } } },
    },
  });
  // sdpMLineIndex 0 is explicitly set (proto3 optional), so it is present.
  assert.deepEqual(JSON.parse(cand), { signal: { to: "bob", candidate: { candidate: "candidate:1", sdpMLineIndex: 0 } } });
  const end = encodeClientMessage({
    message: { case: "signal", value: { to: "bob", kind: { case: "endOfCandidates", value: {} } } },
  });
  assert.deepEqual(JSON.parse(end), { signal: { to: "bob", endOfCandidates: {} } });
});

test("server frames decode, seq as bigint, unknown fields ignored", () => {
  const msg = decodeServerMessage(
    '{"seq":"3","signal":{"from":"alice","to":"bob","description":{"type":"TYPE_ANSWER","sdp":"v=0"}},"futureField":1}',
  );
  assert.equal(msg.seq, 3n);
  assert.equal(msg.message.case, "signal");
  if (msg.message.case !== "signal") return;
  assert.equal(msg.message.value.from, "alice");
  assert.equal(msg.message.value.kind.case, "description");
  if (msg.message.value.kind.case !== "description") return;
  assert.equal(msg.message.value.kind.value.type, SessionDescription_Type.ANSWER);
});

test("a Joined frame decodes with participants, ICE servers and keepalive", () => {
  const msg = decodeServerMessage(
    JSON.stringify({
      seq: "1",
      joined: {
        requestId: 1,
        sessionId: "0123",
        resumeToken: "rt",
        room: "demo",
        self: { id: "alice-1", name: "Alice" },
        participants: [{ id: "bob-2", name: "Bob", polite: true, attributes: { audio: "off" }, joinedAtMs: "1700000000000" }],
        iceServers: [{ urls: ["stun:stun.example:3478"] }],
        keepalive: { intervalMs: 15000, timeoutMs: 45000 },
        limits: { maxMessageBytes: 65536 },
      },
    }),
  );
  assert.equal(msg.message.case, "joined");
  if (msg.message.case !== "joined") return;
  const j = msg.message.value;
  assert.equal(j.participants[0]?.polite, true);
  assert.equal(j.participants[0]?.attributes.audio, "off");
  assert.equal(j.participants[0]?.joinedAtMs, 1700000000000n);
  assert.deepEqual(j.iceServers[0]?.urls, ["stun:stun.example:3478"]);
  assert.equal(j.keepalive?.intervalMs, 15000);
});

test("error codes and leave reasons are enums carried by name, as the protocol's strings", () => {
  const err = decodeServerMessage('{"error":{"requestId":4,"code":"not_found","message":"no such peer"}}');
  assert.equal(err.message.case, "error");
  if (err.message.case !== "error") return;
  assert.equal(err.message.value.code, ErrorCode.not_found);
  assert.equal(err.message.value.requestId, 4);
  const left = decodeServerMessage('{"seq":"7","participantLeft":{"participantId":"bob","reason":"disconnected"}}');
  assert.equal(left.message.case, "participantLeft");
  if (left.message.case !== "participantLeft") return;
  assert.equal(left.message.value.reason, LeaveReason.disconnected);
  // And the other way: the same JSON the edge writes.
  assert.deepEqual(JSON.parse(encodeServerMessage({ message: { case: "error", value: { code: ErrorCode.token_revoked } } })), {
    error: { code: "token_revoked" },
  });
  assert.deepEqual(
    JSON.parse(
      encodeServerMessage({ seq: 3n, message: { case: "participantLeft", value: { participantId: "zed", reason: LeaveReason.replaced } } }),
    ),
    { seq: "3", participantLeft: { participantId: "zed", reason: "replaced" } },
  );
});

test("a code or reason added by a newer server decodes as unspecified", () => {
  const err = decodeServerMessage('{"error":{"code":"brand_new_code","message":"m"}}');
  assert.equal(err.message.case === "error" && err.message.value.code, ErrorCode.error_code_unspecified);
  const left = decodeServerMessage('{"participantLeft":{"participantId":"bob","reason":"kicked"}}');
  assert.equal(left.message.case === "participantLeft" && left.message.value.reason, LeaveReason.leave_reason_unspecified);
});

test("a malformed frame throws instead of yielding a partial message", () => {
  assert.throws(() => decodeServerMessage('{"seq":"x"}'));
  assert.throws(() => decodeServerMessage("not json"));
});

test("frames over 64 KiB are refused before sending", () => {
  const sdp = "a".repeat(MAX_FRAME_BYTES);
  assert.throws(
    () =>
      encodeClientMessage({
        message: {
          case: "signal",
          value: { to: "bob", kind: { case: "description", value: { type: SessionDescription_Type.OFFER, sdp } } },
        },
      }),
    FrameTooLargeError,
  );
});
