import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode } from "@switchboard/signaling/proto";
import {
  OUTBOX_MAX_BYTES,
  OUTBOX_MAX_MESSAGES,
  OutboxFullError,
  decodeClientMessage,
} from "@switchboard/signaling";
import { flush } from "./fakes";
import { URL, joinFirst, joinedFrame, reconnect, resumedFrame, setup } from "./signalingHarness";

function signalFrame(seq: bigint, sdp = "v=0") {
  return {
    seq,
    message: {
      case: "signal" as const,
      value: { from: "bob-2", to: "alice-1", kind: { case: "description" as const, value: { type: 1, sdp } } },
    },
  };
}

test("first connection sends Join with the token and attributes", () => {
  const ctx = setup();
  ctx.client.connect();
  assert.equal(ctx.client.state, "connecting");
  const s = ctx.sockets.latest;
  assert.equal(s.url, URL);
  s.open();
  const join = s.last();
  assert.equal(join.message.case, "join");
  if (join.message.case !== "join") return;
  assert.equal(join.message.value.token, "token-1");
  assert.deepEqual({ ...join.message.value.attributes }, { audio: "on", video: "on" });
  assert.ok(join.id > 0);
});

test("Joined moves to joined and exposes the session", () => {
  const ctx = setup();
  joinFirst(ctx);
  assert.equal(ctx.client.state, "joined");
  assert.equal(ctx.client.sessionId, "sess-1");
  assert.equal(ctx.client.lastSeq, 1n);
  assert.equal(ctx.client.self?.id, "alice-1");
  assert.deepEqual(ctx.client.iceServers[0]?.urls, ["stun:127.0.0.1:3478"]);
  assert.equal(ctx.events.joined?.length, 1);
  assert.equal(ctx.events.joined?.[0]?.rejoin, false);
  assert.equal(ctx.events.joined?.[0]?.joined.participants[0]?.polite, true);
});

test("keepalive sends Ping every interval from Joined", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  const before = s.sent.length;
  ctx.clock.advance(9_999);
  assert.equal(s.sent.length, before);
  ctx.clock.advance(1);
  assert.equal(s.last().message.case, "ping");
  s.push({ seq: 0n, message: { case: "pong", value: { nonce: 1n } } });
  ctx.clock.advance(10_000);
  const pings = s.messages().filter((m) => m.message.case === "ping");
  assert.equal(pings.length, 2);
  assert.notEqual(pings[0]?.message.value, pings[1]?.message.value);
});

test("each Ping acknowledges the highest server seq processed", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  ctx.clock.advance(10_000);
  assert.equal(s.last().message.case, "ping");
  assert.equal(s.last().ack, 1n, "Joined (seq 1) processed");
  s.push({ seq: 2n, message: { case: "ack", value: { requestId: 9 } } });
  ctx.clock.advance(10_000);
  assert.equal(s.last().message.case, "ping");
  assert.equal(s.last().ack, 2n);
});

test("a silent connection is abandoned after the keepalive timeout and resumed", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  // No frame at all for > 30 s: pings go out, nothing comes back.
  ctx.clock.advance(40_000);
  assert.ok(s.closedWith, "the half-open socket was closed");
  assert.equal(ctx.client.state, "reconnecting");
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  assert.notEqual(s2, s);
  s2.open();
  assert.equal(s2.last().message.case, "resume");
});

test("tokenRefreshed replaces the token used by the next Join", async () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.push({ seq: 2n, message: { case: "tokenRefreshed", value: { token: "token-2", expiresAt: 99n } } });
  assert.equal(ctx.client.currentToken, "token-2");
  assert.equal(ctx.events.tokenRefreshed?.[0]?.expiresAt, 99n);
  // The session is lost: the fresh Join must carry the new token.
  s.serverClose(4409, "not_joined");
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  const m = s2.last();
  assert.equal(m.message.case, "join");
  if (m.message.case === "join") assert.equal(m.message.value.token, "token-2");
});

