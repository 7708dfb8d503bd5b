/**
 * Messages the room's message rate refused (a retryable `rate_limited`
 * naming the request, docs/protocol.md §6.2) are sent again as new
 * messages after a backoff, unless a later message made them stale; what
 * is given up is reported (`undelivered`). The clock is the manual one, so
 * every delay is exact: with the harness's jitter (random 0.5) the n-th
 * re-send waits 3/4 of min(250 ms · 2^n, 4 s).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { RETRY_ATTEMPTS } from "@switchboard/signaling";
import { ErrorCode, SessionDescription_Type, type ClientMessage } from "@switchboard/signaling/proto";
import { flush } from "./fakes";
import { joinFirst, joinedFrame, setup } from "./signalingHarness";

type Sock = ReturnType<typeof joinFirst>;

const DELAYS = [188, 375, 750, 1500, 3000, 3000];
const ROOM_RATE = "message dropped: this room is over its 1000 messages a second; retry shortly";

const offer = (sdp: string) => ({ case: "description" as const, value: { type: SessionDescription_Type.OFFER, sdp } });
const answer = (sdp: string) => ({ case: "description" as const, value: { type: SessionDescription_Type.ANSWER, sdp } });
const cand = (c: string) => ({ case: "candidate" as const, value: { candidate: c, sdpMid: "0" } });
/** An SDP whose `o=` line names RTCPeerConnection session `id`. */
const sdp = (id: string, n = 1) => `v=0\r\no=- ${id} ${n} IN IP4 127.0.0.1\r\n`;

let serverSeq = 1n;
/** The room's refusal of request `id`: session-scoped, with a seq. */
function refuse(s: Sock, id: number): void {
  serverSeq += 1n;
  s.push({ seq: serverSeq, message: { case: "error", value: { requestId: id, code: ErrorCode.rate_limited, message: ROOM_RATE, retryable: true } } });
}
function ack(s: Sock, id: number): void {
  serverSeq += 1n;
  s.push({ seq: serverSeq, message: { case: "ack", value: { requestId: id } } });
}
function start() {
  serverSeq = 1n;
  const ctx = setup();
  const s = joinFirst(ctx);
  return { ctx, s };
}

/** What a numbered signal carried, in a form easy to compare. */
function what(m: ClientMessage): string {
  if (m.message.case === "updatePresence") return `presence ${JSON.stringify(m.message.value.attributes)}`;
  if (m.message.case !== "signal") return m.message.case ?? "";
  const k = m.message.value.kind;
  switch (k.case) {
    case "description":
      return `${k.value.type === SessionDescription_Type.OFFER ? "offer" : "answer"} ${k.value.sdp.split("\r\n")[1] ?? k.value.sdp}`;
    case "candidate":
      return `candidate ${k.value.candidate}`;
    default:
      return k.case ?? "";
  }
}
const numbered = (s: Sock) => s.messages().filter((m) => m.seq > 0n);
const last = (s: Sock) => {
  const m = numbered(s).at(-1);
  assert.ok(m, "something numbered was sent");
  return m;
};

test("a refused candidate goes again after 250 ms (jittered) as a new message: new id, new seq, same content", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", cand("c1"));
  const original = last(s);
  assert.ok(original.id > 0, "candidates carry a request id, so a refusal names them");
  refuse(s, original.id);
  assert.equal(numbered(s).length, 1);
  ctx.clock.advance(DELAYS[0]! - 1);
  assert.equal(numbered(s).length, 1, "not before the backoff");
  ctx.clock.advance(1);
  const again = last(s);
  assert.equal(what(again), "candidate c1");
  assert.equal(again.message.case === "signal" && again.message.value.to, "bob-2");
  assert.ok(again.id !== original.id && again.seq === original.seq + 1n, "a new message: the old seq is accepted, so it would be dropped");
  assert.equal(ctx.client.stats.retried, 1);
  assert.equal(ctx.events.undelivered, undefined);
  assert.equal(ctx.events.serverError?.length, 1, "the refusal is still a serverError for those who listen to all");
});

test("re-sends back off 250 ms doubling to 4 s, and after RETRY_ATTEMPTS the loss is reported", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", cand("c1"));
  assert.equal(RETRY_ATTEMPTS, 6);
  for (const delay of DELAYS) {
    const sent = numbered(s).length;
    refuse(s, last(s).id);
    ctx.clock.advance(delay - 1);
    assert.equal(numbered(s).length, sent, `waits ${delay} ms`);
    ctx.clock.advance(1);
    assert.equal(numbered(s).length, sent + 1);
  }
  refuse(s, last(s).id);
  ctx.clock.advance(60_000);
  assert.equal(numbered(s).length, 1 + RETRY_ATTEMPTS, "no more re-sends");
  assert.deepEqual(
    ctx.events.undelivered?.map((u) => [u.message, u.to, u.signal, u.attempts, u.error.code]),
    [["signal", "bob-2", "candidate", 7, ErrorCode.rate_limited]],
  );
  assert.equal(ctx.client.stats.undelivered, 1);
});

