import { test } from "node:test";
import assert from "node:assert/strict";
import { Negotiator, decideOnDescription, type PeerConnectionLike } from "../../src/rtc/negotiation";
import type { SignalKindInit } from "@switchboard/signaling";
import { create } from "@bufbuild/protobuf";
import { PeerSignalSchema, type PeerSignal } from "@switchboard/signaling/proto";
import { FakePeerConnection, ManualClock, flush } from "./fakes";

test("an offer in stable state is accepted by either role", () => {
  for (const polite of [true, false]) {
    const d = decideOnDescription({ type: "offer", polite, makingOffer: false, signalingState: "stable", settingRemoteAnswerPending: false });
    assert.deepEqual(d, { collision: false, ignore: false, rollsBack: false });
  }
});

test("glare: the impolite side ignores the incoming offer", () => {
  const whileMaking = decideOnDescription({ type: "offer", polite: false, makingOffer: true, signalingState: "stable", settingRemoteAnswerPending: false });
  assert.deepEqual(whileMaking, { collision: true, ignore: true, rollsBack: false });
  const withLocalOffer = decideOnDescription({ type: "offer", polite: false, makingOffer: false, signalingState: "have-local-offer", settingRemoteAnswerPending: false });
  assert.deepEqual(withLocalOffer, { collision: true, ignore: true, rollsBack: false });
});

test("glare: the polite side rolls back and accepts", () => {
  const d = decideOnDescription({ type: "offer", polite: true, makingOffer: false, signalingState: "have-local-offer", settingRemoteAnswerPending: false });
  assert.deepEqual(d, { collision: true, ignore: false, rollsBack: true });
});

test("an offer while our answer is being applied is not a collision", () => {
  const d = decideOnDescription({ type: "offer", polite: false, makingOffer: false, signalingState: "have-local-offer", settingRemoteAnswerPending: true });
  assert.equal(d.collision, false);
  assert.equal(d.ignore, false);
});

test("answers are never ignored", () => {
  for (const polite of [true, false]) {
    const d = decideOnDescription({ type: "answer", polite, makingOffer: true, signalingState: "have-local-offer", settingRemoteAnswerPending: false });
    assert.equal(d.ignore, false);
    assert.equal(d.collision, false);
  }
});

/** Two negotiators wired through an async relay, like the server does. */
function pair() {
  const pcA = new FakePeerConnection("alice");
  const pcB = new FakePeerConnection("bob");
  const toB: SignalKindInit[] = [];
  const toA: SignalKindInit[] = [];
  const errors: unknown[] = [];
  // "alice-1" < "bob-2": alice is polite towards bob, bob impolite towards alice.
  const clock = new ManualClock();
  const opts = { onError: (e: unknown) => errors.push(e), clock, stallMs: 6000 };
  const a = new Negotiator(pcA as unknown as PeerConnectionLike, true, (k) => toB.push(k), opts);
  const b = new Negotiator(pcB as unknown as PeerConnectionLike, false, (k) => toA.push(k), opts);
  const asReceived = (k: SignalKindInit): PeerSignal["kind"] => create(PeerSignalSchema, { kind: k }).kind;
  /** Delivers queued signals in order until both queues are empty. */
  async function relay(): Promise<void> {
    for (let rounds = 0; rounds < 50 && (toA.length || toB.length); rounds++) {
      const forB = toB.splice(0);
      const forA = toA.splice(0);
      await Promise.all([...forB.map((k) => b.handle(asReceived(k))), ...forA.map((k) => a.handle(asReceived(k)))]);
      await flush();
    }
  }
  return { pcA, pcB, a, b, toA, toB, errors, relay, clock };
}

test("one side negotiating: offer, answer, both stable", async () => {
  const { pcA, pcB, a, b, errors, relay } = pair();
  pcA.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  await relay();
  assert.equal(pcA.signalingState, "stable");
  assert.equal(pcB.signalingState, "stable");
  assert.equal(pcB.remoteDescription?.sdp, "alice-offer-1");
  assert.equal(pcA.remoteDescription?.type, "answer");
  assert.equal(a.stats.offersSent, 1);
  assert.equal(b.stats.answersSent, 1);
  assert.deepEqual(errors, []);
});