test("reconnect sends Resume with session, token and lastSeq; replays are deduplicated", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.push(signalFrame(2n, "a"));
  s.push(signalFrame(3n, "b"));
  assert.equal(ctx.events.signal?.length, 2);
  s.serverClose(1006);
  assert.equal(ctx.client.state, "reconnecting");
  assert.equal(ctx.events.disconnected?.[0]?.action, "reconnect");
  const delay = ctx.clock.nextDelay();
  assert.ok(delay !== undefined && delay >= 500 && delay <= 1000, `first retry in ${delay}`);
  ctx.clock.advance(delay);
  const s2 = ctx.sockets.latest;
  assert.notEqual(s2, s);
  s2.open();
  const resume = s2.last();
  assert.equal(resume.message.case, "resume");
  if (resume.message.case !== "resume") return;
  assert.deepEqual(
    { sessionId: resume.message.value.sessionId, resumeToken: resume.message.value.resumeToken, lastSeq: resume.message.value.lastSeq },
    { sessionId: "sess-1", resumeToken: "rt-1", lastSeq: 3n },
  );
  s2.push({
    seq: 0n,
    message: { case: "resumed", value: { requestId: resume.id, sessionId: "sess-1", resumeToken: "rt-2", complete: true } },
  });
  assert.equal(ctx.client.state, "joined");
  // The server replays from lastSeq; an overlapping replay is dropped.
  s2.push(signalFrame(3n, "b"));
  s2.push(signalFrame(4n, "c"));
  assert.deepEqual(
    ctx.events.signal?.map((x) => (x.kind.case === "description" ? x.kind.value.sdp : "")),
    ["a", "b", "c"],
  );
  assert.equal(ctx.client.stats.duplicatesDropped, 1);
  assert.equal(ctx.client.lastSeq, 4n);
  assert.equal(ctx.events.resumed?.length, 1);
  assert.equal(ctx.events.joined?.length, 1, "no fresh join happened");
  // The next resume uses the new single-use token.
  s2.serverClose(1012, "shutting_down");
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s3 = ctx.sockets.latest;
  s3.open();
  const again = s3.last();
  assert.equal(again.message.case === "resume" && again.message.value.resumeToken, "rt-2");
});

test("signals sent while reconnecting are flushed after a complete resume", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.serverClose(1006);
  ctx.client.sendSignal("bob-2", { case: "endOfCandidates", value: {} });
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  assert.equal(s2.messages().filter((m) => m.message.case === "signal").length, 0, "held until resumed");
  s2.push({ seq: 0n, message: { case: "resumed", value: { requestId: s2.last().id, resumeToken: "rt-2", complete: true } } });
  const sig = s2.last();
  assert.equal(sig.message.case, "signal");
  if (sig.message.case === "signal") assert.equal(sig.message.value.to, "bob-2");
});

test("an incomplete resume falls back to a fresh Join and reports a rejoin", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.push(signalFrame(2n));
  s.serverClose(1006);
  ctx.client.sendSignal("bob-2", { case: "endOfCandidates", value: {} });
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  s2.push({ seq: 0n, message: { case: "resumed", value: { requestId: s2.last().id, resumeToken: "rt-2", complete: false } } });
  assert.ok(s2.closedWith, "the resumed connection was given up");
  ctx.clock.advance(0);
  const s3 = ctx.sockets.latest;
  assert.notEqual(s3, s2);
  s3.open();
  const join = s3.last();
  assert.equal(join.message.case, "join");
  assert.equal(s3.messages().some((m) => m.message.case === "signal"), false, "stale signals dropped");
  s3.push(joinedFrame(join.id));
  assert.equal(ctx.events.joined?.length, 2);
  assert.equal(ctx.events.joined?.[1]?.rejoin, true);
  assert.equal(ctx.client.lastSeq, 1n, "a new session counts from 1");
  assert.equal(ctx.client.stats.resumeFallbacks, 1);
});

test("an error answering Resume falls back to a fresh Join", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.serverClose(1006);
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  const resumeId = s2.last().id;
  s2.push({ seq: 0n, message: { case: "error", value: { requestId: resumeId, code: ErrorCode.not_found, message: "no such session" } } });
  ctx.clock.advance(0);
  const s3 = ctx.sockets.latest;
  assert.notEqual(s3, s2);
  s3.open();
  assert.equal(s3.last().message.case, "join");
});