test("other errors are answers, not retried; neither is a refusal without `retryable`", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", cand("c1"));
  s.push({ seq: 2n, message: { case: "error", value: { requestId: last(s).id, code: ErrorCode.not_found } } });
  ctx.client.sendSignal("bob-2", cand("c2"));
  s.push({ seq: 3n, message: { case: "error", value: { requestId: last(s).id, code: ErrorCode.rate_limited } } });
  ctx.clock.advance(60_000);
  assert.deepEqual(numbered(s).map(what), ["candidate c1", "candidate c2"]);
});

test("a refused offer is not sent again once a newer description to that participant went", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", offer(sdp("111", 1)));
  const first = last(s).id;
  refuse(s, first);
  // A newer offer (e.g. renegotiation) before the re-send.
  ctx.client.sendSignal("bob-2", offer(sdp("111", 2)));
  ctx.clock.advance(10_000);
  assert.deepEqual(numbered(s).map(what), ["offer o=- 111 1 IN IP4 127.0.0.1", "offer o=- 111 2 IN IP4 127.0.0.1"]);
  // Refused after the newer one went (the refusal trails it): not sent either.
  ctx.client.sendSignal("bob-2", answer(sdp("111", 3)));
  const stale = numbered(s).at(-2)?.id;
  assert.ok(stale);
  refuse(s, stale);
  ctx.clock.advance(10_000);
  assert.equal(numbered(s).length, 3);
  assert.equal(ctx.events.undelivered, undefined, "superseded is not lost");
  assert.equal(ctx.events.signalRefused, undefined);
  // A description to someone else does not make it stale.
  ctx.client.sendSignal("carol-3", offer(sdp("222")));
  refuse(s, last(s).id - 1); // the answer to bob
  ctx.clock.advance(DELAYS[0]!);
  assert.equal(what(last(s)), "answer o=- 111 3 IN IP4 127.0.0.1");
});

test("a description's re-send is followed by the candidates sent after it; a refused candidate waits for it", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", offer(sdp("111")));
  const o = last(s).id;
  ctx.client.sendSignal("bob-2", cand("c1"));
  const c1 = last(s).id;
  ctx.client.sendSignal("bob-2", cand("c2")); // relayed, but ahead of the offer's re-send
  ctx.client.sendSignal("carol-3", cand("x")); // someone else: unaffected
  refuse(s, c1);
  refuse(s, o);
  // c1's delay is the same as the offer's; it must not go first.
  ctx.clock.advance(DELAYS[0]!);
  assert.deepEqual(numbered(s).slice(4).map(what), ["offer o=- 111 1 IN IP4 127.0.0.1", "candidate c1", "candidate c2"]);
  assert.ok(numbered(s).slice(4).every((m) => m.message.case === "signal" && m.message.value.to === "bob-2"));
  ctx.clock.advance(60_000);
  assert.equal(numbered(s).length, 7, "nothing twice");
  // A late refusal of c2 (already sent again) is not retried again.
  const c2 = numbered(s)[2]?.id;
  assert.ok(c2);
  refuse(s, c2);
  ctx.clock.advance(60_000);
  assert.equal(numbered(s).length, 7);
});

test("a candidate held for a description that turns out stale goes on its own", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", offer(sdp("111", 1)));
  const o = last(s).id;
  ctx.client.sendSignal("bob-2", cand("c1"));
  refuse(s, last(s).id);
  refuse(s, o);
  // A renegotiation of the same connection replaces the offer before its re-send.
  ctx.client.sendSignal("bob-2", offer(sdp("111", 2)));
  ctx.clock.advance(DELAYS[0]!);
  assert.deepEqual(numbered(s).slice(2).map(what), ["offer o=- 111 2 IN IP4 127.0.0.1", "candidate c1"]);
});

test("candidates of a replaced peer connection (a new SDP session) are not sent again", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", offer(sdp("111")));
  ctx.client.sendSignal("bob-2", cand("old"));
  const old = last(s).id;
  // The connection to bob was rebuilt: a new RTCPeerConnection, a new o= session.
  ctx.client.sendSignal("bob-2", offer(sdp("999")));
  refuse(s, old);
  ctx.clock.advance(60_000);
  assert.deepEqual(numbered(s).map(what).at(-1), "offer o=- 999 1 IN IP4 127.0.0.1");
  assert.equal(numbered(s).length, 3);
});

test("nothing more goes to a participant who left, nor to the room we were moved out of", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", cand("c1"));
  refuse(s, last(s).id);
  serverSeq += 1n;
  s.push({ seq: serverSeq, message: { case: "participantLeft", value: { participantId: "bob-2" } } });
  ctx.client.sendSignal("carol-3", cand("c2"));
  refuse(s, last(s).id);
  serverSeq += 1n;
  s.push({ seq: serverSeq, message: { case: "moved", value: { room: "breakout-1", participants: [] } } });
  ctx.clock.advance(60_000);
  assert.equal(numbered(s).length, 2);
  assert.equal(ctx.events.undelivered, undefined);
});

