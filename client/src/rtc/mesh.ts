/**
 * The call: one RTCPeerConnection per remote participant (a full mesh),
 * driven by the signaling client's presence and relay events.
 *
 * - A fresh session (`joined`) rebuilds every connection; a complete resume
 *   keeps them and only reconciles who is still there.
 * - Every connection carries our audio and video tracks and a negotiated
 *   data channel (id 0, both sides create it) for peer-to-peer chat: chat
 *   never passes through the server.
 * - Track changes (device switch, screen share) use `replaceTrack`, which
 *   needs no renegotiation; adding a kind we did not send before does
 *   renegotiate, which perfect negotiation handles.
 */
import { Emitter } from "../signaling/emitter";
import { create } from "@bufbuild/protobuf";
import type { SignalKind, SignalingClient } from "../signaling/client";
import {
  ParticipantSchema,
  SessionDescription_Type,
  type IceServer,
  type Participant,
} from "../gen/switchboard/v1/client_pb";
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
}

/** How long an existing member waits for a newcomer's offer. */
const OFFER_WAIT_MS = 3000;

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

  constructor(
    private readonly signaling: SignalingClient,
    opts: MeshOptions = {},
  ) {
    super();
    this.createPc = opts.createPeerConnection ?? ((config) => new RTCPeerConnection(config));
    this.localStream = new MediaStream();
    this.unsubscribe = [
      signaling.on("joined", ({ joined }) => {
        this.selfId = joined.self?.id ?? "";
        this.selfName = joined.self?.name ?? "";
        this.closeAll();
        this.departed.clear();
        for (const p of joined.participants) this.addPeer(p);
        this.publish();
      }),
      signaling.on("resumed", ({ resumed }) => this.reconcile(resumed.participants)),
      signaling.on("participantJoined", (p) => {
        if (p.id === this.selfId) return;
        this.departed.delete(p.id);
        const known = this.peers.get(p.id);
        if (known && (known.provisional || known.participant.joinedAtMs === p.joinedAtMs)) {
          known.provisional = false;
          // Already known (e.g. listed in Joined as well): just update.
          known.participant = { ...p, polite: known.participant.polite };
        } else {
          // A known id joining again at a new time is a new session on their
          // side: their old connection is gone, so ours is rebuilt too.
          this.removePeer(p.id);
          this.addPeer(p, true);
        }
        this.publish();
      }),
      signaling.on("participantLeft", ({ participantId }) => {
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
      signaling.on("signal", (s) => {
        let entry = this.peers.get(s.from);
        if (!entry) entry = this.adoptUnannounced(s.from, s.kind);
        if (!entry) {
          console.warn(`switchboard: signal from unknown participant ${s.from} dropped`);
          return;
        }
        void entry.negotiator.handle(s.kind);
      }),
    ];
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
    this.closeAll();
    this.publish();
  }

  // ---- internals ------------------------------------------------------

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

  private reconcile(present: Participant[]): void {
    const ids = new Set(present.map((p) => p.id));
    for (const id of [...this.peers.keys()]) if (!ids.has(id)) this.removePeer(id);
    for (const p of present) {
      if (p.id === this.selfId) continue;
      const entry = this.peers.get(p.id);
      if (entry) entry.participant = { ...p, polite: entry.participant.polite };
      else this.addPeer(p, true);
    }
    this.publish();
  }

  /**
   * Creates the connection to one participant. With `awaitOffer` (they are
   * the newcomer, and offer to everyone they find in Joined), our tracks and
   * data channel are attached only when their offer arrives, right before
   * answering: then only one side offers and the first negotiation has no
   * glare. If no offer comes within OFFER_WAIT_MS we attach anyway; perfect
   * negotiation copes with whatever happens next.
   */
  private addPeer(participant: Participant, awaitOffer = false): void {
    if (participant.id === this.selfId || this.peers.has(participant.id)) return;
    const pc = this.createPc({ iceServers: toRtcIceServers(this.signaling.iceServers) });
    const to = participant.id;
    const negotiator = new Negotiator(pc, participant.polite, (kind) => this.signaling.sendSignal(to, kind), {
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

export function toRtcIceServers(servers: IceServer[]): RTCIceServer[] {
  return servers
    .filter((s) => s.urls.length > 0)
    .map((s) => ({
      urls: s.urls,
      ...(s.username ? { username: s.username } : {}),
      ...(s.credential ? { credential: s.credential } : {}),
    }));
}
