/**
 * A SignalingClient on a fake socket and a manual clock, with every event
 * recorded, and the server frames the tests push most (Joined, Resumed).
 */
import assert from "node:assert/strict";
import { SignalingClient, type SignalingEvents } from "@switchboard/signaling";
import { ManualClock, SocketFactory } from "./fakes";

export const URL = "ws://edge.test/ws";

const RECORDED = [
  "state",
  "joined",
  "resumed",
  "participantJoined",
  "participantLeft",
  "signal",
  "selfUpdated",
  "roomUpdated",
  "moved",
  "data",
  "signalRefused",
  "undelivered",
  "tokenRefreshed",
  "serverError",
  "disconnected",
  "stopped",
] as const satisfies readonly (keyof SignalingEvents)[];

export function setup(extra: Partial<ConstructorParameters<typeof SignalingClient>[0]> = {}) {
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
  for (const k of RECORDED) record(k);
  return { clock, sockets, client, events };
}

export type Ctx = ReturnType<typeof setup>;

export interface JoinedExtra {
  participants?: unknown[];
  self?: unknown;
  roomMetadata?: string;
  sessionId?: string;
  room?: string;
  maxParticipants?: number;
}

export function joinedFrame(requestId = 1, extra: JoinedExtra = {}) {
  return {
    seq: 1n,
    message: {
      case: "joined" as const,
      value: {
        requestId,
        sessionId: extra.sessionId ?? "sess-1",
        resumeToken: "rt-1",
        room: extra.room ?? "demo",
        self: (extra.self ?? { id: "alice-1", name: "Alice" }) as never,
        participants: (extra.participants ?? [{ id: "bob-2", name: "Bob", polite: true }]) as never,
        iceServers: [{ urls: ["stun:127.0.0.1:3478"] }],
        keepalive: { intervalMs: 10_000, timeoutMs: 30_000 },
        limits: { maxParticipants: extra.maxParticipants ?? 0 },
        roomMetadata: extra.roomMetadata ?? "",
      },
    },
  };
}

/** Connects and completes a Join; returns the first socket. */
export function joinFirst(ctx: Ctx, extra: JoinedExtra = {}) {
  ctx.client.connect();
  const s = ctx.sockets.latest;
  s.open();
  s.push(joinedFrame(s.last().id, extra));
  return s;
}

export function resumedFrame(requestId: number, complete = true) {
  return {
    seq: 0n,
    message: { case: "resumed" as const, value: { requestId, sessionId: "sess-1", resumeToken: "rt-2", complete } },
  };
}

/** Drops the socket like a network cut and opens the next one (Resume sent). */
export function reconnect(ctx: Ctx, s: ReturnType<typeof joinFirst>) {
  s.serverClose(1006);
  ctx.clock.advance(ctx.clock.nextDelay() ?? 0);
  const next = ctx.sockets.latest;
  assert.notEqual(next, s);
  next.open();
  return next;
}