test("a new session drops the old one's pending re-sends", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", cand("c1"));
  refuse(s, last(s).id);
  // The server lost our session: "not_joined" sends us to a fresh Join.
  s.serverClose(4409, "not_joined: the session has ended; join again");
  ctx.clock.advance(750);
  const s2 = ctx.sockets.latest;
  assert.notEqual(s2, s);
  s2.open();
  s2.push(joinedFrame(s2.last().id));
  ctx.clock.advance(5_000);
  assert.deepEqual(numbered(s2), [], "the old session's candidate is not sent into the new one");
});

test("a refused presence update goes again; its promise waits for that Ack, and self follows", async () => {
  const { ctx, s } = start();
  let settled = false;
  const p = ctx.client.updatePresence({ audio: "off" }).then(() => (settled = true));
  refuse(s, last(s).id);
  await flush();
  assert.equal(settled, false, "not applied: the promise waits");
  ctx.clock.advance(DELAYS[0]!);
  const again = last(s);
  assert.equal(what(again), 'presence {"audio":"off"}');
  ack(s, again.id);
  await p;
  assert.deepEqual({ ...ctx.client.self?.attributes }, { audio: "off" });
});

test("a presence update given up: the promise rejects, self keeps what the server has, undelivered says so", async () => {
  const { ctx, s } = start();
  const p = ctx.client.updatePresence({ audio: "off" });
  const outcome = p.then(
    () => "resolved",
    (e: { code?: ErrorCode }) => e.code,
  );
  for (const delay of DELAYS) {
    refuse(s, last(s).id);
    ctx.clock.advance(delay);
  }
  refuse(s, last(s).id);
  assert.equal(await outcome, ErrorCode.rate_limited);
  assert.equal(ctx.client.self?.attributes.audio, undefined, "never acknowledged");
  assert.deepEqual(
    ctx.events.undelivered?.map((u) => [u.message, u.attempts]),
    [["presence", 7]],
  );
});

test("a refused presence update that a newer one replaced is not sent again; its promise resolves", async () => {
  const { ctx, s } = start();
  const older = ctx.client.updatePresence({ audio: "off" });
  const olderId = last(s).id;
  const newer = ctx.client.updatePresence({ audio: "on" });
  const newerId = last(s).id;
  refuse(s, olderId);
  await older;
  ctx.clock.advance(10_000);
  assert.equal(numbered(s).length, 2);
  ack(s, newerId);
  await newer;
  assert.deepEqual({ ...ctx.client.self?.attributes }, { audio: "on" });
  // Refused while its re-send waits: the newer one wins then too.
  const a = ctx.client.updatePresence({ audio: "off" });
  refuse(s, last(s).id);
  void ctx.client.updatePresence({ audio: "on", video: "on" });
  ctx.clock.advance(10_000);
  await a;
  assert.deepEqual(numbered(s).slice(2).map(what), ['presence {"audio":"off"}', 'presence {"audio":"on","video":"on"}']);
});

test("the edge's own rate (no request id): reported as unknown; an unanswered presence update goes again", async () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", cand("c1"));
  const p = ctx.client.updatePresence({ audio: "off" });
  s.push({ seq: 0n, message: { case: "error", value: { code: ErrorCode.rate_limited, message: "message dropped: rate exceeded", retryable: true } } });
  assert.deepEqual(
    ctx.events.undelivered?.map((u) => [u.message, u.attempts]),
    [["unknown", 1]],
  );
  ctx.clock.advance(DELAYS[0]!);
  assert.deepEqual(numbered(s).map(what), ["candidate c1", 'presence {"audio":"off"}', 'presence {"audio":"off"}']);
  ack(s, last(s).id);
  await p;
  // Once acknowledged, another such error has no presence to send again.
  s.push({ seq: 0n, message: { case: "error", value: { code: ErrorCode.rate_limited, message: "message dropped: rate exceeded", retryable: true } } });
  ctx.clock.advance(10_000);
  assert.equal(numbered(s).length, 3);
});

test("an offer given up is a signalRefused with rate_limited too (the mesh rolls it back and offers again)", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", offer(sdp("111")));
  for (const delay of DELAYS) {
    refuse(s, last(s).id);
    ctx.clock.advance(delay);
  }
  refuse(s, last(s).id);
  assert.deepEqual(
    ctx.events.signalRefused?.map((r) => [r.to, r.type, r.error.code]),
    [["bob-2", "offer", ErrorCode.rate_limited]],
  );
  assert.equal(ctx.events.undelivered?.[0]?.signal, "offer");
});

test("messages are forgotten 10 s after an accepted covered them: a later refusal is not retried", () => {
  const { ctx, s } = start();
  ctx.client.sendSignal("bob-2", cand("c1"));
  const id = last(s).id;
  s.push({ seq: 0n, message: { case: "accepted", value: { seq: last(s).seq } } });
  ctx.clock.advance(10_000);
  ctx.client.sendSignal("bob-2", cand("c2")); // remembering is pruned as messages come
  refuse(s, id);
  ctx.clock.advance(10_000);
  assert.equal(numbered(s).length, 2);
});
