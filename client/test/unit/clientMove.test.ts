/**
 * The signaling client when the application's backend moves the session to
 * another room (`moved`) or pushes data to it (`data`): the room, its
 * metadata and limit follow the move, the session continues (same id, seq
 * and resume token), a reload resumes in the new room, a rejoin goes back
 * to the token's room; data is an event, once each, across a resume.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SignalingClient } from "@switchboard/signaling";
import { ErrorCode } from "@switchboard/signaling/proto";
import { joinFirst, joinedFrame, reconnect, resumedFrame, setup } from "./signalingHarness";

const carol = { id: "carol-3", name: "Carol", polite: false, permissions: { publish: true } };

function movedFrame(seq: bigint, room = "breakout-1", extra: { roomMetadata?: string; maxParticipants?: number } = {}) {
  return {
    seq,
    message: {
      case: "moved" as const,
      value: { room, participants: [carol], roomMetadata: extra.roomMetadata ?? "", maxParticipants: extra.maxParticipants ?? 0 },
    },
  };
}

function dataFrame(seq: bigint, topic: string, payload: string) {
  return { seq, message: { case: "data" as const, value: { topic, payload } } };
}

test("moved: an event with the new room and who is in it; room, metadata and limit follow", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { room: "standup", roomMetadata: "old", maxParticipants: 8 });
  assert.equal(ctx.client.room, "standup");
  assert.equal(ctx.client.maxParticipants, 8);
  s.push(movedFrame(2n, "breakout-1", { roomMetadata: '{"topic":"retro"}', maxParticipants: 4 }));
  const ev = ctx.events.moved?.[0];
  assert.ok(ev);
  assert.equal(ev.from, "standup");
  assert.equal(ev.moved.room, "breakout-1");
  assert.deepEqual(
    ev.moved.participants.map((p) => [p.id, p.polite]),
    [["carol-3", false]],
    "each with our role towards them",
  );
  assert.equal(ctx.client.room, "breakout-1");
  assert.equal(ctx.client.roomMetadata, '{"topic":"retro"}');
  assert.equal(ctx.client.maxParticipants, 4);
  assert.equal(ctx.events.roomUpdated, undefined, "the metadata came with the move, not as an update");
  // The session continues: no new Join, same id, seq counted on.
  assert.equal(ctx.client.sessionId, "sess-1");
  assert.equal(ctx.client.lastSeq, 2n);
  assert.equal(ctx.client.state, "joined");
  assert.equal(ctx.events.joined?.length, 1);
});

test("a move to a room without metadata clears it", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { roomMetadata: "old" });
  s.push(movedFrame(2n));
  assert.equal(ctx.client.roomMetadata, "");
  assert.equal(ctx.client.maxParticipants, 0, "not said: unknown");
});

test("after a move the resume uses the same session and resume token; a replayed move is not an event twice", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { room: "standup" });
  s.push(movedFrame(2n));
  const s2 = reconnect(ctx, s);
  const resume = s2.last();
  assert.equal(resume.message.case, "resume");
  if (resume.message.case === "resume") {
    assert.equal(resume.message.value.sessionId, "sess-1");
    assert.equal(resume.message.value.resumeToken, "rt-1");
    assert.equal(resume.message.value.lastSeq, 2n);
  }
  s2.push(resumedFrame(resume.id));
  s2.push(movedFrame(2n)); // the server replays from an older ack: a duplicate
  assert.equal(ctx.events.moved?.length, 1);
  assert.equal(ctx.client.room, "breakout-1", "a resume does not say the room: kept");
});

test("a move missed while away arrives after the resume, in order", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { room: "standup" });
  const s2 = reconnect(ctx, s);
  s2.push(resumedFrame(s2.last().id));
  s2.push(movedFrame(2n));
  s2.push({ seq: 3n, message: { case: "participantJoined", value: { participant: { id: "dave-4", name: "Dave" } } } });
  assert.equal(ctx.events.moved?.[0]?.from, "standup");
  assert.equal(ctx.events.participantJoined?.at(-1)?.id, "dave-4");
  assert.equal(ctx.client.room, "breakout-1");
});

test("a reload after a move: the stored session names the new room and its limit; the next page resumes there", () => {
  const ctx = setup();
  const stored: unknown[] = [];
  ctx.client.on("session", (x) => stored.push(x));
  const s = joinFirst(ctx, { room: "standup", maxParticipants: 8 });
  assert.equal(ctx.client.storedSession()?.room, "standup");
  s.push(movedFrame(3n, "breakout-1", { roomMetadata: "m", maxParticipants: 4 }));
  const saved = ctx.client.storedSession();
  assert.ok(saved);
  assert.deepEqual(stored.at(-1), saved, "the move is reported for storing");
  assert.equal(saved.room, "breakout-1");
  assert.equal(saved.maxParticipants, 4);
  assert.equal(saved.roomMetadata, "m");
  const again = JSON.parse(JSON.stringify(saved)) as typeof saved;
  const next = setup({ restore: again });
  assert.equal(next.client.room, "breakout-1");
  assert.equal(next.client.maxParticipants, 4);
  next.client.connect();
  const sock = next.sockets.latest;
  sock.open();
  const first = sock.last();
  assert.equal(first.message.case, "resume", "the moved session is resumed, not joined again");
  sock.push(resumedFrame(first.id));
  assert.equal(next.client.room, "breakout-1");
});

test("a stored session from before moves (no room) restores with the room unknown", () => {
  const next = new SignalingClient({
    url: "ws://x/ws",
    token: "t",
    restore: { sessionId: "s", resumeToken: "r", lastSeq: "3", token: "t", nextClientSeq: "1" },
  });
  assert.equal(next.room, "");
  assert.equal(next.maxParticipants, 0);
});

test("a rejoin after a move (the session was lost) is in the token's room again: Joined says so", () => {
  const ctx = setup();
  const s = joinFirst(ctx, { room: "standup", maxParticipants: 8 });
  s.push(movedFrame(2n, "breakout-1", { maxParticipants: 4 }));
  const s2 = reconnect(ctx, s);
  s2.push({ seq: 0n, message: { case: "error", value: { requestId: s2.last().id, code: ErrorCode.not_found, message: "no such session" } } });
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s3 = ctx.sockets.latest;
  s3.open();
  assert.equal(s3.last().message.case, "join");
  s3.push(joinedFrame(s3.last().id, { room: "standup", maxParticipants: 8, sessionId: "sess-2" }));
  assert.equal(ctx.events.joined?.at(-1)?.rejoin, true);
  assert.equal(ctx.client.room, "standup");
  assert.equal(ctx.client.maxParticipants, 8);
});

test("data: an event with the backend's topic and payload, each once across a resume", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.push(dataFrame(2n, "poll", '{"question":"Lunch?"}'));
  const s2 = reconnect(ctx, s);
  s2.push(resumedFrame(s2.last().id));
  s2.push(dataFrame(2n, "poll", '{"question":"Lunch?"}')); // replayed: already handled
  s2.push(dataFrame(3n, "poll", '{"closed":true}'));
  s2.push(dataFrame(4n, "", ""));
  assert.deepEqual(
    ctx.events.data?.map((d) => [d.topic, d.payload]),
    [
      ["poll", '{"question":"Lunch?"}'],
      ["poll", '{"closed":true}'],
      ["", ""],
    ],
  );
  assert.equal(ctx.client.stats.duplicatesDropped, 1);
  assert.equal(ctx.client.lastSeq, 4n);
});
