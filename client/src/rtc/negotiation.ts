/**
 * Perfect negotiation (W3C WebRTC 1.0 §10.7) for one remote peer.
 *
 * Both sides may start an offer whenever `negotiationneeded` fires; when two
 * offers cross ("glare"), the *impolite* side ignores the incoming offer and
 * the *polite* side rolls its own offer back and answers. The role comes from
 * the server (`Participant.polite`), which makes it deterministic per pair.
 *
 * Trickle ICE: each gathered candidate is sent as it appears, and
 * `endOfCandidates` once gathering completes. An ICE failure triggers an ICE
 * restart, which is just another negotiation.
 *
 * Offers need the `publish` permission (docs/protocol.md §6.2); answers and
 * candidates do not. Without it (`setMayOffer(false)`) a negotiation we
 * need is deferred, not offered: the other side, which may publish, offers
 * to us and we answer. An offer the server refuses (`offerRefused`) is
 * rolled back, so that we are `stable` and can take the other side's
 * offers (an impolite side stuck in have-local-offer would ignore them
 * all), and is not retried until the permission comes back: at most once
 * per grant (see decideOnRefusedOffer), so refusals never loop.
 *
 * An offer that signaling could not deliver at all (the room's message rate
 * refused it and each of its retries: `offerLost`) is rolled back too, and
 * offered again at once: the negotiation is still needed, and the other
 * side never saw it.
 */
import type { SignalKind, SignalKindInit } from "@switchboard/signaling";
import { SessionDescription_Type as SdpType } from "@switchboard/signaling/proto";

export type DescriptionType = "offer" | "answer";

export interface NegotiationInputs {
  type: DescriptionType;
  polite: boolean;
  makingOffer: boolean;
  signalingState: RTCSignalingState;
  settingRemoteAnswerPending: boolean;
}

export interface NegotiationDecision {
  /** Two offers crossed. */
  collision: boolean;
  /** Drop the incoming description (and candidates that belong to it). */
  ignore: boolean;
  /** Applying it rolls back our own pending offer (polite side of a glare). */
  rollsBack: boolean;
}

/** The decision the pattern makes for an incoming description. */
export function decideOnDescription(i: NegotiationInputs): NegotiationDecision {
  const readyForOffer =
    !i.makingOffer && (i.signalingState === "stable" || i.settingRemoteAnswerPending);
  const collision = i.type === "offer" && !readyForOffer;
  const ignore = !i.polite && collision;
  return { collision, ignore, rollsBack: collision && !ignore };
}

export interface RefusalInputs {
  /** What we were told last: our offers are relayed. */
  mayOffer: boolean;
  /** Offers refused since we were last told we may offer. */
  refusedSinceAllowed: number;
}

/**
 * What to do after the server refused an offer of ours for want of
 * `publish`. "wait": no offer until we are told we may publish again. One
 * "retry" only when we believe we may and nothing was refused since we
 * were told so: the grant may have overtaken the refusal of an offer sent
 * before it (the refusal is connection-scoped, the grant a session
 * message). A second refusal means the revocation overtook us instead; we
 * wait for its selfUpdated. Never more than one offer per grant is lost
 * this way, and no timer retries anything.
 */
export function decideOnRefusedOffer(i: RefusalInputs): "retry" | "wait" {
  return i.mayOffer && i.refusedSinceAllowed === 0 ? "retry" : "wait";
}

/** The RTCPeerConnection surface negotiation needs (fakeable in tests). */
export type PeerConnectionLike = Pick<
  RTCPeerConnection,
  | "signalingState"
  | "iceConnectionState"
  | "connectionState"
  | "localDescription"
  | "remoteDescription"
  | "setLocalDescription"
  | "setRemoteDescription"
  | "addIceCandidate"
  | "restartIce"
  | "addEventListener"
  | "removeEventListener"
>;

