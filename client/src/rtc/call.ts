/**
 * One call as the UI sees it: the signaling session, the mesh of peer
 * connections and local capture tied together, with an immutable snapshot
 * for rendering (React reads it through useSyncExternalStore).
 */
import {
  Emitter,
  SignalingClient,
  errorCodeName,
  type ConnectionState,
  type SignalingStats,
  type StoredSession,
  type Undelivered,
} from "@switchboard/signaling";
import { ErrorCode, LeaveReason, type Error as ServerError } from "@switchboard/signaling/proto";
import { Mesh, type ChatMessage, type MeshStats, type PeerView } from "./mesh";
import type { MeshLoadWarning, OutgoingVideo } from "./meshLoad";
import { MeshLoadMonitor } from "./meshLoadMonitor";
import type { LocalMedia, LocalMediaState } from "./media";
import { PUBLISH_ALLOWED, mediaToStop, nextPublish, videoToSend, type PublishView } from "./publishPermission";

/**
 * Something that happened, for the UI to word: a reconnection, or an error
 * frame not tied to a request (its code and the server's message, which
 * are details, not words for a person).
 */
export type Notice =
  | { kind: "resumed" | "rejoined" }
  /** The `publish` permission came back: the camera and screen share may go on again. */
  | { kind: "publishGranted" }
  /**
   * We are in another room now: the application's backend moved us
   * (`backend`), or a new session after a lost one went back to the room
   * the token grants (`rejoin`).
   */
  | { kind: "moved"; room: string; by: "backend" | "rejoin" }
  /**
   * Signaling dropped something of ours for a message rate and could not
   * send it again (see `undelivered` in the signaling client); `detail`
   * says what, for the "Details" disclosure.
   */
  | { kind: "undelivered"; detail: string }
  | { kind: "error"; code: ErrorCode; detail: string };

/** A join or leave of someone else, for screen readers; `id` grows. */
export interface Announcement {
  id: number;
  text: string;
}

export interface CallSnapshot {
  status: ConnectionState;
  attempt: number;
  retryInMs?: number;
  notice: Notice | null;
  /** The latest "Bob joined" / "Bob left". */
  announcement: Announcement | null;
  selfId: string;
  /** Our name as the server has it (the backend may rename us), else the one typed. */
  selfName: string;
  /** The room we are in: the page's, or the one the backend moved us to. */
  room: string;
  /**
   * The room's metadata, set by the application's backend; opaque, so no
   * part of the UI reads it (see the README). For diagnostics.
   */
  roomMetadata: string;
  /** Whether we may send video (the `publish` permission); see publishPermission.ts. */
  publish: PublishView;
  /** The room's participant limit (the join reply, a move, a saved session); 0 when not known. */
  maxParticipants: number;
  peers: PeerView[];
  /** This device is not keeping up with the mesh (see meshLoad.ts); null: fine or not judged. */
  meshLoad: MeshLoadWarning | null;
  chat: ChatMessage[];
  media: LocalMediaState;
  /** Set when the session ended for good. */
  ended: { code: number; reason: string; left: boolean } | null;
}

export interface CallOptions {
  url: string;
  token: string;
  room: string;
  name: string;
  /** The identity the tokens are asked for (kept for a reload). */
  identity?: string;
  media: LocalMedia;
  refreshToken?: () => Promise<string>;
  /**
   * A session of an earlier page to resume (a reload), with our id in it
   * and what that page knew of our publish permission.
   */
  restore?: { session: StoredSession; selfId: string; publish?: PublishView };
}

/** Chat history kept in memory. */
const MAX_CHAT_HISTORY = 500;
/** Backend data messages kept for diagnostics (window.switchboard.data()). */
const MAX_DATA_KEPT = 100;
/**
 * After a move, how long a `not_found` error is taken for a signal that was
 * on its way to someone in the room we left (an ICE candidate sent just
 * before the move): expected, and nothing for the person to read.
 */
