/**
 * Reads what the mesh-load decision needs (meshLoad.ts) from one peer
 * connection's `getStats()` report: our outbound video streams (frames per
 * second, the browser's quality limitation) and the capture rate of the
 * video source they encode. Pure, over plain objects, so tests feed it what
 * Chromium reports.
 */
import type { Limitation, OutboundVideo } from "./meshLoad";

/** The fields of an RTCStats entry read here (all optional across browsers). */
export interface StatsEntry {
  id?: string;
  type?: string;
  kind?: string;
  /** Older name of `kind`. */
  mediaType?: string;
  /** outbound-rtp: false for a sender that sends nothing (no track). */
  active?: boolean;
  framesPerSecond?: number;
  qualityLimitationReason?: string;
}

export interface OutboundVideoReading extends OutboundVideo {
  /** The stats id, to tell a stream's age across samples. */
  id: string;
}

export interface ConnectionVideoStats {
  outbound: OutboundVideoReading[];
  /** Frames captured per second by our video source; null when not reported. */
  sourceFps: number | null;
}

const LIMITATIONS: ReadonlySet<string> = new Set(["none", "cpu", "bandwidth"]);

function limitationOf(reason: string | undefined): Limitation {
  if (reason === undefined) return "none";
  return LIMITATIONS.has(reason) ? (reason as Limitation) : "other";
}

function isVideo(e: StatsEntry): boolean {
  return (e.kind ?? e.mediaType) === "video";
}

function rate(v: number | undefined): number | null {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : null;
}

/** Our outbound video and its source's frame rate, from one connection's report. */
export function readVideoStats(report: Iterable<StatsEntry>): ConnectionVideoStats {
  const outbound: OutboundVideoReading[] = [];
  let sourceFps: number | null = null;
  for (const e of report) {
    if (!isVideo(e)) continue;
    if (e.type === "outbound-rtp" && e.active !== false) {
      outbound.push({ id: e.id ?? "", fps: rate(e.framesPerSecond), limitation: limitationOf(e.qualityLimitationReason) });
    } else if (e.type === "media-source") {
      const fps = rate(e.framesPerSecond);
      if (fps !== null) sourceFps = Math.max(sourceFps ?? 0, fps);
    }
  }
  return { outbound, sourceFps };
}
