"use client";
/** One participant's video with name, mute and connection badges. */
import { useEffect, useRef, useSyncExternalStore } from "react";
import { MicOffIcon } from "./icons";
import { initials } from "./identity";
import { applySpeaker, speaker } from "./speaker";

export interface TileProps {
  peerId: string;
  name: string;
  stream: MediaStream | null;
  /** Ids of the stream's tracks: re-attach when they change. */
  trackKey: string;
  local?: boolean;
  /** Caption; defaults to the name, with "(you)" for the local tile. */
  label?: string;
  audioOn: boolean;
  videoOn: boolean;
  screen: boolean;
  connectionState?: RTCPeerConnectionState;
  /** "reconnecting": the participant's own connection is lost (it may come back). */
  presence?: "connected" | "reconnecting";
  /** May not send video (no `publish` permission): a small "Viewer" marker. */
  viewer?: boolean;
}

const STATE_TEXT: Partial<Record<RTCPeerConnectionState, string>> = {
  new: "Connecting…",
  connecting: "Connecting…",
  disconnected: "Connection unstable…",
  failed: "Video connection lost",
  closed: "Disconnected",
};

export function VideoTile(p: TileProps) {
  const ref = useRef<HTMLVideoElement>(null);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    // An empty MediaStream on a <video> can stall page load: attach only
    // once there is a track.
    const hasTracks = (p.stream?.getTracks().length ?? 0) > 0;
    const next = hasTracks ? p.stream : null;
    if (el.srcObject !== next) el.srcObject = next;
    if (next) el.play().catch(() => undefined);
  }, [p.stream, p.trackKey]);

  // Remote sound goes to the chosen speaker (new tiles too: they mount with it).
  const sink = useSyncExternalStore(speaker.subscribe, speaker.get, speaker.get);
  useEffect(() => {
    const el = ref.current;
    if (el && !p.local) void applySpeaker(el, sink);
  }, [sink, p.local]);

  const stateText = p.local
    ? undefined
    : p.presence === "reconnecting"
      ? "Reconnecting…"
      : STATE_TEXT[p.connectionState ?? "new"];
  const label = p.label ?? `${p.name}${p.local ? " (you)" : ""}`;
  return (
    <figure
      className={`tile${p.videoOn ? "" : " tile-novideo"}${p.screen ? " tile-screen" : ""}`}
      data-testid="tile"
      data-peer-id={p.peerId}
      data-local={p.local ? "true" : "false"}
      data-audio={p.audioOn ? "on" : "off"}
      data-video={p.videoOn ? "on" : "off"}
      data-connection={p.local ? "local" : (p.connectionState ?? "new")}
      data-presence={p.local ? undefined : (p.presence ?? "connected")}
      data-viewer={p.viewer ? "true" : undefined}
      aria-label={`${label}: microphone ${p.audioOn ? "on" : "off"}, camera ${p.videoOn ? "on" : "off"}`}
    >
      <video
        ref={ref}
        autoPlay
        playsInline
        muted={p.local}
        className={p.local && !p.screen ? "mirror" : undefined}
        data-peer-id={p.peerId}
      />
      {!p.videoOn && (
        <div className="avatar" aria-hidden="true">
          <span>{initials(p.name)}</span>
        </div>
      )}
      <figcaption className="tile-caption">
        {!p.audioOn && (
          <span className="badge badge-muted" title="Microphone off">
            <MicOffIcon width={14} height={14} />
            <span className="sr-only">Microphone off</span>
          </span>
        )}
        <span className="tile-name" data-testid="tile-name">{label}</span>
        {p.screen && <span className="badge">Presenting</span>}
        {p.viewer && (
          <span className="badge badge-viewer" title="Can't turn on a camera or share a screen in this call">
            Viewer
          </span>
        )}
      </figcaption>
      {stateText && (
        <div className="tile-state" role="status">
          {stateText}
        </div>
      )}
    </figure>
  );
}