export const MOVE_SETTLE_MS = 5000;
/** How long "Reconnected" stays on screen. */
const NOTICE_MS = 5000;
/**
 * After signaling gave up on a presence update (the room over its message
 * rate for all its retries), how long until the latest attributes are sent
 * again, unless something else sends them first.
 */
export const PRESENCE_RESYNC_MS = 15_000;

/** What video we send: the screen while sharing, else the camera when on. */
export function outgoingVideoOf(m: LocalMediaState): OutgoingVideo {
  if (m.screen) return "screen";
  return m.camera && m.camOn ? "camera" : "none";
}

export function presenceOf(m: LocalMediaState): Record<string, string> {
  return {
    audio: m.audio && m.micOn ? "on" : "off",
    video: m.screen || (m.camera && m.camOn) ? "on" : "off",
    screen: m.screen ? "on" : "off",
  };
}

/**
 * The attributes to send: what the server has for us (the application's
 * backend may have set some, e.g. a role) with our presence keys over them.
 * An update replaces the whole map, so keys we do not own must go back.
 */
export function presenceFor(server: Readonly<Record<string, string>>, m: LocalMediaState): Record<string, string> {
  return { ...server, ...presenceOf(m) };
}

/** The same text for the same attributes in any order (what was sent vs what the server has). */
export function attributesKey(a: Readonly<Record<string, string>>): string {
  return JSON.stringify(Object.entries(a).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
}

/** What the live region says when someone leaves, by why they left. */
export function leftText(name: string, reason: LeaveReason): string {
  const who = name || "Someone";
  return reason === LeaveReason.moved ? `${who} moved to another room` : `${who} left`;
}

/**
 * The notice for an error frame, or null when there is nothing to tell:
 * errors answering a request are handled where the request was made, and
 * a `not_found` within MOVE_SETTLE_MS of a move refused a signal to the
 * room we left (`msSinceMove`: null when we were never moved).
 */
export function errorNotice(e: ServerError, msSinceMove: number | null): Notice | null {
  if (e.requestId !== 0) return null;
  // A message rate: the signaling client retries what it can and reports
  // what it lost (`undelivered`), which has its own notice.
  if (e.code === ErrorCode.rate_limited) return null;
  if (e.code === ErrorCode.not_found && msSinceMove !== null && msSinceMove < MOVE_SETTLE_MS) return null;
  return { kind: "error", code: e.code, detail: [errorCodeName(e.code), e.message].filter(Boolean).join(": ") };
}

/** The notice for what signaling could not send; its details name it. */
export function undeliveredNotice(u: Undelivered): Extract<Notice, { kind: "undelivered" }> {
  const what =
    u.message === "signal"
      ? `${u.signal ?? "signal"} to ${u.to ?? "?"}`
      : u.message === "presence"
        ? "presence update"
        : "a message (which one is unknown)";
  const tries = u.attempts > 1 ? ` after ${u.attempts} attempts` : "";
  const error = [errorCodeName(u.error.code), u.error.message].filter(Boolean).join(": ");
  return { kind: "undelivered", detail: `${what} not sent${tries}; ${error}` };
}

/** A data message from the application's backend, as kept for diagnostics. */
export interface ReceivedData {
  topic: string;
  payload: string;
  /** When it was handled (ms since the epoch). */
  at: number;
}

export class Call extends Emitter<{ change: CallSnapshot }> {
  readonly client: SignalingClient;
  readonly mesh: Mesh;
  readonly meshLoad: MeshLoadMonitor;
  private snap: CallSnapshot;
  private leftOnPurpose = false;
  private noticeTimer: ReturnType<typeof setTimeout> | null = null;
  /** The attributes last sent, as attributesKey; what the server has after an update was given up. */
  private lastPresence = "";
  private presenceTimer: ReturnType<typeof setTimeout> | null = null;
  /** Whether the server has told us about `publish` yet (Joined, or a restored session). */
  private publishKnown = false;
  /** When the backend last moved us (ms since the epoch); null: never. */
  private movedAt: number | null = null;
  /** The backend's data messages, newest last (at most MAX_DATA_KEPT). */
  private readonly dataKept: ReceivedData[] = [];
  private readonly offs: (() => void)[] = [];

  constructor(private readonly opts: CallOptions) {
    super();
    const media = opts.media;
    this.client = new SignalingClient({
      url: opts.url,
      token: opts.token,
      attributes: presenceOf(media.state),
      refreshToken: opts.refreshToken,
      restore: opts.restore?.session,
    });
    this.lastPresence = attributesKey(presenceOf(media.state));
    // Registered before the Mesh's handlers, so that `snap.peers` is still
    // what it was before the event: a peer we already show (the same
    // participant joining again after an outage) is no news.
    this.offs.push(
      this.client.on("participantJoined", (p) => {
        if (!this.snap.peers.some((peer) => peer.id === p.id)) this.announce(`${p.name || "Someone"} joined`);
      }),
      this.client.on("participantLeft", (l) => {
        const peer = this.snap.peers.find((x) => x.id === l.participantId);
        if (peer) this.announce(leftText(peer.name, l.reason));
      }),
    );
    this.mesh = new Mesh(this.client, {
      restoredSelf: opts.restore ? { id: opts.restore.selfId, name: opts.name } : undefined,
    });
    this.mesh.setTrack("audio", media.state.audio);
    this.meshLoad = new MeshLoadMonitor({
      connections: () =>
        this.snap.peers.flatMap((p) => {
          const pc = this.mesh.connection(p.id);
          return pc?.connectionState === "connected" ? [{ peerId: p.id, pc }] : [];
        }),
      video: () => outgoingVideoOf(this.opts.media.state),
    });
    this.snap = {
      status: "idle",
      attempt: 0,
      notice: null,
      announcement: null,
      selfId: opts.restore?.selfId ?? "",
      selfName: this.client.self?.name || opts.name,
      // A restored session may have been moved: it resumes in that room.
      room: this.client.room || opts.room,
      roomMetadata: this.client.roomMetadata,
      publish: opts.restore?.publish ?? PUBLISH_ALLOWED,
      maxParticipants: this.client.maxParticipants,
      peers: [],
      meshLoad: null,
      chat: [],
      media: media.state,
      ended: null,
    };
    const c = this.client;
    // A restored session knows our permission already (the earlier page's).
    if (opts.restore?.session.self !== undefined) this.applyPublish();
    this.mesh.setTrack("video", videoToSend(media.outgoingVideo, this.snap.publish));
    this.offs.push(
      c.on("state", ({ state, attempt, retryInMs }) => this.set({ status: state, attempt, retryInMs })),
      c.on("joined", ({ joined, rejoin }) => {
        const room = joined.room || opts.room;
        const elsewhere = rejoin && room !== this.snap.room;
        this.set({
          selfId: joined.self?.id ?? "",
          selfName: joined.self?.name || opts.name,
          room,
          maxParticipants: joined.limits?.maxParticipants ?? 0,
          roomMetadata: joined.roomMetadata,
        });
        this.applyPublish();
        // The peer connections were kept (see Mesh): for the person in the
        // call nothing was restarted, whatever happened to the session.
        // Unless the new session is in another room (we had been moved;
        // a new session goes back to the token's room): then say where.
        if (elsewhere) this.notify({ kind: "moved", room, by: "rejoin" });
        else if (rejoin) this.notify({ kind: "rejoined" });
      }),
      c.on("moved", ({ moved }) => {
        // The Mesh closes the old room's connections and connects to the
        // new one; the local media stays as it is.
        this.movedAt = Date.now();
        this.set({ room: moved.room, roomMetadata: moved.roomMetadata, maxParticipants: moved.maxParticipants });
        this.notify({ kind: "moved", room: moved.room, by: "backend" });
      }),
      c.on("data", ({ topic, payload }) => {
        // Opaque to this client (see the README): kept for diagnostics only.
        this.dataKept.push({ topic, payload, at: Date.now() });
        if (this.dataKept.length > MAX_DATA_KEPT) this.dataKept.shift();
      }),
      c.on("resumed", () => {
        this.notify({ kind: "resumed" });
        // After a reload the server has the old page's attributes.
        this.syncPresence(Boolean(opts.restore) && c.stats.resumes === 1);
      }),
      c.on("selfUpdated", ({ self }) => {
        // This is what the server has for us now: the backend may have
        // replaced our attributes, and our presence goes back over them
        // (once, with whatever applyPublish turns off).
        this.lastPresence = attributesKey(self.attributes);
        this.set({ selfName: self.name || opts.name });
        this.applyPublish();
        this.syncPresence(false);
      }),
      c.on("roomUpdated", ({ metadata }) => this.set({ roomMetadata: metadata })),
      c.on("undelivered", (u) => {
        this.notify(undeliveredNotice(u));
        if (u.message === "presence") this.presenceLost();
      }),
      c.on("serverError", (e) => {
        const notice = errorNotice(e, this.movedAt === null ? null : Date.now() - this.movedAt);
        if (notice) this.notify(notice);
      }),
      c.on("stopped", ({ code, reason }) => {
        this.meshLoad.stop();
        this.mesh.close();
        this.set({ ended: { code, reason, left: this.leftOnPurpose }, peers: [] });
      }),
      this.mesh.on("peers", (peers) => this.set({ peers })),
      this.meshLoad.on("change", (meshLoad) => this.set({ meshLoad })),
      this.mesh.on("chat", (msg) => {
        const chat = [...this.snap.chat, msg].slice(-MAX_CHAT_HISTORY);
        this.set({ chat });
      }),
      media.on("changed", (state) => this.onMedia(state)),
    );
  }

  get identity(): string {
    return this.opts.identity ?? "";
  }

  /** The backend's data messages received on this page (newest last). */
  get data(): readonly ReceivedData[] {
    return this.dataKept;
  }

  get snapshot(): CallSnapshot {
    return this.snap;
  }

  readonly subscribe = (onChange: () => void): (() => void) => this.on("change", onChange);
  readonly getSnapshot = (): CallSnapshot => this.snap;

  start(): void {
    this.client.connect();
    this.meshLoad.start();
  }

  toggleMic(): void {
    this.opts.media.setMic(!this.opts.media.state.micOn);
  }

  /** Turns the camera off, or on when we may publish. */
  toggleCam(): void {
    const on = !this.opts.media.state.camOn;
    if (on && !this.snap.publish.allowed) return;
    this.opts.media.setCam(on);
  }

  /** Stops the screen share, or starts one when we may publish. */
  async toggleScreen(): Promise<void> {
    if (this.opts.media.state.screen) this.opts.media.stopScreenShare();
    else if (this.snap.publish.allowed) await this.opts.media.startScreenShare();
  }

  /** Hides the mesh-load warning until the call grows. */
  dismissMeshLoad(): void {
    this.meshLoad.dismiss();
  }

  /** Hides the banner about the publish permission until it changes again. */
  dismissPublish(): void {
    if (!this.snap.publish.allowed) this.set({ publish: { ...this.snap.publish, dismissed: true } });
  }

  sendChat(text: string): boolean {
    return this.mesh.sendChat(text) !== null;
  }

  leave(): void {
    this.leftOnPurpose = true;
    this.meshLoad.stop();
    this.client.leave();
    this.mesh.close();
    this.opts.media.stop();
  }

  /**
   * The page goes away (unload or reload): close without leaving, so that
   * the session waits for a resume from the next page (see `restore`).
   */
  suspend(): void {
    for (const off of this.offs) off();
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
    this.meshLoad.stop();
    this.client.suspend();
    this.mesh.close();
  }

  /** Ends everything (the call screen goes away inside the app). */
  dispose(): void {
    for (const off of this.offs) off();
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
    this.meshLoad.stop();
    if (this.client.state !== "closed") this.client.leave();
    this.mesh.close();
  }

  /** For tests and diagnostics: what each remote video decoded so far. */
  async inboundVideo(): Promise<Record<string, { framesDecoded: number; bytesReceived: number }>> {
    const out: Record<string, { framesDecoded: number; bytesReceived: number }> = {};
    for (const peer of this.snap.peers) {
      const pc = this.mesh.connection(peer.id);
      if (!pc) continue;
      let framesDecoded = 0;
      let bytesReceived = 0;
      const report = await pc.getStats();
      report.forEach((s: { type?: string; kind?: string; framesDecoded?: number; bytesReceived?: number }) => {
        if (s.type === "inbound-rtp" && s.kind === "video") {
          framesDecoded += s.framesDecoded ?? 0;
          bytesReceived += s.bytesReceived ?? 0;
        }
      });
      out[peer.id] = { framesDecoded, bytesReceived };
    }
    return out;
  }

  stats(): {
    signaling: SignalingStats;
    mesh: MeshStats;
    lastSeq: string;
    negotiation: Record<string, { generation: number; state: RTCPeerConnectionState }>;
    detail: Record<string, unknown>;
  } {
    const negotiation: Record<string, { generation: number; state: RTCPeerConnectionState }> = {};
    const detail: Record<string, unknown> = {};
    for (const p of this.snap.peers) {
      negotiation[p.id] = { generation: p.generation, state: p.connectionState };
      detail[p.id] = this.mesh.diagnostics(p.id);
    }
    return { signaling: { ...this.client.stats }, mesh: { ...this.mesh.stats }, lastSeq: this.client.lastSeq.toString(), negotiation, detail };
  }

  /**
   * Follows the server's word on `publish` (client.mayPublish): without it,
   * the camera goes off and a share stops, and no video is sent; given
   * back, the person is told and turns the camera on when they like. The
   * negotiators follow it on their own (see Mesh).
   */
  private applyPublish(): void {
    const { view, change } = nextPublish(this.publishKnown ? this.snap.publish : null, this.client.mayPublish);
    this.publishKnown = true;
    if (view !== this.snap.publish) this.set({ publish: view });
    const media = this.opts.media;
    const stop = mediaToStop(media.state, view);
    if (stop.screen) media.stopScreenShare();
    if (stop.camera) media.setCam(false);
    this.mesh.setTrack("video", videoToSend(media.outgoingVideo, view));
    if (change === "granted") this.notify({ kind: "publishGranted" });
  }

  private onMedia(state: LocalMediaState): void {
    this.mesh.setTrack("audio", state.audio);
    this.mesh.setTrack("video", videoToSend(this.opts.media.outgoingVideo, this.snap.publish));
    this.set({ media: state });
    this.syncPresence(false);
    // Camera off or a share stopped: a warning about sending video may go now.
    void this.meshLoad.refresh();
  }

  /** Sends our presence attributes if they changed (or `force`). */
  private syncPresence(force: boolean): void {
    const presence = presenceFor(this.client.self?.attributes ?? {}, this.opts.media.state);
    const key = attributesKey(presence);
    if ((force || key !== this.lastPresence) && !this.snap.ended) {
      this.lastPresence = key;
      this.client.updatePresence(presence).catch((err: unknown) => {
        console.warn("switchboard: presence update failed", err);
      });
    }
  }

  /**
   * Signaling gave up on our latest presence update: the others still see
   * what the server has (our last acknowledged attributes). Stop claiming
   * the update was sent, so the next change, resume or backend update
   * sends our attributes again; and send them anyway after
   * PRESENCE_RESYNC_MS.
   */
  private presenceLost(): void {
    this.lastPresence = attributesKey(this.client.self?.attributes ?? {});
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
    this.presenceTimer = setTimeout(() => {
      this.presenceTimer = null;
      this.syncPresence(false);
    }, PRESENCE_RESYNC_MS);
  }

  private announce(text: string): void {
    this.set({ announcement: { id: (this.snap.announcement?.id ?? 0) + 1, text } });
  }

  private notify(notice: Notice): void {
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    this.set({ notice });
    this.noticeTimer = setTimeout(() => this.set({ notice: null }), NOTICE_MS);
  }

  private set(patch: Partial<CallSnapshot>): void {
    this.snap = { ...this.snap, ...patch };
    this.emit("change", this.snap);
  }
}
