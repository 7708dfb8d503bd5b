/**
 * The signaling client's view of ourselves and of the room, as the
 * application's backend changes them (selfUpdated, roomUpdated), across a
 * resume, a rejoin and a reload; and offers the server refuses.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { SignalingClient, participantMayPublish } from "@switchboard/signaling";
import { ErrorCode, ParticipantSchema, SessionDescription_Type } from "@switchboard/signaling/proto";
import { flush } from "./fakes";
import { joinFirst, joinedFrame, reconnect, resumedFrame, setup } from "./signalingHarness";

const alice = (publish: boolean, name = "Alice") => ({
  id: "alice-1",
  name,
  attributes: { audio: "on" } as Record<string, string>,
  joinedAtMs: 1795638577514n,
  permissions: { publish },
});

function selfUpdatedFrame(seq: bigint, self: ReturnType<typeof alice>) {
  return { seq, message: { case: "selfUpdated" as const, value: { self } } };
}

function roomUpdatedFrame(seq: bigint, metadata: string) {
  return { seq, message: { case: "roomUpdated" as const, value: { metadata } } };
}

const offer = { case: "description" as const, value: { type: SessionDescription_Type.OFFER, sdp: "v=0 offer" } };
const answer = { case: "description" as const, value: { type: SessionDescription_Type.ANSWER, sdp: "v=0 answer" } };

test("Joined gives self with its permissions and the room's metadata", () => {
  const ctx = setup();
  assert.equal(ctx.client.mayPublish, true, "before any Joined: nothing refused yet");
  assert.equal(ctx.client.roomMetadata, "");
  joinFirst(ctx, { self: alice(true), roomMetadata: '{"topic":"retro"}' });
  assert.equal(ctx.client.self?.name, "Alice");
  assert.equal(ctx.client.self?.permissions?.publish, true);
  assert.equal(ctx.client.mayPublish, true);
  assert.equal(ctx.client.roomMetadata, '{"topic":"retro"}');
});

test("a viewer's token: Joined says publish false", () => {
  const ctx = setup();
  joinFirst(ctx, { self: alice(false) });
  assert.equal(ctx.client.mayPublish, false);
});

test("selfUpdated replaces self and is an event with what came before", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { self: alice(true) });
  s.push(selfUpdatedFrame(2n, alice(false, "Alice (viewer)")));
  const ev = ctx.events.selfUpdated?.[0];
  assert.ok(ev);
  assert.equal(ev.self.name, "Alice (viewer)");
  assert.equal(ev.self.permissions?.publish, false, 'permissions {} in JSON is publish false, not "unknown"');
  assert.equal(ev.previous?.name, "Alice");
  assert.equal(ctx.client.self?.name, "Alice (viewer)");
  assert.equal(ctx.client.mayPublish, false);
  s.push(selfUpdatedFrame(3n, alice(true, "Alice (viewer)")));
  assert.equal(ctx.client.mayPublish, true, "granted back");
  assert.equal(ctx.events.selfUpdated?.length, 2);
});

test("roomUpdated replaces the metadata and is an event", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { roomMetadata: "v1" });
  s.push(roomUpdatedFrame(2n, "v2"));
  assert.equal(ctx.client.roomMetadata, "v2");
  assert.deepEqual(ctx.events.roomUpdated, [{ metadata: "v2" }]);
  s.push(roomUpdatedFrame(3n, ""));
  assert.equal(ctx.client.roomMetadata, "", "cleared");
});

test("across a resume: self and metadata are kept, missed updates replayed once, duplicates dropped", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { self: alice(true), roomMetadata: "v1" });
  s.push(selfUpdatedFrame(2n, alice(false)));
  const s2 = reconnect(ctx, s);
  s2.push(resumedFrame(s2.last().id));
  assert.equal(ctx.client.mayPublish, false, "a resume does not repeat self: the client keeps it");
  assert.equal(ctx.client.roomMetadata, "v1");
  // The server replays from lastSeq: 2 again (a duplicate), then what we missed.
  s2.push(selfUpdatedFrame(2n, alice(false)));
  s2.push(roomUpdatedFrame(3n, "v2"));
  s2.push(selfUpdatedFrame(4n, alice(true, "Alice B")));
  assert.equal(ctx.events.selfUpdated?.length, 2, "the duplicate is not an event");
  assert.equal(ctx.client.roomMetadata, "v2");
  assert.equal(ctx.client.self?.name, "Alice B");
  assert.equal(ctx.client.mayPublish, true);
});

test("a rejoin (new session) starts again from its Joined: the token's grants and the room's metadata now", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { self: alice(true), roomMetadata: "v1" });
  s.push(selfUpdatedFrame(2n, alice(false, "Renamed")));
  const s2 = reconnect(ctx, s);
  s2.push({ seq: 0n, message: { case: "error", value: { requestId: s2.last().id, code: ErrorCode.not_found, message: "no such session" } } });
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s3 = ctx.sockets.latest;
  s3.open();
  assert.equal(s3.last().message.case, "join");
  s3.push(joinedFrame(s3.last().id, { self: alice(true), roomMetadata: "v3", sessionId: "sess-2" }));
  assert.equal(ctx.events.joined?.at(-1)?.rejoin, true);
  assert.equal(ctx.client.self?.name, "Alice");
  assert.equal(ctx.client.mayPublish, true);
  assert.equal(ctx.client.roomMetadata, "v3");
});

test("a reload: the stored session carries self and metadata, and the next page starts from them", () => {
  const ctx = setup();
  const stored: unknown[] = [];
  ctx.client.on("session", (x) => stored.push(x));
  const s = joinFirst(ctx, { self: alice(true), roomMetadata: "v1" });
  s.push(selfUpdatedFrame(2n, alice(false, "Alice (viewer)")));
  s.push(roomUpdatedFrame(3n, '{"topic":"retro"}'));
  const saved = ctx.client.storedSession();
  assert.ok(saved);
  assert.deepEqual(stored.at(-1), saved, "each update is reported for storing");
  assert.equal(saved.roomMetadata, '{"topic":"retro"}');
  // What sessionStorage holds is JSON text (bigint fields as strings).
  const again = JSON.parse(JSON.stringify(saved)) as typeof saved;
  const next = new SignalingClient({ url: "ws://edge.test/ws", token: "t", restore: again, createSocket: () => { throw new Error("not connecting"); } });
  assert.equal(next.self?.name, "Alice (viewer)");
  assert.equal(next.self?.joinedAtMs, 1795638577514n);
  assert.equal(next.mayPublish, false);
  assert.equal(next.roomMetadata, '{"topic":"retro"}');
});

test("a stored session from before permissions (no self) or with an unreadable one restores without it", () => {
  const base = { sessionId: "s", resumeToken: "r", lastSeq: "3", token: "t", nextClientSeq: "1" };
  const old = new SignalingClient({ url: "ws://x/ws", token: "t", restore: base });
  assert.equal(old.self, undefined);
  assert.equal(old.mayPublish, true);
  const bad = new SignalingClient({ url: "ws://x/ws", token: "t", restore: { ...base, self: { joinedAtMs: "soon" } } });
  assert.equal(bad.self, undefined);
});

test("an offer refused for want of publish: signalRefused names it, then serverError", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { self: alice(false) });
  ctx.client.sendSignal("bob-2", offer);
  const sent = s.last();
  assert.ok(sent.id > 0, "a description carries a request id");
  ctx.client.sendSignal("bob-2", { case: "candidate", value: { candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host" } });
  assert.ok(s.last().id > sent.id, "so does a candidate (a rate_limited refusal of it is retried)");
  s.push({
    seq: 0n,
    message: { case: "error", value: { requestId: sent.id, code: ErrorCode.permission_denied, message: "this participant may not publish" } },
  });
  const refused = ctx.events.signalRefused?.[0];
  assert.ok(refused);
  assert.equal(refused.to, "bob-2");
  assert.equal(refused.type, "offer");
  assert.equal(refused.error.code, ErrorCode.permission_denied);
  assert.equal(ctx.events.serverError?.length, 1, "still a serverError for those who listen to all errors");
  // Once only: a second error with that id is not the offer's.
  s.push({ seq: 0n, message: { case: "error", value: { requestId: sent.id, code: ErrorCode.bad_request } } });
  assert.equal(ctx.events.signalRefused?.length, 1);
});

test("an answer refused (its receiver left) is named too; an error for another request is not", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  ctx.client.sendSignal("bob-2", answer);
  const id = s.last().id;
  const refused = () => ctx.events.signalRefused ?? [];
  s.push({ seq: 2n, message: { case: "error", value: { requestId: id + 100, code: ErrorCode.not_found } } });
  assert.equal(refused().length, 0);
  s.push({ seq: 3n, message: { case: "error", value: { requestId: id, code: ErrorCode.not_found } } });
  assert.deepEqual(
    refused().map((r) => [r.to, r.type, r.error.code]),
    [["bob-2", "answer", ErrorCode.not_found]],
  );
});

test("a refusal of an offer sent while disconnected and resent after the resume is still named", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { self: alice(false) });
  s.serverClose(1006);
  ctx.client.sendSignal("bob-2", offer); // kept in the outbox
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  s2.push(resumedFrame(s2.last().id));
  const resent = s2.last();
  assert.equal(resent.message.case, "signal");
  s2.push({ seq: 0n, message: { case: "error", value: { requestId: resent.id, code: ErrorCode.permission_denied } } });
  assert.equal(ctx.events.signalRefused?.[0]?.type, "offer");
});

test("only the latest descriptions are remembered (a relayed one is never answered)", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  ctx.client.sendSignal("bob-2", offer);
  const first = s.last().id;
  for (let i = 0; i < 64; i++) ctx.client.sendSignal("bob-2", offer);
  const last = s.last().id;
  const refused = () => ctx.events.signalRefused ?? [];
  s.push({ seq: 0n, message: { case: "error", value: { requestId: first, code: ErrorCode.permission_denied } } });
  assert.equal(refused().length, 0, "forgotten");
  s.push({ seq: 0n, message: { case: "error", value: { requestId: last, code: ErrorCode.permission_denied } } });
  assert.equal(refused().length, 1);
});

test("an acknowledged presence update is what self's attributes say; a backend update after it wins", async () => {
  const ctx = setup();
  const s = joinFirst(ctx, { self: alice(true) });
  const p = ctx.client.updatePresence({ audio: "off", video: "on" });
  s.push({ seq: 2n, message: { case: "ack", value: { requestId: s.last().id } } });
  await p;
  assert.deepEqual({ ...ctx.client.self?.attributes }, { audio: "off", video: "on" });
  assert.equal(ctx.client.self?.permissions?.publish, true, "the rest of self is kept");
  s.push(selfUpdatedFrame(3n, { ...alice(true), attributes: { role: "viewer" } }));
  await flush();
  assert.deepEqual({ ...ctx.client.self?.attributes }, { role: "viewer" });
});

test("participantMayPublish: permissions.publish; a record without permissions may (older servers)", () => {
  assert.equal(participantMayPublish(undefined), true);
  assert.equal(participantMayPublish(create(ParticipantSchema, { id: "a" })), true);
  assert.equal(participantMayPublish(create(ParticipantSchema, { id: "a", permissions: {} })), false);
  assert.equal(participantMayPublish(create(ParticipantSchema, { id: "a", permissions: { publish: true } })), true);
});
