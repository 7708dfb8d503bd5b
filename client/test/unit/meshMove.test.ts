/**
 * The mesh when the session changes rooms: a `moved` closes the old room's
 * connections and connects to the new room's members (we offer); a rejoin
 * keeps the connections of the same room but not of another one (a rejoin
 * after a move goes back to the token's room). Also: an offer the signaling
 * client gave up on (the room's message rate) is made again. Real
 * SignalingClient on a fake socket; fake peer connections.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { RETRY_ATTEMPTS } from "@switchboard/signaling";
import { ErrorCode, SessionDescription_Type } from "@switchboard/signaling/proto";
import { Mesh } from "../../src/rtc/mesh";
import { FakePeerConnection, flush } from "./fakes";
import { joinFirst, joinedFrame, reconnect, setup, type Ctx } from "./signalingHarness";

/** Node has no MediaStream; the mesh only keeps tracks in one. */
class FakeMediaStream {
  private tracks: MediaStreamTrack[] = [];
  getTracks(): MediaStreamTrack[] {
    return [...this.tracks];
  }
  addTrack(t: MediaStreamTrack): void {
    this.tracks.push(t);
  }
  removeTrack(t: MediaStreamTrack): void {
    this.tracks = this.tracks.filter((x) => x !== t);
  }
}
(globalThis as { MediaStream?: unknown }).MediaStream ??= FakeMediaStream;

/** A peer connection the mesh can open a chat channel on and close. */
class MeshPc extends FakePeerConnection {
  closed = false;
  channels = 0;
  createDataChannel(): RTCDataChannel {
    this.channels += 1;
    const ch = new EventTarget() as EventTarget & { readyState: string; close(): void; send(): void };
    ch.readyState = "connecting";
    ch.close = () => {
      ch.readyState = "closed";
    };
    ch.send = () => {};
    return ch as unknown as RTCDataChannel;
  }
  close(): void {
    this.closed = true;
    this.connectionState = "closed";
  }
  /** Test helper: ICE connected. */
  connect(): void {
    this.connectionState = "connected";
    this.iceConnectionState = "connected";
    this.dispatchEvent(new Event("connectionstatechange"));
  }
}

const carol = { id: "carol-3", name: "Carol", polite: true, permissions: { publish: true } };
const dave = { id: "dave-4", name: "Dave", polite: true, permissions: { publish: true } };

function meshOn(ctx: Ctx) {
  const pcs: MeshPc[] = [];
  const mesh = new Mesh(ctx.client, {
    createPeerConnection: () => {
      const pc = new MeshPc(`pc${pcs.length}`);
      pcs.push(pc);
      return pc as unknown as RTCPeerConnection;
    },
  });
  return { mesh, pcs };
}

function movedFrame(seq: bigint, room: string, participants: unknown[]) {
  return { seq, message: { case: "moved" as const, value: { room, participants: participants as never, roomMetadata: "", maxParticipants: 4 } } };
}

test("moved: the old room's connections close, the new room's members are connected to, and we offer", async () => {
  const ctx = setup();
  const { mesh, pcs } = meshOn(ctx);
  try {
    const s = joinFirst(ctx, { room: "standup" }); // with bob-2
    const bobPc = pcs[0];
    assert.ok(bobPc);
    bobPc.connect();
    assert.deepEqual(mesh.view().map((p) => p.id), ["bob-2"]);

    s.push(movedFrame(2n, "breakout-1", [carol, dave]));
    assert.equal(bobPc.closed, true, "bob stays behind in the old room");
    assert.deepEqual(mesh.view().map((p) => p.id), ["carol-3", "dave-4"]);
    assert.equal(mesh.stats.moves, 1);
    const carolPc = mesh.connection("carol-3") as unknown as MeshPc;
    assert.equal(carolPc.channels, 1, "attached at once: the newcomer (us) offers");

    // The browser asks for a negotiation once tracks and channel are on.
    const before = s.messages().length;
    carolPc.dispatchEvent(new Event("negotiationneeded"));
    await flush();
    const offers = s
      .messages()
      .slice(before)
      .flatMap((m) => (m.message.case === "signal" ? [m.message.value] : []))
      .filter((v) => v.kind.case === "description" && v.kind.value.type === SessionDescription_Type.OFFER);
    assert.deepEqual(offers.map((o) => o.to), ["carol-3"]);
  } finally {
    mesh.close();
  }
});