test("a close with not_found while resuming falls back to a fresh Join", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.serverClose(1006);
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  s2.serverClose(4404, "not_found: session expired");
  assert.equal(ctx.events.disconnected?.at(-1)?.action, "rejoin");
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s3 = ctx.sockets.latest;
  s3.open();
  assert.equal(s3.last().message.case, "join");
});

test("session_replaced stops without reconnecting", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.serverClose(4409, "session_replaced: joined from another connection");
  assert.equal(ctx.client.state, "closed");
  assert.equal(ctx.events.stopped?.[0]?.code, 4409);
  ctx.clock.advance(120_000);
  assert.equal(ctx.sockets.sockets.length, 1);
});

test("consecutive failures back off exponentially, success resets", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.serverClose(1013, "unavailable");
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    const d = ctx.clock.nextDelay() ?? -1;
    delays.push(d);
    ctx.clock.advance(d);
    ctx.sockets.latest.serverClose(1006); // connect attempt fails
  }
  // random() = 0.5 → 3/4 of the ceiling: 1000, 2000, 4000, 8000 (cap), 8000.
  assert.deepEqual(delays, [750, 1500, 3000, 6000, 6000]);
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const ok = ctx.sockets.latest;
  ok.open();
  ok.push({ seq: 0n, message: { case: "resumed", value: { requestId: ok.last().id, resumeToken: "rt-9", complete: true } } });
  ok.serverClose(1006);
  assert.equal(ctx.clock.nextDelay(), 750);
});

test("a connection that never joins is retried after the handshake timeout", () => {
  const ctx = setup({ handshakeTimeoutMs: 5000 });
  ctx.client.connect();
  const s = ctx.sockets.latest;
  s.open();
  ctx.clock.advance(5000);
  assert.ok(s.closedWith);
  assert.equal(ctx.client.state, "reconnecting");
});

test("updatePresence resolves on Ack and rejects on Error", async () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  const p1 = ctx.client.updatePresence({ audio: "off", video: "on" });
  const req = s.last();
  assert.equal(req.message.case, "updatePresence");
  if (req.message.case === "updatePresence") assert.deepEqual({ ...req.message.value.attributes }, { audio: "off", video: "on" });
  s.push({ seq: 2n, message: { case: "ack", value: { requestId: req.id } } });
  await p1;
  const p2 = ctx.client.updatePresence({ x: "y" });
  const req2 = s.last();
  s.push({ seq: 3n, message: { case: "error", value: { requestId: req2.id, code: ErrorCode.bad_request, message: "too big" } } });
  await assert.rejects(p2, (e: { code: ErrorCode }) => e.code === ErrorCode.bad_request);
  assert.equal(ctx.events.serverError?.[0]?.code, ErrorCode.bad_request);
});

test("a request still waiting when the client stops is rejected without a server code", async () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  const p = ctx.client.updatePresence({ audio: "off" });
  s.serverClose(4409, "session_replaced: joined from another connection");
  await assert.rejects(
    p,
    (e: { code: ErrorCode; message: string }) =>
      e.code === ErrorCode.error_code_unspecified && e.message === "session_replaced: joined from another connection",
  );
});

test("presence changed while disconnected is sent after the resume", async () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.serverClose(1006);
  await ctx.client.updatePresence({ audio: "off" });
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  s2.push({ seq: 0n, message: { case: "resumed", value: { requestId: s2.last().id, resumeToken: "rt-2", complete: true } } });
  const up = s2.last();
  assert.equal(up.message.case, "updatePresence");
  await flush();
});

test("expired token: a refresh callback supplies the token for the next Join", async () => {
  const ctx = setup({ refreshToken: async () => "token-fresh" });
  ctx.client.connect();
  const s = ctx.sockets.latest;
  s.open();
  s.serverClose(4401, "token_expired");
  await flush();
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  const m = s2.last();
  assert.equal(m.message.case === "join" && m.message.value.token, "token-fresh");
});

test("leave sends Leave and stops on the server's 1000 close", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  ctx.client.leave();
  assert.equal(s.last().message.case, "leave");
  s.serverClose(1000, "");
  assert.equal(ctx.client.state, "closed");
  assert.equal(ctx.events.stopped?.length, 1);
  ctx.clock.advance(60_000);
  assert.equal(ctx.sockets.sockets.length, 1);
});

