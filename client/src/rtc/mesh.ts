/**
 * The call: one RTCPeerConnection per remote participant (a full mesh),
 * driven by the signaling client's presence and relay events.
 *
 * - The first session (`joined`) creates a connection to everyone listed. A
 *   complete resume keeps them and only reconciles who is still there.
 * - A later session (`joined` with `rejoin`: the server lost ours, e.g. it
 *   restarted without Redis) keeps every connection whose media still flows
 *   and re-associates it with the participant of the same id: signaling
 *   outages never interrupt media. Only connections that failed are
 *   repaired (ICE restart first; rebuilt if they never connected).
 * - A move by the application's backend (`moved`: the session continues in
 *   another room) closes every connection of the room we left and starts
 *   one to everyone in the new room, as a first join does (we offer; they
 *   heard participantJoined and wait for it). A later session that lands in
 *   another room than ours (a rejoin after a move goes back to the token's
 *   room) is treated the same way: nobody there is who we were talking to.
 * - A remote side that started a new RTCPeerConnection (a reload, a new tab)
 *   is recognised by the SDP session id (`o=` line) of its descriptions; our
 *   connection to it is then rebuilt, whatever signaling said before.
 * - A participant the server no longer lists (not back yet after an outage)
 *   or reports as reconnecting keeps its tile while its connection holds; it
 *   is dropped once the connection has been down for LOST_GRACE_MS.
 * - Every connection carries our audio and video tracks and a negotiated
 *   data channel (id 0, both sides create it) for peer-to-peer chat: chat
 *   never passes through the server.
 * - Track changes (device switch, screen share) use `replaceTrack`, which
 *   needs no renegotiation; adding a kind we did not send before does
 *   renegotiate, which perfect negotiation handles.
 * - Offers need the `publish` permission (ours: `signaling.mayPublish`,
 *   changed by `selfUpdated`). Without it our negotiators defer their
 *   offers and roll back refused ones (see negotiation.ts); a participant
 *   who may not publish is offered to at once instead of being waited for
 *   as a newcomer, since its offer would be refused.
 * - An offer the signaling client could not deliver (the room's message
 *   rate refused it and its retries) is rolled back and made again.
 */
import { create } from "@bufbuild/protobuf";
import { Emitter, participantMayPublish, type SignalKind, type SignalingClient } from "@switchboard/signaling";
import {
  Connection,
  ErrorCode,
  LeaveReason,
  ParticipantSchema,
  SessionDescription_Type,
  type IceServer,
  type Participant,
} from "@switchboard/signaling/proto";
import { Negotiator } from "./negotiation";

export interface ChatMessage {
  id: string;
  from: string;
  name: string;
  text: string;
  sentAt: number;
  /** True for messages this client sent. */
  mine: boolean;
}

/** What the UI shows for one remote participant. */
export interface PeerView {
  id: string;
  name: string;
  attributes: Record<string, string>;
  polite: boolean;
  stream: MediaStream;
  connectionState: RTCPeerConnectionState;
  chatOpen: boolean;
  /** Increases each time the connection is rebuilt from scratch. */
  generation: number;
  /**
   * "reconnecting": the server says its connection is lost (it may resume;
   * `Participant.connection`), or the server does not list it now (after an
   * outage of ours) and our connection to it is down. Else "connected".
   */
  presence: "connected" | "reconnecting";
  /** Its offers are relayed (`permissions.publish`); false: a viewer. */
  mayPublish: boolean;
}

export interface MeshEvents {
  /** The set of peers or one peer's state changed. */
  peers: PeerView[];
  chat: ChatMessage;
}

interface PeerEntry {
  participant: Participant;
  pc: RTCPeerConnection;
  negotiator: Negotiator;
  stream: MediaStream;
  /** Null until our media and channel are attached (see addPeer). */
  chat: RTCDataChannel | null;
  attached: boolean;
  offerTimer: ReturnType<typeof setTimeout> | null;
  generation: number;
  /** Created from a signal before presence announced the participant. */
  provisional?: boolean;
  /** Our sender per kind, once we sent that kind on this connection. */
  senders: { audio?: RTCRtpSender; video?: RTCRtpSender };
  /** False while the server does not list them (e.g. after our rejoin). */
  present: boolean;
  /** When the connection last stopped being connected (null: connected). */
  downSince: number | null;
}

