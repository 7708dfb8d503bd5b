/** Test doubles: a WebSocket, a manual clock and an RTCPeerConnection model. */
import { decodeClientMessage, encodeServerMessage, type Clock, type SocketLike } from "@switchboard/signaling";
import type { ClientMessage } from "@switchboard/signaling/proto";

type ServerInit = Parameters<typeof encodeServerMessage>[0];

/** A clock whose time only moves when the test says so. */
export class ManualClock implements Clock {
  private t = 1_000_000;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Delay of the earliest pending timer, if any. */
  nextDelay(): number | undefined {
    let min: number | undefined;
    for (const { at } of this.timers.values()) min = min === undefined ? at : Math.min(min, at);
    return min === undefined ? undefined : min - this.t;
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

/** A WebSocket the test opens, feeds and closes by hand. */
export class FakeSocket implements SocketLike {
  readyState = 0;
  sent: string[] = [];
  closedWith: { code?: number; reason?: string } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(data);
  }
  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }
  /** Decoded client messages sent so far. */
  messages(): ClientMessage[] {
    return this.sent.map((s) => decodeClientMessage(s));
  }
  last(): ClientMessage {
    const all = this.messages();
    const m = all[all.length - 1];
    if (!m) throw new Error("nothing sent");
    return m;
  }
  // ---- server side ----
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  push(init: ServerInit): void {
    this.onmessage?.({ data: encodeServerMessage(init) });
  }
  pushRaw(text: string): void {
    this.onmessage?.({ data: text });
  }
  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** Records every socket the client creates. */
export class SocketFactory {
  readonly sockets: FakeSocket[] = [];
  readonly create = (url: string): FakeSocket => {
    const s = new FakeSocket(url);
    this.sockets.push(s);
    return s;
  };
  get latest(): FakeSocket {
    const s = this.sockets[this.sockets.length - 1];
    if (!s) throw new Error("no socket created");
    return s;
  }
}

/** Lets pending promise callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * A model of RTCPeerConnection's signaling state machine (JSEP): enough to
 * exercise perfect negotiation, including implicit rollback on glare.
 */
export class FakePeerConnection extends EventTarget {
  signalingState: RTCSignalingState = "stable";
  iceConnectionState: RTCIceConnectionState = "new";
  connectionState: RTCPeerConnectionState = "new";
  localDescription: RTCSessionDescriptionInit | null = null;
  remoteDescription: RTCSessionDescriptionInit | null = null;
  readonly candidates: (RTCIceCandidateInit | undefined)[] = [];
  implicitRollbacks = 0;
  iceRestarts = 0;
  private n = 0;

  constructor(readonly name: string) {
    super();
  }

  /** Offers created so far (each `setLocalDescription` that made one). */
  offersMade = 0;
  rollbacks = 0;

  async setLocalDescription(desc?: RTCSessionDescriptionInit): Promise<void> {
    await Promise.resolve();
    const before = this.signalingState;
    this.applyLocal(desc);
    if (this.signalingState !== before) this.dispatchEvent(new Event("signalingstatechange"));
  }

  private applyLocal(desc?: RTCSessionDescriptionInit): void {
    const type =
      desc?.type ?? (this.signalingState === "have-remote-offer" ? "answer" : "offer");
    if (type === "rollback") {
      if (this.signalingState !== "have-local-offer" && this.signalingState !== "have-remote-offer")
        throw new DOMException(`rollback in ${this.signalingState}`, "InvalidStateError");
      if (this.signalingState === "have-local-offer") this.localDescription = null;
      else this.remoteDescription = null;
      this.rollbacks += 1;
      this.signalingState = "stable";
      return;
    }
    if (type === "offer") {
      if (this.signalingState !== "stable" && this.signalingState !== "have-local-offer")
        throw new DOMException(`offer in ${this.signalingState}`, "InvalidStateError");
      this.offersMade += 1;
      this.localDescription = { type, sdp: `${this.name}-offer-${++this.n}` };
      this.signalingState = "have-local-offer";
    } else {
      if (this.signalingState !== "have-remote-offer")
        throw new DOMException(`answer in ${this.signalingState}`, "InvalidStateError");
      this.localDescription = { type: "answer", sdp: `${this.name}-answer-${++this.n}` };
      this.signalingState = "stable";
    }
  }

  async setRemoteDescription(desc: RTCSessionDescriptionInit): Promise<void> {
    await Promise.resolve();
    const before = this.signalingState;
    this.applyRemote(desc);
    if (this.signalingState !== before) this.dispatchEvent(new Event("signalingstatechange"));
  }

  private applyRemote(desc: RTCSessionDescriptionInit): void {
    if (desc.type === "offer") {
      if (this.signalingState === "have-local-offer") {
        this.implicitRollbacks += 1;
        this.localDescription = null;
      } else if (this.signalingState !== "stable") {
        throw new DOMException(`offer in ${this.signalingState}`, "InvalidStateError");
      }
      this.remoteDescription = desc;
      this.signalingState = "have-remote-offer";
    } else {
      if (this.signalingState !== "have-local-offer")
        throw new DOMException(`answer in ${this.signalingState}`, "InvalidStateError");
      this.remoteDescription = desc;
      this.signalingState = "stable";
    }
  }

  async addIceCandidate(c?: RTCIceCandidateInit): Promise<void> {
    await Promise.resolve();
    if (!this.remoteDescription) throw new DOMException("no remote description", "InvalidStateError");
    this.candidates.push(c);
  }

  restartIce(): void {
    this.iceRestarts += 1;
    this.dispatchEvent(new Event("negotiationneeded"));
  }

  /** Test helper: emit a gathered candidate (null = gathering complete). */
  gather(candidate: string | null): void {
    const ev = new Event("icecandidate") as Event & { candidate: unknown };
    ev.candidate =
      candidate === null
        ? null
        : { candidate, sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "uf" };
    this.dispatchEvent(ev);
  }
}
