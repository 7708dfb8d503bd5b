/**
 * Samples the mesh every MESH_LOAD_INTERVAL_MS (`getStats()` of each
 * connected peer connection), leaves out streams younger than
 * MESH_LOAD_WARMUP_MS, and runs the decision of meshLoad.ts. Emits `change`
 * with the warning to show (or null) when it changes.
 */
import { Emitter } from "@switchboard/signaling";
import {
  INITIAL_MESH_LOAD,
  MESH_LOAD_INTERVAL_MS,
  MESH_LOAD_WARMUP_MS,
  dismissMeshLoad,
  nextMeshLoad,
  shownMeshLoad,
  type MeshLoadSample,
  type MeshLoadState,
  type MeshLoadWarning,
  type OutboundVideo,
  type OutgoingVideo,
} from "./meshLoad";
import { readVideoStats, type StatsEntry } from "./meshStats";

/** What the monitor samples: the call's live connections and what we send. */
export interface MeshLoadSource {
  /** Connected peer connections only: a broken one reports no frames, which says nothing of the device. */
  connections(): { peerId: string; pc: RTCPeerConnection }[];
  video(): OutgoingVideo;
}

/** Stream readings put in place of measured ones (diagnostics and e2e tests). */
export type SimulatedReadings = Pick<MeshLoadSample, "sourceFps" | "streams">;

export class MeshLoadMonitor extends Emitter<{ change: MeshLoadWarning | null }> {
  private state: MeshLoadState = INITIAL_MESH_LOAD;
  private shown: MeshLoadWarning | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private busy = false;
  /** When each outbound stream ("peer statsId") was first seen. */
  private readonly firstSeen = new Map<string, number>();
  private simulated: SimulatedReadings | null = null;
  private last: MeshLoadSample | null = null;
  private taken = 0;

  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly source: MeshLoadSource,
    opts: { intervalMs?: number; now?: () => number } = {},
  ) {
    super();
    this.intervalMs = opts.intervalMs ?? MESH_LOAD_INTERVAL_MS;
    this.now = opts.now ?? Date.now;
  }

  /** The warning to show now, if any. */
  get warning(): MeshLoadWarning | null {
    return this.shown;
  }

  /** The latest sample, for diagnostics and tests. */
  get lastSample(): MeshLoadSample | null {
    return this.last;
  }

  /** Samples judged so far (tests wait on it instead of on time). */
  get samples(): number {
    return this.taken;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.state = INITIAL_MESH_LOAD;
    this.firstSeen.clear();
    this.publish();
  }

  /** Samples now, e.g. after the camera went off (the warning may go at once). */
  refresh(): Promise<void> {
    return this.tick();
  }

  /** The person closed the warning: hidden until the call grows. */
  dismiss(): void {
    this.state = dismissMeshLoad(this.state);
    this.publish();
  }

  /**
   * Judges these readings instead of measured ones from now on (null:
   * measure again). The call's size and what we send stay live.
   */
  simulate(readings: SimulatedReadings | null): void {
    this.simulated = readings;
  }

  private async tick(): Promise<void> {
    if (this.busy || this.timer === null) return;
    this.busy = true;
    try {
      const sample = await this.measure();
      if (this.timer === null) return; // stopped meanwhile
      this.last = sample;
      this.taken += 1;
      this.state = nextMeshLoad(this.state, sample);
      this.publish();
    } catch (err) {
      console.warn("switchboard: mesh stats unavailable", err);
    } finally {
      this.busy = false;
    }
  }

  private async measure(): Promise<MeshLoadSample> {
    const connections = this.source.connections();
    const video = this.source.video();
    const peers = connections.length;
    if (this.simulated) return { peers, video, ...this.simulated };
    const reports = await Promise.all(
      connections.map(async ({ peerId, pc }) => {
        const report = await pc.getStats();
        return { peerId, stats: readVideoStats(report.values() as Iterable<StatsEntry>) };
      }),
    );
    const now = this.now();
    const seen = new Set<string>();
    const streams: OutboundVideo[] = [];
    let sourceFps: number | null = null;
    for (const { peerId, stats } of reports) {
      if (stats.sourceFps !== null) sourceFps = Math.max(sourceFps ?? 0, stats.sourceFps);
      for (const { id, fps, limitation } of stats.outbound) {
        const key = `${peerId} ${id}`;
        seen.add(key);
        const first = this.firstSeen.get(key) ?? now;
        this.firstSeen.set(key, first);
        if (now - first >= MESH_LOAD_WARMUP_MS) streams.push({ fps, limitation });
      }
    }
    for (const key of [...this.firstSeen.keys()]) if (!seen.has(key)) this.firstSeen.delete(key);
    return { peers, video, sourceFps, streams };
  }

  private publish(): void {
    const next = shownMeshLoad(this.state);
    if (sameWarning(next, this.shown)) return;
    this.shown = next;
    this.emit("change", next);
  }
}

function sameWarning(a: MeshLoadWarning | null, b: MeshLoadWarning | null): boolean {
  if (a === null || b === null) return a === b;
  return a.cause === b.cause && a.peers === b.peers && a.video === b.video && a.worstFps === b.worstFps && a.sourceFps === b.sourceFps && a.limitation === b.limitation;
}
