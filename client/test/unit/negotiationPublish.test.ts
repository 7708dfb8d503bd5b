/**
 * Negotiation without the publish permission: offers are deferred, a
 * refused offer is rolled back and not retried in a loop, the other side's
 * offers are answered, and a grant brings the deferred offer back.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import type { SignalKindInit } from "@switchboard/signaling";
import { PeerSignalSchema, SessionDescription_Type, type PeerSignal } from "@switchboard/signaling/proto";
import { Negotiator, decideOnRefusedOffer, type PeerConnectionLike } from "../../src/rtc/negotiation";
import { FakePeerConnection, ManualClock, flush } from "./fakes";

test("a refused offer: one retry only while we believe we may and nothing was refused since we were told", () => {
  assert.equal(decideOnRefusedOffer({ mayOffer: true, refusedSinceAllowed: 0 }), "retry");
  assert.equal(decideOnRefusedOffer({ mayOffer: true, refusedSinceAllowed: 1 }), "wait");
  assert.equal(decideOnRefusedOffer({ mayOffer: false, refusedSinceAllowed: 0 }), "wait");
  assert.equal(decideOnRefusedOffer({ mayOffer: false, refusedSinceAllowed: 5 }), "wait");
});

const isOffer = (k: SignalKindInit) => k?.case === "description" && k.value.type === SessionDescription_Type.OFFER;
const asReceived = (k: SignalKindInit): PeerSignal["kind"] => create(PeerSignalSchema, { kind: k }).kind;

/**
 * Viewer "vera" (may not publish, impolite: "vera" > "alice") and "alice"
 * (may), wired through a relay that, like the server, refuses vera's offers
 * while `server.veraMayPublish` is false.
 */
function call({ veraKnows = true } = {}) {
  const clock = new ManualClock();
  const pcV = new FakePeerConnection("vera");
  const pcA = new FakePeerConnection("alice");
  const toA: SignalKindInit[] = [];
  const toV: SignalKindInit[] = [];
  const errors: unknown[] = [];
  const server = { veraMayPublish: false, refused: 0 };
  const opts = { onError: (e: unknown) => errors.push(e), clock, stallMs: 6000 };
  const vera = new Negotiator(pcV as unknown as PeerConnectionLike, false, (k) => toA.push(k), { ...opts, mayOffer: !veraKnows });
  const alice = new Negotiator(pcA as unknown as PeerConnectionLike, true, (k) => toV.push(k), opts);
  async function relay(): Promise<void> {
    for (let rounds = 0; rounds < 50 && (toA.length || toV.length); rounds++) {
      const fromVera = toA.splice(0);
      const fromAlice = toV.splice(0);
      const work: Promise<void>[] = fromAlice.map((k) => vera.handle(asReceived(k)));
      for (const k of fromVera) {
        if (isOffer(k) && !server.veraMayPublish) {
          server.refused += 1;
          work.push(vera.offerRefused());
        } else work.push(alice.handle(asReceived(k)));
      }
      await Promise.all(work);
      await flush();
    }
  }
  return { clock, pcV, pcA, vera, alice, server, errors, relay };
}

test("without publish, a needed negotiation is deferred; the other side's offer is answered", async () => {
  const c = call();
  c.pcV.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  assert.equal(c.pcV.offersMade, 0, "no offer made");
  assert.equal(c.vera.stats.offersDeferred, 1);
  c.pcA.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  await c.relay();
  assert.equal(c.server.refused, 0);
  assert.equal(c.pcV.signalingState, "stable");
  assert.equal(c.pcA.signalingState, "stable");
  assert.equal(c.pcV.remoteDescription?.sdp, "alice-offer-1");
  assert.equal(c.vera.stats.answersSent, 1, "answers pass");
  assert.deepEqual(c.errors, []);
});

test("an offer refused before we heard of the revocation: rolled back, retried once, then no more offers", async () => {
  const c = call({ veraKnows: false });
  c.pcV.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  await c.relay();
  assert.equal(c.server.refused, 2, "the offer and its one retry");
  assert.equal(c.pcV.offersMade, 2);
  assert.equal(c.pcV.signalingState, "stable", "rolled back: ready for the other side's offers");
  assert.equal(c.pcV.rollbacks, 2);
  // More negotiation needed (an ICE failure, a track): deferred, not offered.
  for (let i = 0; i < 5; i++) c.pcV.dispatchEvent(new Event("negotiationneeded"));
  c.vera.restartIce();
  c.clock.advance(60_000); // the stall watchdog does not offer either
  await flush();
  await c.relay();
  assert.equal(c.pcV.offersMade, 2, "no loop");
  assert.ok(c.vera.stats.offersDeferred >= 6);
  // The impolite viewer takes alice's offer (it is stable, not in glare).
  c.pcA.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  await c.relay();
  assert.equal(c.pcV.remoteDescription?.sdp, "alice-offer-1");
  assert.equal(c.vera.stats.offersIgnored, 0);
  assert.equal(c.pcA.signalingState, "stable");
  assert.deepEqual(c.errors, []);
});

test("told of the revocation: a refusal of an offer already on its way is not retried", async () => {
  const c = call({ veraKnows: false });
  c.pcV.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  c.vera.setMayOffer(false); // selfUpdated arrives before the refusal
  await c.relay();
  assert.equal(c.server.refused, 1);
  assert.equal(c.pcV.offersMade, 1);
  assert.equal(c.pcV.signalingState, "stable");
});

test("granted back: the deferred negotiation is offered once, and relayed", async () => {
  const c = call();
  c.pcV.dispatchEvent(new Event("negotiationneeded"));
  c.pcV.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  assert.equal(c.pcV.offersMade, 0);
  c.server.veraMayPublish = true;
  c.vera.setMayOffer(true);
  await flush();
  await c.relay();
  assert.equal(c.pcV.offersMade, 1, "one offer for what was deferred");
  assert.equal(c.pcA.remoteDescription?.sdp, "vera-offer-1");
  assert.equal(c.pcV.signalingState, "stable");
  c.vera.setMayOffer(true);
  await flush();
  assert.equal(c.pcV.offersMade, 1, "nothing more was wanted");
});

test("revoked again after a grant: one refused offer at most, then waiting again", async () => {
  const c = call({ veraKnows: false });
  c.server.veraMayPublish = true;
  c.pcV.dispatchEvent(new Event("negotiationneeded"));
  await flush();
  await c.relay();
  assert.equal(c.pcA.remoteDescription?.sdp, "vera-offer-1");
  c.server.veraMayPublish = false; // the client is told only later
  c.vera.restartIce();
  await flush();
  await c.relay();
  c.vera.setMayOffer(false);
  c.vera.restartIce();
  await flush();
  await c.relay();
  assert.equal(c.server.refused, 2, "the refused restart and its one retry");
  assert.equal(c.pcV.signalingState, "stable");
});

test("a refusal that arrives while the next offer is being made leaves that offer alone", async () => {
  const c = call({ veraKnows: false });
  c.pcV.dispatchEvent(new Event("negotiationneeded"));
  // The refusal comes while setLocalDescription is still pending.
  await c.vera.offerRefused();
  await flush();
  assert.equal(c.pcV.signalingState, "have-local-offer", "not rolled back under the offer in flight");
  assert.equal(c.pcV.rollbacks, 0);
});