test("dropConnection behaves like a network cut: resume, no rejoin", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  ctx.client.dropConnection();
  assert.ok(s.closedWith);
  assert.equal(ctx.client.state, "reconnecting");
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  assert.equal(s2.last().message.case, "resume");
});

test("frames from an abandoned socket are ignored", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  ctx.client.dropConnection();
  s.onmessage?.({ data: '{"seq":"2","participantLeft":{"participantId":"bob-2"}}' });
  assert.equal(ctx.events.participantLeft, undefined);
});

test("a spoiled resume token is sent as is (diagnostics for the fall-back path)", () => {
  const ctx = setup();
  joinFirst(ctx);
  ctx.client.dropConnection({ spoilResume: true });
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  const m = s2.last();
  assert.equal(m.message.case === "resume" && m.message.value.resumeToken, "spoiled");
});

// ---- exactly-once sending (ClientMessage.seq, Accepted) -----------------

function acceptedFrame(seq: bigint) {
  return { seq: 0n, message: { case: "accepted" as const, value: { seq } } };
}

const eoc = { case: "endOfCandidates" as const, value: {} };

/** The numbered messages a socket carried, as [seq, id, case]. */
function numbered(s: ReturnType<typeof joinFirst>) {
  return s
    .messages()
    .filter((m) => m.seq !== 0n)
    .map((m) => [m.seq, m.id, m.message.case] as const);
}


test("signals and presence updates are numbered from 1; Join, Ping, Resume and Leave are not", async () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  assert.equal(s.messages()[0]?.message.case, "join");
  assert.equal(s.messages()[0]?.seq, 0n, "Join is not numbered");
  ctx.client.sendSignal("bob-2", { case: "description", value: { type: 1, sdp: "v=0" } });
  ctx.client.sendSignal("bob-2", eoc);
  const p = ctx.client.updatePresence({ audio: "off" });
  ctx.clock.advance(10_000); // a keepalive Ping
  ctx.client.sendSignal("bob-2", eoc);
  const msgs = s.messages();
  assert.deepEqual(
    msgs.map((m) => [m.message.case, m.seq]),
    [
      ["join", 0n],
      ["signal", 1n],
      ["signal", 2n],
      ["updatePresence", 3n],
      ["ping", 0n],
      ["signal", 4n],
    ],
  );
  const up = msgs[3];
  assert.ok(up && up.id > 0, "a numbered request keeps its own id");
  s.push({ seq: 2n, message: { case: "ack", value: { requestId: up.id } } });
  await p;
  assert.equal(ctx.client.unaccepted, 4, "Ack alone does not release anything: only Accepted does");
  // Resume and Leave are not numbered either.
  const s2 = reconnect(ctx, s);
  assert.equal(s2.last().message.case, "resume");
  assert.equal(s2.last().seq, 0n);
  s2.push(resumedFrame(s2.last().id));
  ctx.client.leave();
  assert.equal(s2.last().message.case, "leave");
  assert.equal(s2.last().seq, 0n);
});

test("Accepted releases every message up to its seq (cumulative); only the rest is resent", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  for (let i = 0; i < 5; i++) ctx.client.sendSignal("bob-2", eoc);
  assert.equal(ctx.client.unaccepted, 5);
  s.push(acceptedFrame(3n)); // one Accepted covers 1, 2 and 3
  assert.equal(ctx.client.unaccepted, 2);
  s.push(acceptedFrame(2n)); // stale: changes nothing
  assert.equal(ctx.client.unaccepted, 2);
  const s2 = reconnect(ctx, s);
  s2.push(resumedFrame(s2.last().id));
  assert.deepEqual(
    numbered(s2).map(([seq]) => seq),
    [4n, 5n],
  );
  s2.push(acceptedFrame(5n));
  assert.equal(ctx.client.unaccepted, 0);
  const s3 = reconnect(ctx, s2);
  s3.push(resumedFrame(s3.last().id));
  assert.deepEqual(numbered(s3), [], "nothing left to resend");
});