test("a move into an empty room leaves no one; someone joining it later is connected to", async () => {
  const ctx = setup();
  const { mesh, pcs } = meshOn(ctx);
  try {
    const s = joinFirst(ctx);
    s.push(movedFrame(2n, "breakout-1", []));
    assert.equal(pcs[0]?.closed, true);
    assert.deepEqual(mesh.view(), []);
    // Someone who left the old room earlier (departed there) comes to this one.
    s.push({ seq: 3n, message: { case: "participantJoined", value: { participant: { ...carol, polite: true } } } });
    assert.deepEqual(mesh.view().map((p) => p.id), ["carol-3"]);
  } finally {
    mesh.close();
  }
});

test("a rejoin in the same room keeps a working connection; a rejoin in another room (after a move) starts over", () => {
  const ctx = setup();
  const { mesh, pcs } = meshOn(ctx);
  try {
    const s = joinFirst(ctx, { room: "standup" });
    pcs[0]?.connect();
    // The session is lost; the new one is in the same room: kept.
    const s2 = reconnect(ctx, s);
    s2.serverClose(4404, "not_found: no such session");
    ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
    const s3 = ctx.sockets.latest;
    s3.open();
    s3.push(joinedFrame(s3.last().id, { room: "standup", sessionId: "sess-2" }));
    assert.equal(pcs.length, 1, "no new connection");
    assert.equal(pcs[0]?.closed, false);
    assert.equal(mesh.stats.keptOnRejoin, 1);

    // Moved to a breakout room, connected to carol there.
    s3.push(movedFrame(2n, "breakout-1", [carol]));
    const carolPc = mesh.connection("carol-3") as unknown as MeshPc;
    carolPc.connect();
    // Lost again: the new session is in the token's room, with bob.
    const s4 = reconnect(ctx, s3);
    s4.serverClose(4404, "not_found: no such session");
    ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
    const s5 = ctx.sockets.latest;
    s5.open();
    s5.push(joinedFrame(s5.last().id, { room: "standup", sessionId: "sess-3" }));
    assert.equal(carolPc.closed, true, "carol's connection belongs to the room we are no longer in");
    assert.deepEqual(mesh.view().map((p) => p.id), ["bob-2"]);
    assert.equal(mesh.stats.moves, 2);
  } finally {
    mesh.close();
  }
});

test("an offer signaling gave up on (the room over its message rate) is rolled back and made again", async () => {
  const ctx = setup();
  const { mesh, pcs } = meshOn(ctx);
  try {
    const s = joinFirst(ctx); // with bob-2, who waits for our offer
    const bobPc = pcs[0];
    assert.ok(bobPc);
    bobPc.dispatchEvent(new Event("negotiationneeded"));
    await flush();
    const offers = () =>
      s.messages().filter((m) => m.message.case === "signal" && m.message.value.kind.case === "description");
    assert.equal(offers().length, 1);
    let seq = 1n;
    for (let i = 0; i <= RETRY_ATTEMPTS; i += 1) {
      seq += 1n;
      const id = offers().at(-1)?.id ?? 0;
      s.push({ seq, message: { case: "error", value: { requestId: id, code: ErrorCode.rate_limited, message: "room over its rate", retryable: true } } });
      ctx.clock.advance(4000);
      await flush();
    }
    assert.equal(bobPc.rollbacks, 1, "the undelivered offer is rolled back");
    assert.equal(bobPc.offersMade, 2, "and a new one made");
    assert.equal(offers().length, RETRY_ATTEMPTS + 2, "the original, its retries, and the new offer");
    assert.equal(bobPc.signalingState, "have-local-offer");
  } finally {
    mesh.close();
  }
});