test("glare resolves: polite rolls back, impolite's offer wins, no errors", async () => {
  const { pcA, pcB, a, b, errors, relay } = pair();
  // Both add tracks at once: both want to negotiate.
  pcA.dispatchEvent(new Event("negotiationneeded"));
  pcB.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  assert.equal(pcA.signalingState, "have-local-offer");
  assert.equal(pcB.signalingState, "have-local-offer");
  await relay();
  assert.equal(pcA.signalingState, "stable");
  assert.equal(pcB.signalingState, "stable");
  assert.equal(b.stats.offersIgnored, 1, "impolite ignored the colliding offer");
  assert.equal(a.stats.rollbacks, 1, "polite rolled back");
  assert.equal(pcA.implicitRollbacks, 1);
  assert.equal(pcA.remoteDescription?.sdp, "bob-offer-1", "the impolite offer was applied");
  assert.equal(pcB.remoteDescription?.type, "answer");
  assert.deepEqual(errors, []);
});

test("candidates of an ignored offer are dropped silently; others are applied", async () => {
  const { pcA, pcB, b, errors, relay } = pair();
  pcA.dispatchEvent(new Event("negotiationneeded"));
  pcB.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  // alice (polite) trickles a candidate for her (soon rolled back) offer.
  pcA.gather("candidate:1 1 udp 1 127.0.0.1 5000 typ host");
  pcB.gather("candidate:2 1 udp 1 127.0.0.1 5001 typ host");
  pcB.gather(null);
  await relay();
  assert.deepEqual(errors, []);
  assert.equal(b.stats.errors, 0);
  // alice applied bob's candidate and the end-of-candidates indication.
  assert.equal(pcA.candidates.length, 2);
  assert.equal(pcA.candidates[0]?.candidate, "candidate:2 1 udp 1 127.0.0.1 5001 typ host");
  assert.equal(pcA.candidates[0]?.sdpMid, "0");
  assert.equal(pcA.candidates[1], undefined);
  assert.ok(pcB.signalingState === "stable");
});

test("trickle ICE: each candidate is sent, then endOfCandidates", () => {
  const { pcA, toB } = pair();
  pcA.gather("candidate:1 1 udp 1 127.0.0.1 5000 typ host");
  pcA.gather("");
  pcA.gather(null);
  assert.deepEqual(
    toB.map((k) => k?.case),
    ["candidate", "endOfCandidates"],
  );
  const c = toB[0];
  assert.ok(c?.case === "candidate");
  if (c?.case === "candidate") {
    assert.equal(c.value.sdpMLineIndex, 0);
    assert.equal(c.value.usernameFragment, "uf");
  }
});

test("ICE failure triggers an ICE restart, renegotiated end to end", async () => {
  const { pcA, pcB, a, relay } = pair();
  pcA.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  await relay();
  pcA.iceConnectionState = "failed";
  pcA.dispatchEvent(new Event("iceconnectionstatechange"));
  assert.equal(pcA.iceRestarts, 1);
  assert.equal(a.stats.iceRestarts, 1);
  await flush();
  await relay();
  assert.equal(a.stats.offersSent, 2);
  assert.equal(pcB.remoteDescription?.sdp, "alice-offer-2");
  assert.equal(pcA.signalingState, "stable");
});

test("a stray answer in stable state is reported, not thrown", async () => {
  const { b, errors } = pair();
  await b.handle(create(PeerSignalSchema, { kind: { case: "description", value: { type: 2, sdp: "x" } } }).kind);
  assert.equal(b.stats.errors, 1);
  assert.equal(errors.length, 1);
});

test("after dispose, events and signals are ignored", async () => {
  const { pcA, a, toB } = pair();
  a.dispose();
  pcA.dispatchEvent(new Event("negotiationneeded"));
  pcA.gather("candidate:1");
  await flush();
  assert.equal(toB.length, 0);
  await a.handle(create(PeerSignalSchema, { kind: { case: "description", value: { type: 1, sdp: "x" } } }).kind);
  assert.equal(pcA.signalingState, "stable");
});