test("after a drop and Resumed, unaccepted messages go again in order, same seq and id, before new ones", async () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  ctx.client.sendSignal("bob-2", { case: "description", value: { type: 1, sdp: "offer-1" } }); // seq 1
  const presence = ctx.client.updatePresence({ audio: "off" }); // seq 2
  ctx.client.sendSignal("bob-2", { case: "candidate", value: { candidate: "c1", sdpMid: "0" } }); // seq 3
  s.push(acceptedFrame(1n));
  const sentBefore = s.sent.filter((f) => decodeClientMessage(f).seq >= 2n);
  assert.equal(sentBefore.length, 2);
  s.serverClose(1006);
  // While the socket is down: numbered and kept, not lost.
  ctx.client.sendSignal("bob-2", eoc); // seq 4
  await ctx.client.updatePresence({ audio: "on" }); // seq 5, resolves at once
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  // During the resume handshake: kept too, and held until Resumed.
  ctx.client.sendSignal("bob-2", eoc); // seq 6
  assert.deepEqual(s2.messages().map((m) => m.message.case), ["resume"]);
  // A listener that reacts to `resumed` by sending: that is "new".
  ctx.client.on("resumed", () => ctx.client.sendSignal("bob-2", eoc)); // seq 7
  s2.push(resumedFrame(s2.last().id));
  assert.deepEqual(
    numbered(s2).map(([seq, , kind]) => [seq, kind]),
    [
      [2n, "updatePresence"],
      [3n, "signal"],
      [4n, "signal"],
      [5n, "updatePresence"],
      [6n, "signal"],
      [7n, "signal"],
    ],
  );
  // The resent frames are exactly the ones sent before the drop.
  const resent = s2.sent.filter((f) => {
    const seq = decodeClientMessage(f).seq;
    return seq === 2n || seq === 3n;
  });
  assert.deepEqual(resent, sentBefore);
  assert.equal(ctx.client.stats.resent, 5);
  // The Ack of the resent presence update settles the original request.
  const id2 = numbered(s2)[0]?.[1];
  assert.ok(id2 && id2 > 0);
  s2.push({ seq: 2n, message: { case: "ack", value: { requestId: id2 } } });
  await presence;
  // Numbering simply continues.
  ctx.client.sendSignal("bob-2", eoc);
  assert.equal(s2.last().seq, 8n);
});

for (const how of ["an incomplete resume", "a refused resume"] as const) {
  test(`after ${how}, the fresh Join numbers from 1 again and old messages are not resent`, () => {
    const ctx = setup();
    const s = joinFirst(ctx);
    ctx.client.sendSignal("bob-2", eoc); // seq 1
    ctx.client.sendSignal("bob-2", eoc); // seq 2
    s.push(acceptedFrame(1n));
    const s2 = reconnect(ctx, s);
    ctx.client.sendSignal("bob-2", eoc); // seq 3, kept for the resume
    const resumeId = s2.last().id;
    if (how === "an incomplete resume") s2.push(resumedFrame(resumeId, false));
    else s2.push({ seq: 0n, message: { case: "error", value: { requestId: resumeId, code: ErrorCode.not_found } } });
    assert.deepEqual(numbered(s2), [], "nothing resent into the abandoned session");
    assert.equal(ctx.client.unaccepted, 0);
    ctx.clock.advance(0);
    const s3 = ctx.sockets.latest;
    assert.notEqual(s3, s2);
    s3.open();
    const join = s3.last();
    assert.equal(join.message.case, "join");
    s3.push(joinedFrame(join.id));
    assert.equal(ctx.events.joined?.at(-1)?.rejoin, true);
    assert.deepEqual(numbered(s3), [], "old messages are not resent into the new session");
    ctx.client.sendSignal("bob-2", eoc);
    void ctx.client.updatePresence({ audio: "off" }).catch(() => undefined);
    assert.deepEqual(
      numbered(s3).map(([seq]) => seq),
      [1n, 2n],
    );
  });
}