/** How long an existing member waits for a newcomer's offer. */
const OFFER_WAIT_MS = 3000;

/**
 * How long a participant who is not (or no longer) in the room by the
 * server's account, or who is reconnecting, keeps its tile once our
 * connection to it is down. Short: a crashed browser should not stay as a
 * frozen tile for the whole resume window.
 */
export const LOST_GRACE_MS = 10_000;
/** How often lost participants are looked at. */
const SWEEP_MS = 1000;

/** The session id of an SDP's `o=` line: one per RTCPeerConnection. */
export function sdpSessionId(sdp: string | undefined): string | null {
  if (!sdp) return null;
  const m = /^o=\S+ (\S+) /m.exec(sdp);
  return m?.[1] ?? null;
}

/** Largest chat message accepted, in characters. */
export const MAX_CHAT_CHARS = 2000;

interface ChatWire {
  t: "chat";
  id: string;
  name: string;
  text: string;
  sentAt: number;
}

function isChatWire(v: unknown): v is ChatWire {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    o.t === "chat" &&
    typeof o.id === "string" &&
    typeof o.name === "string" &&
    typeof o.text === "string" &&
    typeof o.sentAt === "number"
  );
}

export interface MeshOptions {
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection;
  /**
   * Our participant id when the session was restored from an earlier page
   * (a reload): the first event is then `resumed`, not `joined`, and we
   * start a new connection to everyone, offering.
   */
  restoredSelf?: { id: string; name: string };
}

/** Counters for tests and diagnostics. */
export interface MeshStats {
  /** Connections closed (peer left, rebuilt, or the call ended). */
  closed: number;
  /** Connections kept through a rejoin (a new session of ours). */
  keptOnRejoin: number;
  /** Connections rebuilt because the remote side started a new one. */
  remoteRestarts: number;
  /** Participants dropped after LOST_GRACE_MS without a connection. */
  droppedLost: number;
  /** Moves to another room (`moved`, or a rejoin in another room). */
  moves: number;
}

export class Mesh extends Emitter<MeshEvents> {
  private readonly peers = new Map<string, PeerEntry>();
  /** Participants who left: late signals from them must not revive them. */
  private readonly departed = new Set<string>();
  private readonly tracks: { audio: MediaStreamTrack | null; video: MediaStreamTrack | null } = {
    audio: null,
    video: null,
  };
  private readonly localStream: MediaStream;
  private selfId = "";
  private selfName = "";
  private generations = 0;
  private readonly unsubscribe: (() => void)[];
  private readonly createPc: (config: RTCConfiguration) => RTCPeerConnection;
  private readonly sweeper: ReturnType<typeof setInterval>;
  /** Set by a restored session until its first `resumed`: offer to everyone. */
  private restored: boolean;
  readonly stats: MeshStats = { closed: 0, keptOnRejoin: 0, remoteRestarts: 0, droppedLost: 0, moves: 0 };
  /** The room our connections belong to ("" while unknown). */
  private room: string;