export interface NegotiatorStats {
  offersSent: number;
  answersSent: number;
  offersIgnored: number;
  rollbacks: number;
  iceRestarts: number;
  candidatesSent: number;
  errors: number;
  /** ICE restarts because the connection stalled after negotiating. */
  stallRestarts: number;
  /** Negotiations needed while we may not offer (offered when we may again). */
  offersDeferred: number;
  /** Offers of ours the server refused (no publish permission). */
  offersRefused: number;
  /** Offers of ours signaling gave up on (the room's message rate); offered again. */
  offersLost: number;
}

/** Timers for the stall watchdog; injectable for tests. */
export interface NegotiatorClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface NegotiatorOptions {
  /** Called after a remote offer is applied, before answering it. */
  beforeAnswer?: () => void;
  /**
   * A connection negotiated but not connected for this long has stalled
   * (seen in Chromium: after an implicit rollback, ICE gathering can hang
   * without producing a candidate); it is then restarted. The impolite side
   * acts first, the polite side after twice the time, so that both sides
   * rarely restart at once.
   */
  stallMs?: number;
  clock?: NegotiatorClock;
  onError?: (err: unknown) => void;
  /** Whether our offers are relayed now (the publish permission); default true. */
  mayOffer?: boolean;
}

const realClock: NegotiatorClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** How often the watchdog looks at the connection. */
const WATCHDOG_TICK_MS = 1000;

export class Negotiator {
  private makingOffer = false;
  private ignoreOffer = false;
  private settingRemoteAnswerPending = false;
  private closed = false;
  private mayOffer: boolean;
  /** A negotiation was needed (or refused) while we could not offer. */
  private offerWanted = false;
  private refusedSinceAllowed = 0;
  readonly stats: NegotiatorStats = {
    offersSent: 0,
    answersSent: 0,
    offersIgnored: 0,
    rollbacks: 0,
    iceRestarts: 0,
    candidatesSent: 0,
    errors: 0,
    stallRestarts: 0,
    offersDeferred: 0,
    offersRefused: 0,
    offersLost: 0,
  };
  private readonly clock: NegotiatorClock;
  private readonly stallMs: number;
  private readonly onError: (err: unknown) => void;
  private readonly beforeAnswer: (() => void) | undefined;
  private lastProgress: number;
  private watchdog: unknown = null;

  constructor(
    private readonly pc: PeerConnectionLike,
    readonly polite: boolean,
    private readonly send: (kind: SignalKindInit) => void,
    opts: NegotiatorOptions = {},
  ) {
    this.clock = opts.clock ?? realClock;
    this.stallMs = opts.stallMs ?? 6000;
    this.beforeAnswer = opts.beforeAnswer;
    this.mayOffer = opts.mayOffer ?? true;
    this.onError = opts.onError ?? ((err) => console.warn("switchboard: negotiation error", err));
    this.lastProgress = this.clock.now();
    pc.addEventListener("negotiationneeded", this.onNegotiationNeeded);
    pc.addEventListener("icecandidate", this.onIceCandidate);
    pc.addEventListener("iceconnectionstatechange", this.onIceState);
    pc.addEventListener("signalingstatechange", this.onSignalingState);
    pc.addEventListener("connectionstatechange", this.onProgress);
    this.armWatchdog();
  }

  /** Stops reacting to the connection's events. */
  dispose(): void {
    this.closed = true;
    if (this.watchdog !== null) this.clock.clearTimeout(this.watchdog);
    this.watchdog = null;
    this.pc.removeEventListener("negotiationneeded", this.onNegotiationNeeded);
    this.pc.removeEventListener("icecandidate", this.onIceCandidate);
    this.pc.removeEventListener("iceconnectionstatechange", this.onIceState);
    this.pc.removeEventListener("signalingstatechange", this.onSignalingState);
    this.pc.removeEventListener("connectionstatechange", this.onProgress);
  }

  private readonly onProgress = (): void => {
    this.lastProgress = this.clock.now();
  };

