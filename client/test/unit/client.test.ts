import { test } from "node:test";
import assert from "node:assert/strict";
import { SignalingClient, type SignalingEvents } from "../../src/signaling/client";
import { ManualClock, SocketFactory, flush } from "./fakes";

const URL = "ws://edge.test/ws";

function setup(extra: Partial<ConstructorParameters<typeof SignalingClient>[0]> = {}) {
  const clock = new ManualClock();
  const sockets = new SocketFactory();
  const client = new SignalingClient({
    url: URL,
    token: "token-1",
    attributes: { audio: "on", video: "on" },
    createSocket: sockets.create,
    clock,
    backoff: { initialMs: 1000, maxMs: 8000, random: () => 0.5 },
    ...extra,
  });
  const events: { [K in keyof SignalingEvents]?: SignalingEvents[K][] } = {};
  const record = <K extends keyof SignalingEvents>(k: K) =>
    client.on(k, (p) => {
      const list = (events[k] ??= []) as SignalingEvents[K][];
      list.push(p);
    });
  for (const k of [
    "state",
    "joined",
    "resumed",
    "participantJoined",
    "participantLeft",
    "signal",
    "tokenRefreshed",
    "serverError",
    "disconnected",
    "stopped",
  ] as const)
    record(k);
  return { clock, sockets, client, events };
}

function joinedFrame(requestId = 1, extra: { participants?: unknown[] } = {}) {
  return {
    seq: 1n,
    message: {
      case: "joined" as const,
      value: {
        requestId,
        sessionId: "sess-1",
        resumeToken: "rt-1",
        room: "demo",
        self: { id: "alice-1", name: "Alice" },
        participants: (extra.participants ?? [{ id: "bob-2", name: "Bob", polite: true }]) as never,
        iceServers: [{ urls: ["stun:127.0.0.1:3478"] }],
        keepalive: { intervalMs: 10_000, timeoutMs: 30_000 },
      },
    },
  };
}

function signalFrame(seq: bigint, sdp = "v=0") {
  return {
    seq,
    message: {
      case: "signal" as const,
      value: { from: "bob-2", to: "alice-1", kind: { case: "description" as const, value: { type: 1, sdp } } },
    },
  };
}

/** Connects and completes a Join; returns the first socket. */
function joinFirst(ctx: ReturnType<typeof setup>) {
  ctx.client.connect();
  const s = ctx.sockets.latest;
  s.open();
  s.push(joinedFrame(s.last().id));
  return s;
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
  s2.push({ seq: 0n, message: { case: "error", value: { requestId: resumeId, code: "not_found", message: "no such session" } } });
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
  s.push({ seq: 3n, message: { case: "error", value: { requestId: req2.id, code: "bad_request", message: "too big" } } });
  await assert.rejects(p2, (e: { code: string }) => e.code === "bad_request");
  assert.equal(ctx.events.serverError?.[0]?.code, "bad_request");
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