  constructor(
    private readonly signaling: SignalingClient,
    opts: MeshOptions = {},
  ) {
    super();
    this.createPc = opts.createPeerConnection ?? ((config) => new RTCPeerConnection(config));
    this.localStream = new MediaStream();
    this.selfId = opts.restoredSelf?.id ?? "";
    this.selfName = opts.restoredSelf?.name ?? "";
    this.restored = Boolean(opts.restoredSelf);
    this.room = signaling.room;
    this.unsubscribe = [
      signaling.on("joined", ({ joined, rejoin }) => {
        this.selfId = joined.self?.id ?? "";
        this.selfName = joined.self?.name ?? "";
        const elsewhere = this.room !== "" && joined.room !== this.room;
        if (rejoin && !elsewhere) {
          this.restored = false;
          this.departed.clear();
          this.reassociate(joined.participants);
        } else {
          if (rejoin) this.stats.moves += 1;
          this.enter(joined.room, joined.participants);
        }
        // A new session starts from its token's grants.
        this.applyMayOffer();
        this.publish();
      }),
      signaling.on("moved", ({ moved }) => {
        this.stats.moves += 1;
        this.enter(moved.room, moved.participants);
        this.publish();
      }),
      signaling.on("selfUpdated", ({ self }) => {
        this.selfName = self.name;
        this.applyMayOffer();
      }),
      signaling.on("signalRefused", ({ to, type, error }) => {
        if (type !== "offer") return;
        const negotiator = this.peers.get(to)?.negotiator;
        // No publish: roll back and wait. The room's message rate, after
        // every retry (see the signaling client): roll back and offer again.
        if (error.code === ErrorCode.permission_denied) void negotiator?.offerRefused();
        else if (error.code === ErrorCode.rate_limited) void negotiator?.offerLost();
      }),
      signaling.on("resumed", ({ resumed }) => {
        // After a reload our old connections died with the page: offer anew.
        const fresh = this.restored;
        this.restored = false;
        this.reconcile(resumed.participants, fresh);
      }),
      signaling.on("participantJoined", (p) => {
        if (p.id === this.selfId) return;
        this.departed.delete(p.id);
        const known = this.peers.get(p.id);
        if (known) {
          // Already known: listed in Joined as well, or a new session of
          // theirs (they rejoined after an outage, or replaced themselves).
          // Keep the connection while it works: if they started a new one,
          // their offer says so (see onSignal).
          known.provisional = false;
          this.keep(known, p);
        } else {
          this.addPeer(p, true);
        }
        this.publish();
      }),
      signaling.on("participantLeft", ({ participantId, reason }) => {
        const entry = this.peers.get(participantId);
        if (entry && reason === LeaveReason.replaced) {
          // A participantJoined for the same id follows at once: the same
          // page rejoined (keep the media) or a new one (it will offer).
          entry.present = false;
          return;
        }
        this.departed.add(participantId);
        this.removePeer(participantId);
        this.publish();
      }),
      signaling.on("participantUpdated", (p) => {
        const entry = this.peers.get(p.id);
        if (!entry) return;
        entry.participant = { ...p, polite: entry.participant.polite };
        this.publish();
      }),
      signaling.on("signal", (s) => this.onSignal(s.from, s.kind)),
    ];
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
  }

  /** Our outgoing media (for the local preview). */
  get local(): MediaStream {
    return this.localStream;
  }

  /** The current remote peers. */
  view(): PeerView[] {
    return [...this.peers.values()].map((e) => ({
      id: e.participant.id,
      name: e.participant.name,
      attributes: { ...e.participant.attributes },
      polite: e.participant.polite,
      stream: e.stream,
      connectionState: e.pc.connectionState,
      chatOpen: e.chat?.readyState === "open",
      generation: e.generation,
      presence: isReconnecting(e.participant) || this.lost(e) ? "reconnecting" : "connected",
      mayPublish: participantMayPublish(e.participant),
    }));
  }

  /** The underlying connections, for stats and tests. */
  connection(peerId: string): RTCPeerConnection | undefined {
    return this.peers.get(peerId)?.pc;
  }

  /** Connection and negotiation state of one peer, for diagnostics. */
  diagnostics(peerId: string): Record<string, unknown> | undefined {
    const e = this.peers.get(peerId);
    if (!e) return undefined;
    return {
      polite: e.negotiator.polite,
      provisional: Boolean(e.provisional),
      signalingState: e.pc.signalingState,
      iceGatheringState: e.pc.iceGatheringState,
      iceConnectionState: e.pc.iceConnectionState,
      connectionState: e.pc.connectionState,
      chat: e.chat?.readyState ?? "none",
      attached: e.attached,
      ...e.negotiator.stats,
    };
  }