  /** Back to stable (an answer applied, a rollback): a deferred offer may go now. */
  private readonly onSignalingState = (): void => {
    this.onProgress();
    this.offerIfWanted();
  };

  private armWatchdog(): void {
    this.watchdog = this.clock.setTimeout(() => {
      if (this.closed) return;
      this.checkStall();
      this.armWatchdog();
    }, WATCHDOG_TICK_MS);
  }

  private checkStall(): void {
    const now = this.clock.now();
    // Without publish our restart could not be offered: the other side's
    // watchdog restarts the connection.
    if (!this.mayOffer) {
      this.lastProgress = now;
      return;
    }
    const state = this.pc.connectionState;
    if (state === "connected" || state === "closed") {
      this.lastProgress = now;
      return;
    }
    // Still negotiating: not a stall (yet).
    if (this.pc.signalingState !== "stable" || !this.pc.remoteDescription) return;
    const limit = this.polite ? this.stallMs * 2 : this.stallMs;
    if (now - this.lastProgress < limit) return;
    this.lastProgress = now;
    this.stats.stallRestarts += 1;
    this.restartIce();
  }

  /**
   * Whether we may offer (the publish permission, as the server last told
   * us). Given back, a negotiation deferred meanwhile is offered now.
   */
  setMayOffer(allowed: boolean): void {
    if (this.closed) return;
    this.mayOffer = allowed;
    if (!allowed) return;
    this.refusedSinceAllowed = 0;
    this.offerIfWanted();
  }

  /**
   * The server refused an offer of ours (permission_denied): roll it back
   * if it is still pending, and offer again only as decideOnRefusedOffer
   * says. Its candidates were relayed but belong to nothing the other side
   * has; they are harmless.
   */
  async offerRefused(): Promise<void> {
    if (this.closed) return;
    this.stats.offersRefused += 1;
    const decision = decideOnRefusedOffer({ mayOffer: this.mayOffer, refusedSinceAllowed: this.refusedSinceAllowed });
    this.refusedSinceAllowed += 1;
    this.offerWanted = true;
    if (decision === "wait") this.mayOffer = false;
    // While an offer is being made, that one is refused next (or relayed).
    if (this.makingOffer || this.pc.signalingState !== "have-local-offer") return;
    await this.rollBackAndOffer();
  }

  /**
   * Our pending offer never reached the other side (signaling gave up on
   * it: `undelivered`). Waiting in have-local-offer for an answer that
   * cannot come would stall the connection (and an impolite side would
   * ignore the other's offers meanwhile): roll it back and offer again.
   * Signaling gives up only on our latest description, so nothing newer
   * is lost by that.
   */
  /** Withdraws our pending offer and makes a new one (if still wanted). */
  private async rollBackAndOffer(): Promise<void> {
    try {
      await this.pc.setLocalDescription({ type: "rollback" });
    } catch (err) {
      this.stats.errors += 1;
      this.onError(err);
      return;
    }
    this.offerIfWanted();
  }

  async offerLost(): Promise<void> {
    if (this.closed || this.makingOffer || this.pc.signalingState !== "have-local-offer") return;
    this.stats.offersLost += 1;
    this.offerWanted = true;
    await this.rollBackAndOffer();
  }

  /** Restarts ICE (new credentials, new candidates) via a renegotiation. */
  restartIce(): void {
    if (this.closed) return;
    this.stats.iceRestarts += 1;
    this.pc.restartIce();
  }

