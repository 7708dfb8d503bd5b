"use client";
/**
 * `/room/?r=NAME`: the pre-join check (preview, name, devices), the call,
 * and the screen after it ends. The room lives in the query string so the
 * static export needs no per-room page.
 */
import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { useCallback, useEffect, useId, useMemo, useRef, useState, type FormEvent, type ReactNode } from "react";
import { Call, type ReceivedData } from "../rtc/call";
import { LocalMedia } from "../rtc/media";
import type { MeshLoadSample } from "../rtc/meshLoad";
import type { SimulatedReadings } from "../rtc/meshLoadMonitor";
import { Brand } from "./Brand";
import { CallView } from "./CallView";
import { endedText } from "./callStatus";
import { DeviceSelects, useMediaState } from "./DeviceSelects";
import { TokenError, fetchDevToken, signalingUrl } from "./devToken";
import { CamIcon, CamOffIcon, LinkIcon, MicIcon, MicOffIcon } from "./icons";
import { MAX_NAME_CHARS, cleanName, cleanRoom, identityFor, roomLink, saveName } from "./identity";
import { forgetCall, loadCall, saveCall, type SavedCall } from "./savedSession";
import { useBrowserValue, useStoredName } from "./useStoredName";
import { VideoTile } from "./VideoTile";

declare global {
  interface Window {
    /** Diagnostics and test hook: the live call, if any. */
    switchboard?: {
      call: Call;
      dropConnection: (opts?: { spoilResume?: boolean }) => void;
      inboundVideo: () => ReturnType<Call["inboundVideo"]>;
      stats: () => ReturnType<Call["stats"]>;
      /** The room's metadata from the application's backend (opaque; shown nowhere). */
      roomMetadata: () => string;
      /** Data messages from the application's backend on this page, oldest first (opaque; shown nowhere). */
      data: () => ReceivedData[];
      /** The mesh-load monitor: its latest sample, and readings to judge instead of measured ones. */
      meshLoad: {
        sample: () => MeshLoadSample | null;
        samples: () => number;
        simulate: (readings: SimulatedReadings | null) => void;
      };
    };
  }
}

type Phase = { kind: "prejoin" } | { kind: "call"; call: Call } | { kind: "ended"; code: number; reason: string; left: boolean };

export function RoomScreen() {
  const params = useSearchParams();
  const room = cleanRoom(params.get("r") ?? "");
  const [media] = useState(() => new LocalMedia());
  const [phase, setPhase] = useState<Phase>({ kind: "prejoin" });

  useEffect(() => {
    if (room) document.title = `${room} · Switchboard`;
  }, [room]);

  // Release the camera when leaving the page.
  useEffect(() => () => media.stop(), [media]);

  const callRef = useRef<Call | null>(null);
  useEffect(() => {
    const call = phase.kind === "call" ? phase.call : null;
    callRef.current = call;
    if (!call) return;
    window.switchboard = {
      call,
      dropConnection: (opts) => call.client.dropConnection(opts),
      inboundVideo: () => call.inboundVideo(),
      stats: () => call.stats(),
      roomMetadata: () => call.snapshot.roomMetadata,
      data: () => [...call.data],
      meshLoad: {
        sample: () => call.meshLoad.lastSample,
        samples: () => call.meshLoad.samples,
        simulate: (readings) => call.meshLoad.simulate(readings),
      },
    };
    const off = call.on("change", (s) => {
      if (s.ended) {
        forgetCall(room);
        setPhase({ kind: "ended", ...s.ended });
      }
    });
    // Keep what a reload needs to resume this session (see savedSession.ts).
    const save = () => {
      const session = call.client.storedSession();
      const selfId = call.client.self?.id ?? call.snapshot.selfId;
      if (!session || !selfId || call.snapshot.ended) {
        forgetCall(room);
        return;
      }
      const m = media.state;
      saveCall({ room, name: call.snapshot.selfName, identity: call.identity, selfId, micOn: m.micOn, camOn: m.camOn, session, publish: call.snapshot.publish });
    };
    const offSession = call.client.on("session", save);
    // A reload (or closing the tab) does not leave: the session waits on the
    // server for a resume from the next page.
    const onPageHide = () => {
      save();
      call.suspend();
    };
    window.addEventListener("pagehide", onPageHide);
    return () => {
      off();
      offSession();
      window.removeEventListener("pagehide", onPageHide);
    };
  }, [phase, room, media]);

  // Leave when the call screen goes away inside the app.
  useEffect(() => () => callRef.current?.dispose(), []);

  const begin = useCallback(
    (name: string, identity: string, token: string, restore?: SavedCall) => {
      const call = new Call({
        url: signalingUrl(),
        token,
        room,
        name,
        identity,
        media,
        refreshToken: async () => (await fetchDevToken({ identity, room, name })).token,
        restore: restore && { session: restore.session, selfId: restore.selfId, publish: restore.publish },
      });
      call.start();
      setPhase({ kind: "call", call });
    },
    [room, media],
  );

  const start = useCallback(
    async (name: string) => {
      const identity = identityFor(room, name);
      const { token } = await fetchDevToken({ identity, room, name });
      begin(name, identity, token);
    },
    [room, begin],
  );

  // A reload during a call: resume it straight away, without the pre-join.
  // (This screen renders only in the browser: useSearchParams in a static
  // export, so sessionStorage can be read for the first render.)
  const [saved] = useState(() => (typeof window !== "undefined" && room ? loadCall(room) : null));
  const [restoring, setRestoring] = useState(saved !== null);
  useEffect(() => {
    if (!saved) return;
    void media.start({ micOn: saved.micOn, camOn: saved.camOn }).finally(() => {
      setRestoring(false);
      begin(saved.name, saved.identity, saved.session.token, saved);
    });
  }, [saved, media, begin]);

  if (!room) {
    return (
      <main className="center-page">
        <div className="card">
          <Brand />
          <h1>No room selected</h1>
          <p className="muted">This link does not name a room.</p>
          <Link className="btn btn-primary" href="/">
            Go to the lobby
          </Link>
        </div>
      </main>
    );
  }

  if (phase.kind === "call") return <CallView call={phase.call} media={media} />;

  if (restoring && saved) {
    return (
      <main className="center-page">
        <div className="card" role="status" data-testid="restoring">
          <Brand />
          {/* The saved session may have been moved to another room: it resumes there. */}
          <h1>Rejoining {saved.session.room || room}…</h1>
          <p className="muted">You were in this call a moment ago.</p>
        </div>
      </main>
    );
  }

  if (phase.kind === "ended") {
    const words = endedText(phase.reason);
    return (
      <main className="center-page">
        <div className="card" data-testid="ended">
          <Brand />
          <FocusedHeading>{phase.left ? "You left the call" : words.title}</FocusedHeading>
          {!phase.left && <p className="muted">{words.text}</p>}
          {!phase.left && phase.reason && (
            <details className="ended-details">
              <summary>Details</summary>
              <code>
                {phase.code} {phase.reason}
              </code>
            </details>
          )}
          <div className="row">
            <button
              type="button"
              className="btn btn-primary"
              onClick={() => {
                setPhase({ kind: "prejoin" });
              }}
            >
              Rejoin
            </button>
            <Link className="btn" href="/">
              Back to lobby
            </Link>
          </div>
        </div>
      </main>
    );
  }

  return <PreJoin room={room} media={media} onJoin={start} />;
}