  /** Sets (or clears) the track we send for one kind, on every connection. */
  setTrack(kind: "audio" | "video", track: MediaStreamTrack | null): void {
    const old = this.tracks[kind];
    if (old === track) return;
    this.tracks[kind] = track;
    if (old) this.localStream.removeTrack(old);
    if (track) this.localStream.addTrack(track);
    for (const entry of this.peers.values()) this.applyTrack(entry, kind, track);
  }

  /** Sends a chat message to every peer whose data channel is open. */
  sendChat(text: string): ChatMessage | null {
    const trimmed = text.trim().slice(0, MAX_CHAT_CHARS);
    if (!trimmed) return null;
    const wire: ChatWire = {
      t: "chat",
      id: `${this.selfId}:${Date.now()}:${Math.random().toString(36).slice(2, 8)}`,
      name: this.selfName,
      text: trimmed,
      sentAt: Date.now(),
    };
    const data = JSON.stringify(wire);
    for (const entry of this.peers.values()) {
      if (entry.chat?.readyState === "open") entry.chat.send(data);
    }
    const msg: ChatMessage = { ...wire, from: this.selfId, mine: true };
    this.emit("chat", msg);
    return msg;
  }

  /** Restarts ICE towards one peer (also done automatically on failure). */
  restartIce(peerId: string): void {
    this.peers.get(peerId)?.negotiator.restartIce();
  }

  /** Closes every connection and stops listening to signaling. */
  close(): void {
    for (const off of this.unsubscribe) off();
    clearInterval(this.sweeper);
    this.closeAll();
    this.publish();
  }

  // ---- internals ------------------------------------------------------

  /** Tells every negotiator whether our offers are relayed now. */
  private applyMayOffer(): void {
    const may = this.signaling.mayPublish;
    for (const e of this.peers.values()) e.negotiator.setMayOffer(may);
  }

  private onSignal(from: string, kind: SignalKind): void {
    let entry = this.peers.get(from);
    if (entry && kind.case === "description") {
      const theirs = sdpSessionId(kind.value.sdp);
      const known = sdpSessionId(entry.pc.remoteDescription?.sdp);
      if (theirs && known && theirs !== known) {
        // Their side started a new RTCPeerConnection (reload, new tab, or a
        // rebuild of theirs): ours cannot continue with it. Start a new one;
        // for an offer, it answers (attaching first); for an answer to an
        // offer of ours that their new connection took, offer again.
        const isOffer = kind.value.type === SessionDescription_Type.OFFER;
        this.stats.remoteRestarts += 1;
        const participant = entry.participant;
        const present = entry.present;
        this.removePeer(from);
        this.addPeer(participant, isOffer);
        entry = this.peers.get(from);
        if (entry) entry.present = present;
        this.publish();
        if (!isOffer) return;
      }
    }
    if (!entry) entry = this.adoptUnannounced(from, kind);
    if (!entry) {
      console.warn(`switchboard: signal from unknown participant ${from} dropped`);
      return;
    }
    void entry.negotiator.handle(kind);
  }

  /**
   * Our new session's view of the room (after the old one was lost): keep
   * the connections, keyed by participant id. Those the server does not list
   * yet stay while their connection holds (the others are rejoining too).
   */
  private reassociate(listed: Participant[]): void {
    const byId = new Map(listed.map((p) => [p.id, p]));
    for (const [id, entry] of [...this.peers]) {
      const p = byId.get(id);
      if (p) this.keep(entry, p);
      else entry.present = false;
    }
    for (const p of listed) if (!this.peers.has(p.id)) this.addPeer(p);
  }

  /**
   * Re-associates a connection with a participant record of a new session
   * (theirs or ours). A connected one is kept as is; a broken one restarts
   * ICE; one that never connected is rebuilt, offering.
   */
  private keep(entry: PeerEntry, p: Participant): void {
    entry.participant = { ...p, polite: entry.participant.polite };
    entry.present = true;
    switch (entry.pc.connectionState) {
      case "connected":
        this.stats.keptOnRejoin += 1;
        return;
      case "disconnected":
      case "failed":
        this.stats.keptOnRejoin += 1;
        entry.negotiator.restartIce();
        return;
      default:
        // new, connecting (its negotiation may have died with the old
        // session) or closed: start over.
        this.removePeer(p.id);
        this.addPeer(entry.participant);
    }
  }