test("Accepted (connection-scoped) does not disturb the server-seq tracking", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  s.push(signalFrame(2n, "a"));
  for (let i = 0; i < 5; i++) ctx.client.sendSignal("bob-2", eoc);
  s.push(acceptedFrame(5n));
  // Even a (misbehaving) Accepted with a ServerMessage.seq is not counted.
  s.push({ seq: 9n, message: { case: "accepted", value: { seq: 5n } } });
  assert.equal(ctx.client.lastSeq, 2n);
  assert.equal(ctx.client.unaccepted, 0);
  s.push(signalFrame(3n, "b"));
  assert.equal(ctx.client.stats.duplicatesDropped, 0);
  assert.deepEqual(
    ctx.events.signal?.map((x) => (x.kind.case === "description" ? x.kind.value.sdp : "")),
    ["a", "b"],
  );
  const s2 = reconnect(ctx, s);
  const resume = s2.last();
  assert.equal(resume.message.case === "resume" && resume.message.value.lastSeq, 3n);
});

test("the outbox holds at most 1024 messages; beyond that a send is refused, nothing is dropped", async () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  for (let i = 0; i < OUTBOX_MAX_MESSAGES; i++) ctx.client.sendSignal("bob-2", eoc);
  assert.equal(ctx.client.unaccepted, 1024);
  const before = s.sent.length;
  assert.throws(() => ctx.client.sendSignal("bob-2", eoc), OutboxFullError);
  await assert.rejects(ctx.client.updatePresence({ audio: "off" }), OutboxFullError);
  assert.equal(s.sent.length, before, "a refused message is not sent");
  assert.equal(ctx.client.unaccepted, 1024, "nothing already kept was dropped");
  s.push(acceptedFrame(1n));
  ctx.client.sendSignal("bob-2", eoc);
  assert.equal(s.last().seq, 1025n, "refused messages took no seq: no gap");
  // Also while the socket is down.
  s.serverClose(1006);
  assert.throws(() => ctx.client.sendSignal("bob-2", eoc), OutboxFullError);
  const s2 = reconnect(ctx, s);
  s2.push(resumedFrame(s2.last().id));
  const seqs = numbered(s2).map(([seq]) => seq);
  assert.equal(seqs.length, 1024);
  assert.equal(seqs[0], 2n);
  assert.equal(seqs.at(-1), 1025n);
});

test("the outbox holds at most 1 MiB of encoded frames", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  const sdp = "x".repeat(60_000);
  const offer = { case: "description" as const, value: { type: 1, sdp } };
  let kept = 0;
  for (;;) {
    try {
      ctx.client.sendSignal("bob-2", offer);
      kept += 1;
    } catch (err) {
      assert.ok(err instanceof OutboxFullError, String(err));
      break;
    }
    assert.ok(kept < 100, "the byte bound was never hit");
  }
  const bytes = s.sent.slice(1).reduce((n, f) => n + new TextEncoder().encode(f).byteLength, 0);
  assert.equal(kept, 17);
  assert.ok(bytes <= OUTBOX_MAX_BYTES && bytes + 60_000 > OUTBOX_MAX_BYTES, `kept ${bytes} bytes`);
  // Small messages still fit in what is left.
  ctx.client.sendSignal("bob-2", eoc);
  assert.equal(s.last().seq, 18n);
});

// ---- a lost session: fresh token, restore from an earlier page ----------

test("a resume refused for its token (restarted dev server) joins again with a fresh token", async () => {
  let calls = 0;
  const ctx = setup({ refreshToken: async () => `token-fresh-${++calls}` });
  const s = joinFirst(ctx);
  s.serverClose(1006);
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  const resumeId = s2.last().id;
  // What a restarted `switchboard all` answers: its new key does not know ours.
  s2.push({ seq: 0n, message: { case: "error", value: { requestId: resumeId, code: ErrorCode.unauthenticated, message: "unknown signing key" } } });
  s2.serverClose(4401, "unauthenticated: unknown signing key");
  ctx.clock.advance(0);
  assert.equal(ctx.sockets.latest, s2, "no connection before the new token is there");
  await flush();
  const s3 = ctx.sockets.latest;
  assert.notEqual(s3, s2);
  s3.open();
  const join = s3.last();
  assert.equal(join.message.case === "join" && join.message.value.token, "token-fresh-1");
  s3.push(joinedFrame(join.id));
  assert.equal(ctx.events.joined?.at(-1)?.rejoin, true);
  assert.equal(ctx.client.state, "joined");
  assert.equal(calls, 1);
});