  /** Applies one relayed signal from the remote peer. */
  async handle(kind: SignalKind): Promise<void> {
    if (this.closed) return;
    try {
      switch (kind.case) {
        case "description":
          await this.onDescription(kind.value.type, kind.value.sdp);
          break;
        case "candidate": {
          const c = kind.value;
          if (c.candidate === "") return; // legacy end-of-generation marker
          // Judge by the state when the candidate arrived: the rejection
          // comes later, possibly after the next description changed it.
          const ignoring = this.ignoreOffer;
          try {
            await this.pc.addIceCandidate({
              candidate: c.candidate,
              sdpMid: c.sdpMid ?? null,
              sdpMLineIndex: c.sdpMLineIndex ?? null,
              usernameFragment: c.usernameFragment ?? null,
            });
          } catch (err) {
            // Candidates of an offer we ignored cannot be applied; expected.
            if (!ignoring) throw err;
          }
          break;
        }
        case "endOfCandidates":
          try {
            await this.pc.addIceCandidate(undefined);
          } catch {
            // Not all browsers accept the end-of-candidates indication.
          }
          break;
        default:
          break;
      }
    } catch (err) {
      this.stats.errors += 1;
      this.onError(err);
    }
  }

  private async onDescription(type: SdpType, sdp: string): Promise<void> {
    if (type !== SdpType.OFFER && type !== SdpType.ANSWER) return;
    const desc: RTCSessionDescriptionInit = {
      type: type === SdpType.OFFER ? "offer" : "answer",
      sdp,
    };
    const decision = decideOnDescription({
      type: desc.type as DescriptionType,
      polite: this.polite,
      makingOffer: this.makingOffer,
      signalingState: this.pc.signalingState,
      settingRemoteAnswerPending: this.settingRemoteAnswerPending,
    });
    this.ignoreOffer = decision.ignore;
    if (decision.ignore) {
      this.stats.offersIgnored += 1;
      return;
    }
    if (decision.rollsBack) this.stats.rollbacks += 1;
    this.settingRemoteAnswerPending = desc.type === "answer";
    try {
      // For a colliding offer on the polite side this implicitly rolls back.
      await this.pc.setRemoteDescription(desc);
    } finally {
      this.settingRemoteAnswerPending = false;
    }
    if (desc.type === "offer") {
      this.beforeAnswer?.();
      await this.pc.setLocalDescription();
      this.sendLocalDescription();
    }
  }

  private readonly onNegotiationNeeded = async (): Promise<void> => {
    if (this.closed) return;
    if (!this.mayOffer) {
      this.offerWanted = true;
      this.stats.offersDeferred += 1;
      return;
    }
    await this.makeOffer();
  };

  /** Offers a negotiation deferred (or refused) earlier, when we may and are stable. */
  private offerIfWanted(): void {
    if (!this.offerWanted || !this.mayOffer || this.makingOffer || this.pc.signalingState !== "stable") return;
    this.offerWanted = false;
    void this.makeOffer();
  }

  private async makeOffer(): Promise<void> {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.sendLocalDescription();
    } catch (err) {
      this.stats.errors += 1;
      this.onError(err);
    } finally {
      this.makingOffer = false;
    }
  }

  private sendLocalDescription(): void {
    const local = this.pc.localDescription;
    if (!local || (local.type !== "offer" && local.type !== "answer")) return;
    if (this.closed) return;
    const isOffer = local.type === "offer";
    if (isOffer) this.stats.offersSent += 1;
    else this.stats.answersSent += 1;
    this.send({
      case: "description",
      value: { type: isOffer ? SdpType.OFFER : SdpType.ANSWER, sdp: local.sdp },
    });
  }

  private readonly onIceCandidate = (ev: Event): void => {
    if (this.closed) return;
    const { candidate } = ev as RTCPeerConnectionIceEvent;
    if (!candidate) {
      this.send({ case: "endOfCandidates", value: {} });
      return;
    }
    if (candidate.candidate === "") return;
    this.stats.candidatesSent += 1;
    this.send({
      case: "candidate",
      value: {
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid ?? undefined,
        sdpMLineIndex: candidate.sdpMLineIndex ?? undefined,
        usernameFragment: candidate.usernameFragment ?? undefined,
      },
    });
  };

  private readonly onIceState = (): void => {
    if (this.pc.iceConnectionState === "failed") this.restartIce();
  };
}