function PreJoin({ room, media, onJoin }: { room: string; media: LocalMedia; onJoin: (name: string) => Promise<void> }) {
  const state = useMediaState(media);
  const stored = useStoredName();
  const [typed, setName] = useState<string | null>(null);
  const name = typed ?? stored ?? "";
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [copied, setCopied] = useState(false);
  const link = useBrowserValue(() => roomLink(room)) ?? "";
  const nameId = useId();

  useEffect(() => {
    if (!media.state.audio && !media.state.camera) {
      void media.start({ micOn: media.state.micOn, camOn: media.state.camOn });
    }
  }, [media]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const clean = cleanName(name);
    if (!clean) return;
    saveName(clean);
    setBusy(true);
    setError("");
    try {
      await onJoin(clean);
    } catch (err) {
      setError(err instanceof TokenError ? err.message : "Could not join the room.");
      setBusy(false);
    }
  };

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(link);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      /* the link is shown for manual copying */
    }
  };

  const previewStream = useMemo(() => (state.camera ? new MediaStream([state.camera]) : null), [state.camera]);
  const micOn = Boolean(state.audio) && state.micOn;
  const camOn = Boolean(state.camera) && state.camOn;

  return (
    <main className="prejoin">
      <header className="home-header">
        <Brand />
      </header>
      <div className="prejoin-body">
        <section className="prejoin-preview" aria-label="Camera preview">
          <VideoTile
            peerId="preview"
            name={cleanName(name) || "You"}
            label={cleanName(name) || "You"}
            stream={previewStream}
            trackKey={state.camera?.id ?? ""}
            local
            audioOn={micOn}
            videoOn={camOn}
            screen={false}
          />
          <div className="preview-controls">
            <button
              type="button"
              className={`ctl${micOn ? "" : " ctl-off"}`}
              onClick={() => media.setMic(!state.micOn)}
              aria-label={micOn ? "Mute" : "Unmute"}
              title={micOn ? "Mute" : "Unmute"}
              disabled={!state.audio}
            >
              {micOn ? <MicIcon /> : <MicOffIcon />}
            </button>
            <button
              type="button"
              className={`ctl${camOn ? "" : " ctl-off"}`}
              onClick={() => media.setCam(!state.camOn)}
              aria-label={camOn ? "Stop video" : "Start video"}
              title={camOn ? "Stop video" : "Start video"}
              disabled={!state.camera}
            >
              {camOn ? <CamIcon /> : <CamOffIcon />}
            </button>
          </div>
          {state.error && (
            <p className="field-error" role="alert">
              {state.error} You can still join and chat.
            </p>
          )}
        </section>
        <form className="card prejoin-form" onSubmit={submit}>
          <h1>
            Ready to join <span className="room-tag">{room}</span>?
          </h1>
          <label htmlFor={nameId}>Your name</label>
          <input
            id={nameId}
            value={name}
            onChange={(e) => setName(e.target.value)}
            maxLength={MAX_NAME_CHARS}
            autoComplete="name"
            required
          />
          <DeviceSelects media={media} />
          <div className="share">
            <span className="share-label">Invite others with this link</span>
            <div className="share-row">
              <code className="share-link" data-testid="invite-link">
                {link}
              </code>
              <button type="button" className="btn btn-small" onClick={copy}>
                <LinkIcon width={16} height={16} /> {copied ? "Copied" : "Copy"}
              </button>
            </div>
          </div>
          {error && (
            <p className="field-error" role="alert">
              {error}
            </p>
          )}
          <button type="submit" className="btn btn-primary btn-large" disabled={busy || !cleanName(name)}>
            {busy ? "Joining…" : "Join now"}
          </button>
        </form>
      </div>
    </main>
  );
}

/**
 * A page heading that takes focus when it appears (tabIndex -1: focusable
 * by script only), so that a screen reader hears where the last action led
 * (after Leave, the button that had focus is gone).
 */
function FocusedHeading({ children }: { children: ReactNode }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}