test("a token callback that fails (server still restarting) is retried with backoff", async () => {
  let calls = 0;
  const ctx = setup({
    refreshToken: async () => {
      calls += 1;
      if (calls < 3) throw new Error("fetch failed");
      return "token-late";
    },
  });
  const s = joinFirst(ctx);
  s.serverClose(1006);
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const s2 = ctx.sockets.latest;
  s2.open();
  s2.serverClose(4404, "not_found: no such session to resume");
  for (let i = 0; i < 3; i++) {
    ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
    await flush();
  }
  assert.equal(calls, 3);
  assert.equal(ctx.client.state, "reconnecting", "not given up");
  const s3 = ctx.sockets.latest;
  assert.notEqual(s3, s2);
  s3.open();
  assert.equal(s3.last().message.case === "join" && (s3.last().message.value as { token: string }).token, "token-late");
});

test("a restored session (reload) resumes on the first connection, from its last seq", () => {
  const ctx = setup({ restore: { sessionId: "sess-9", resumeToken: "rt-9", lastSeq: "41", token: "token-saved", nextClientSeq: "27" } });
  ctx.client.connect();
  const s = ctx.sockets.latest;
  s.open();
  const m = s.last();
  assert.equal(m.message.case, "resume");
  if (m.message.case !== "resume") return;
  assert.equal(m.message.value.sessionId, "sess-9");
  assert.equal(m.message.value.resumeToken, "rt-9");
  assert.equal(m.message.value.lastSeq, 41n);
  assert.equal(m.message.value.token, "token-saved");
  s.push({ seq: 0n, message: { case: "resumed", value: { requestId: m.id, sessionId: "sess-9", resumeToken: "rt-10", complete: true } } });
  s.push(signalFrame(41n));
  s.push(signalFrame(42n));
  assert.equal(ctx.events.signal?.length, 1, "seq 41 was processed by the earlier page");
  assert.equal(ctx.client.state, "joined");
  ctx.client.sendSignal("bob-2", { case: "endOfCandidates", value: {} });
  assert.equal(s.last().seq, 27n, "numbering continues where the earlier page stopped");
  assert.deepEqual(ctx.client.storedSession(), { sessionId: "sess-9", resumeToken: "rt-10", lastSeq: "42", token: "token-saved", nextClientSeq: "28" });
});

test("the session event tracks what a reload needs; suspend keeps the session, leave forgets it", () => {
  const ctx = setup();
  const seen: (string | null)[] = [];
  ctx.client.on("session", (s) => seen.push(s ? `${s.resumeToken}@${s.lastSeq}` : null));
  const s = joinFirst(ctx);
  s.push(signalFrame(2n));
  assert.deepEqual(seen.slice(-1), ["rt-1@2"]);
  ctx.client.suspend();
  assert.ok(s.closedWith, "socket closed");
  assert.notEqual(s.last().message.case, "leave", "no Leave on suspend");
  assert.equal(ctx.events.stopped?.length ?? 0, 0);
  assert.equal(ctx.clock.nextDelay(), undefined, "no reconnect after suspend");

  const ctx2 = setup();
  const seen2: (string | null)[] = [];
  ctx2.client.on("session", (x) => seen2.push(x ? x.sessionId : null));
  const t = joinFirst(ctx2);
  ctx2.client.leave();
  t.serverClose(1000, "left");
  assert.equal(seen2.at(-1), null);
});

test("retryNow skips the rest of the backoff and resumes at once; idle otherwise", () => {
  const ctx = setup();
  const s = joinFirst(ctx);
  ctx.client.retryNow();
  assert.equal(ctx.sockets.latest, s, "joined: nothing to retry");
  s.serverClose(1006);
  // Two failed attempts: the next delay has grown.
  for (let i = 0; i < 2; i += 1) {
    ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
    ctx.sockets.latest.serverClose(1006);
  }
  const waiting = ctx.sockets.latest;
  assert.ok((ctx.clock.nextDelay() ?? 0) >= 2000, "a retry is scheduled seconds away");
  ctx.client.retryNow();
  const s2 = ctx.sockets.latest;
  assert.notEqual(s2, waiting, "a new socket opened without waiting");
  s2.open();
  assert.equal(s2.last().message.case, "resume");
  ctx.client.retryNow();
  assert.equal(ctx.sockets.latest, s2, "an attempt in flight is not doubled");
});