test("a candidate of an ignored offer that fails after the next answer is still not an error", async () => {
  const { pcB, b, errors } = pair();
  pcB.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  assert.equal(pcB.signalingState, "have-local-offer");
  const signal = (kind: SignalKindInit) => create(PeerSignalSchema, { kind }).kind;
  await b.handle(signal({ case: "description", value: { type: 1, sdp: "alice-offer-1" } }));
  assert.equal(b.stats.offersIgnored, 1);
  // The candidate's rejection lands after the answer has been received.
  const cand = b.handle(signal({ case: "candidate", value: { candidate: "candidate:9 1 udp 1 127.0.0.1 9 typ host" } }));
  const answer = b.handle(signal({ case: "description", value: { type: 2, sdp: "alice-answer-2" } }));
  await Promise.all([cand, answer]);
  assert.deepEqual(errors, []);
  assert.equal(pcB.signalingState, "stable");
  assert.equal(pcB.remoteDescription?.sdp, "alice-answer-2");
});

test("a connection stuck after negotiating is ICE-restarted, impolite side first", async () => {
  const { pcA, pcB, a, b, relay, clock } = pair();
  pcA.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  await relay();
  assert.equal(pcA.signalingState, "stable");
  // ICE never gets anywhere: both stay "new".
  clock.advance(5000);
  assert.equal(b.stats.stallRestarts, 0);
  clock.advance(2000);
  assert.equal(b.stats.stallRestarts, 1, "impolite side restarts after stallMs");
  assert.equal(a.stats.stallRestarts, 0, "polite side waits longer");
  assert.equal(pcB.iceRestarts, 1);
  await flush();
  await relay();
  assert.equal(pcA.remoteDescription?.sdp, "bob-offer-2", "the restart renegotiated (bob answered once, then offered)");
});

test("a connected peer never triggers the stall watchdog", async () => {
  const { pcA, pcB, a, b, relay, clock } = pair();
  pcA.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  await relay();
  pcA.connectionState = "connected";
  pcB.connectionState = "connected";
  clock.advance(60_000);
  assert.equal(a.stats.stallRestarts + b.stats.stallRestarts, 0);
});

test("beforeAnswer runs after the remote offer is applied and before the answer", async () => {
  const pc = new FakePeerConnection("carol");
  const seen: string[] = [];
  const n = new Negotiator(pc as unknown as PeerConnectionLike, true, () => void seen.push("sent"), {
    beforeAnswer: () => seen.push(`before-answer:${pc.signalingState}`),
    clock: new ManualClock(),
  });
  await n.handle(create(PeerSignalSchema, { kind: { case: "description", value: { type: 1, sdp: "x" } } }).kind);
  assert.deepEqual(seen, ["before-answer:have-remote-offer", "sent"]);
  assert.equal(pc.signalingState, "stable");
});

test("an offer signaling gave up on (the room's message rate) is rolled back and made again; the call connects", async () => {
  const { pcA, pcB, a, b, toA, errors, relay } = pair();
  // bob is the impolite side: stuck in have-local-offer he would ignore alice's offers.
  pcB.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  assert.equal(pcB.signalingState, "have-local-offer");
  toA.length = 0; // the offer never reached alice
  await b.offerLost();
  await flush();
  assert.deepEqual([pcB.rollbacks, pcB.offersMade], [1, 2], "rolled back, then a new offer");
  assert.equal(b.stats.offersLost, 1);
  await relay();
  assert.equal(pcA.remoteDescription?.sdp, "bob-offer-2");
  assert.equal(pcA.signalingState, "stable");
  assert.equal(pcB.signalingState, "stable");
  // Nothing pending (stable): a late report changes nothing.
  await b.offerLost();
  assert.equal(b.stats.offersLost, 1);
  assert.equal(a.stats.errors + b.stats.errors, 0);
  assert.deepEqual(errors, []);
});