  /**
   * Our connections start over in `room` with `listed` (a first join, or a
   * move): those of the room we were in are closed, and we connect to
   * everyone listed, offering (they are told we joined and wait for it).
   */
  private enter(room: string, listed: Participant[]): void {
    this.room = room;
    this.restored = false;
    this.closeAll();
    this.departed.clear();
    for (const p of listed) this.addPeer(p);
  }

  /** A participant whose connection is down and who may not come back. */
  private lost(e: PeerEntry): boolean {
    return e.downSince !== null && (!e.present || isReconnecting(e.participant));
  }

  /** Drops participants lost for longer than LOST_GRACE_MS. */
  private sweep(): void {
    const now = Date.now();
    let changed = false;
    for (const [id, e] of [...this.peers]) {
      if (!this.lost(e) || e.downSince === null || now - e.downSince < LOST_GRACE_MS) continue;
      this.stats.droppedLost += 1;
      this.departed.add(id);
      this.removePeer(id);
      changed = true;
    }
    if (changed) this.publish();
  }

  /**
   * An offer from someone we have not been told about yet (their
   * participantJoined may trail their first signal): start the connection
   * now, with the role the protocol defines (the lexicographically smaller
   * id is polite), and fill in their details when presence arrives.
   */
  private adoptUnannounced(id: string, kind: SignalKind): PeerEntry | undefined {
    if (!this.selfId || id === this.selfId || this.departed.has(id)) return undefined;
    if (kind.case !== "description" || kind.value.type !== SessionDescription_Type.OFFER) return undefined;
    console.warn(`switchboard: offer from ${id} arrived before their participantJoined`);
    this.addPeer(create(ParticipantSchema, { id, name: "", polite: this.selfId < id }), true);
    const entry = this.peers.get(id);
    if (entry) entry.provisional = true;
    this.publish();
    return entry;
  }

  /**
   * The room after a resume. `fresh`: our connections did not survive (a
   * reload), so we offer to everyone; their side sees a new SDP session id
   * and starts a new connection to answer it.
   */
  private reconcile(present: Participant[], fresh = false): void {
    const ids = new Set(present.map((p) => p.id));
    for (const id of [...this.peers.keys()]) if (!ids.has(id)) this.removePeer(id);
    for (const p of present) {
      if (p.id === this.selfId) continue;
      const entry = this.peers.get(p.id);
      if (entry) {
        entry.participant = { ...p, polite: entry.participant.polite };
        entry.present = true;
      } else this.addPeer(p, !fresh);
    }
    this.publish();
  }

