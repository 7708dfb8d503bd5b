/**
 * Whether this device sustains the mesh: a pure decision over samples of
 * our outbound video, one sample every MESH_LOAD_INTERVAL_MS.
 *
 * In a mesh we encode and send our video once per remote participant, so
 * the cost grows with the call. When the device (CPU) or its uplink cannot
 * keep up, the browser says so: outbound-rtp `qualityLimitationReason` is
 * "cpu", and the frame rate we send falls below the rate we capture. One
 * bad sample proves nothing (a key frame, a tab switch, the bandwidth
 * estimate ramping up on a new connection), so:
 *
 * - only calls with at least MIN_PEERS remote participants are judged (a
 *   one-to-one call is as small as a call gets; there is nothing to advise);
 * - only while we send video (camera on, or a screen share);
 * - only streams past their warm-up (the monitor leaves new ones out);
 * - the warning comes after ENTER_SAMPLES strained samples in a row and goes
 *   after EXIT_SAMPLES healthy ones in a row (hysteresis: a call hovering at
 *   the limit does not flicker); it goes at once when the call shrinks below
 *   MIN_PEERS or we stop sending video (the advice was followed).
 * - a person who dismissed it does not see it again until the call grows.
 */

/** How often the mesh is sampled. */
export const MESH_LOAD_INTERVAL_MS = 2000;
/** A new outbound stream is left out of the samples this long (bandwidth ramp-up). */
export const MESH_LOAD_WARMUP_MS = 10_000;
/** Remote participants from which the mesh is judged. */
export const MIN_PEERS = 2;
/** Strained samples in a row before the warning (6 s at 2 s). */
export const ENTER_SAMPLES = 3;
/** Healthy samples in a row before it clears (10 s at 2 s). */
export const EXIT_SAMPLES = 5;
/** Sending below this share of the captured frame rate is a falling frame rate. */
export const FPS_RATIO = 0.6;
/**
 * Below this captured rate the frame rate is not judged: a screen share of
 * a still page captures a frame or two per second by design.
 */
export const MIN_JUDGED_SOURCE_FPS = 10;

/** outbound-rtp `qualityLimitationReason`, reduced to what the decision needs. */
export type Limitation = "none" | "cpu" | "bandwidth" | "other";

/** What we send: nothing, the camera, or the screen (which replaces it). */
export type OutgoingVideo = "none" | "camera" | "screen";

/** Our video on one peer connection, as its outbound-rtp stats report it. */
export interface OutboundVideo {
  /** Frames sent per second; null when not reported (yet). */
  fps: number | null;
  limitation: Limitation;
}

export interface MeshLoadSample {
  /** Remote participants in the call. */
  peers: number;
  video: OutgoingVideo;
  /** Frames captured per second (media-source stats); null when unknown. */
  sourceFps: number | null;
  /** Our outbound video, one per connection past its warm-up. */
  streams: OutboundVideo[];
}

/** The measured reason for the warning. */
export interface MeshStrain {
  /** "device": the CPU (or an unexplained frame-rate fall); "connection": the uplink. */
  cause: "device" | "connection";
  /** The lowest frame rate we send on any connection (null: not reported). */
  worstFps: number | null;
  sourceFps: number | null;
  /** The browser's stated limitation on the worst stream (or "cpu" on any). */
  limitation: Limitation;
}

export interface MeshLoadWarning extends MeshStrain {
  peers: number;
  video: Exclude<OutgoingVideo, "none">;
}

export interface MeshLoadState {
  warning: MeshLoadWarning | null;
  /** Strained samples in a row. */
  strained: number;
  /** Healthy samples in a row. */
  healthy: number;
  /** The call's size when the person dismissed the warning; 0: not dismissed. */
  dismissedAt: number;
}

export const INITIAL_MESH_LOAD: MeshLoadState = { warning: null, strained: 0, healthy: 0, dismissedAt: 0 };

/**
 * One sample's verdict: the strain it shows, null when it shows none, or
 * "unknown" when it has no stream to judge (all still warming up).
 */
export function judgeSample(sample: MeshLoadSample): MeshStrain | null | "unknown" {
  if (sample.streams.length === 0) return "unknown";
  const measured = sample.streams.filter((s): s is OutboundVideo & { fps: number } => s.fps !== null);
  const worst = measured.reduce<(OutboundVideo & { fps: number }) | null>((w, s) => (w === null || s.fps < w.fps ? s : w), null);
  const worstFps = worst?.fps ?? null;
  const { sourceFps } = sample;
  if (sample.streams.some((s) => s.limitation === "cpu")) {
    return { cause: "device", worstFps, sourceFps, limitation: "cpu" };
  }
  const judged = sourceFps !== null && sourceFps >= MIN_JUDGED_SOURCE_FPS;
  if (judged && worst && worst.fps < sourceFps * FPS_RATIO) {
    const cause = worst.limitation === "bandwidth" ? "connection" : "device";
    return { cause, worstFps, sourceFps, limitation: worst.limitation };
  }
  return null;
}

/** The state after one more sample. */
export function nextMeshLoad(state: MeshLoadState, sample: MeshLoadSample): MeshLoadState {
  const video = sample.video;
  if (sample.peers < MIN_PEERS || video === "none") return INITIAL_MESH_LOAD;
  const verdict = judgeSample(sample);
  if (verdict === "unknown") {
    // No evidence either way: keep counting from where we were.
    return state.warning ? { ...state, warning: { ...state.warning, peers: sample.peers, video } } : state;
  }
  if (verdict) {
    const strained = state.strained + 1;
    const warn = state.warning !== null || strained >= ENTER_SAMPLES;
    return { ...state, strained, healthy: 0, warning: warn ? { ...verdict, peers: sample.peers, video } : null };
  }
  const healthy = state.healthy + 1;
  if (!state.warning) return { ...state, strained: 0, healthy };
  if (healthy >= EXIT_SAMPLES) return { ...INITIAL_MESH_LOAD, healthy };
  return { ...state, strained: 0, healthy, warning: { ...state.warning, peers: sample.peers, video } };
}

/** The person closed the warning: hide it until the call grows. */
export function dismissMeshLoad(state: MeshLoadState): MeshLoadState {
  return state.warning ? { ...state, dismissedAt: state.warning.peers } : state;
}

/** The warning to show, if any (not while dismissed for a call this size). */
export function shownMeshLoad(state: MeshLoadState): MeshLoadWarning | null {
  const w = state.warning;
  return w && w.peers > state.dismissedAt ? w : null;
}