  /**
   * Creates the connection to one participant. With `awaitOffer` (they are
   * the newcomer, and offer to everyone they find in Joined), our tracks and
   * data channel are attached only when their offer arrives, right before
   * answering: then only one side offers and the first negotiation has no
   * glare. If no offer comes within OFFER_WAIT_MS we attach anyway; perfect
   * negotiation copes with whatever happens next. A participant who may
   * not publish cannot offer: we attach (and offer) at once.
   */
  private addPeer(participant: Participant, awaitOffer = false): void {
    if (participant.id === this.selfId || this.peers.has(participant.id)) return;
    awaitOffer &&= participantMayPublish(participant);
    const pc = this.createPc({ iceServers: toRtcIceServers(this.signaling.iceServers) });
    const to = participant.id;
    const negotiator = new Negotiator(pc, participant.polite, (kind) => this.signaling.sendSignal(to, kind), {
      mayOffer: this.signaling.mayPublish,
      beforeAnswer: () => {
        const e = this.peers.get(to);
        if (e?.pc === pc) this.attach(e);
      },
    });
    const entry: PeerEntry = {
      participant,
      pc,
      negotiator,
      stream: new MediaStream(),
      chat: null,
      generation: ++this.generations,
      senders: {},
      attached: false,
      offerTimer: null,
      present: true,
      downSince: Date.now(),
    };
    pc.addEventListener("track", (ev) => {
      if (this.peers.get(to) !== entry) return;
      const track = ev.track;
      for (const t of entry.stream.getTracks()) {
        if (t.kind === track.kind && t !== track) entry.stream.removeTrack(t);
      }
      if (!entry.stream.getTracks().includes(track)) entry.stream.addTrack(track);
      this.publish();
    });
    pc.addEventListener("connectionstatechange", () => {
      if (this.peers.get(to) !== entry) return;
      if (pc.connectionState === "connected") entry.downSince = null;
      else entry.downSince ??= Date.now();
      if (pc.connectionState === "failed") negotiator.restartIce();
      this.publish();
    });
    this.peers.set(to, entry);
    if (awaitOffer) {
      entry.offerTimer = setTimeout(() => {
        if (this.peers.get(to) === entry) this.attach(entry);
      }, OFFER_WAIT_MS);
    } else {
      this.attach(entry);
    }
  }

  /** Adds our tracks and the chat channel to a connection (once). */
  private attach(entry: PeerEntry): void {
    if (entry.attached) return;
    entry.attached = true;
    if (entry.offerTimer) clearTimeout(entry.offerTimer);
    entry.offerTimer = null;
    entry.chat = this.openChat(entry, entry.participant.id);
    for (const kind of ["audio", "video"] as const) this.applyTrack(entry, kind, this.tracks[kind]);
  }

  /** The negotiated (id 0) chat channel; both sides create it. */
  private openChat(entry: PeerEntry, to: string): RTCDataChannel {
    const chat = entry.pc.createDataChannel("chat", { negotiated: true, id: 0, ordered: true });
    chat.addEventListener("open", () => this.publish());
    chat.addEventListener("close", () => this.publish());
    chat.addEventListener("message", (ev: MessageEvent) => {
      if (typeof ev.data !== "string" || ev.data.length > MAX_CHAT_CHARS * 4) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!isChatWire(parsed)) return;
      this.emit("chat", {
        id: parsed.id,
        from: to,
        name: entry.participant.name || parsed.name,
        text: parsed.text.slice(0, MAX_CHAT_CHARS),
        sentAt: parsed.sentAt,
        mine: false,
      });
    });
    return chat;
  }

  private applyTrack(entry: PeerEntry, kind: "audio" | "video", track: MediaStreamTrack | null): void {
    if (!entry.attached) return; // attached later with the current tracks
    const sender = entry.senders[kind];
    if (sender) {
      sender.replaceTrack(track).catch((err: unknown) => console.warn("switchboard: replaceTrack failed", err));
    } else if (track) {
      entry.senders[kind] = entry.pc.addTrack(track, this.localStream);
    }
  }

  private removePeer(id: string): void {
    const entry = this.peers.get(id);
    if (!entry) return;
    this.peers.delete(id);
    this.stats.closed += 1;
    entry.negotiator.dispose();
    if (entry.offerTimer) clearTimeout(entry.offerTimer);
    entry.chat?.close();
    entry.pc.close();
    for (const t of entry.stream.getTracks()) entry.stream.removeTrack(t);
  }

  private closeAll(): void {
    for (const id of [...this.peers.keys()]) this.removePeer(id);
  }

  private publish(): void {
    this.emit("peers", this.view());
  }
}

/** The server reports the participant's connection as lost (resumable). */
function isReconnecting(p: Participant): boolean {
  return p.connection === Connection.reconnecting;
}

export function toRtcIceServers(servers: IceServer[]): RTCIceServer[] {
  return servers
    .filter((s) => s.urls.length > 0)
    .map((s) => ({
      urls: s.urls,
      ...(s.username ? { username: s.username } : {}),
      ...(s.credential ? { credential: s.credential } : {}),
    }));
}
