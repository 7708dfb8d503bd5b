"use client";
/** The in-call screen: video grid, side panel (people, chat) and controls. */
import { useCallback, useEffect, useId, useRef, useState, useSyncExternalStore, type FormEvent, type KeyboardEvent as ReactKeyboardEvent } from "react";
import type { Call, CallSnapshot } from "../rtc/call";
import type { LocalMedia } from "../rtc/media";
import { MAX_CHAT_CHARS } from "../rtc/mesh";
import { Brand } from "./Brand";
import { callStatus, type BannerAction, type StatusBanner, type StatusView } from "./callStatus";
import { DeviceSelects } from "./DeviceSelects";
import {
  CamIcon,
  CamOffIcon,
  ChatIcon,
  CloseIcon,
  LeaveIcon,
  LinkIcon,
  MicIcon,
  MicOffIcon,
  PeopleIcon,
  ScreenIcon,
  SendIcon,
  SettingsIcon,
} from "./icons";
import { initials, roomLink } from "./identity";
import { publishControls } from "./publishControls";
import { reachability } from "./reachability";
import { roomSize } from "./roomSize";
import { VideoTile } from "./VideoTile";

type Panel = "chat" | "people" | null;

const CONNECTION_TEXT: Record<RTCPeerConnectionState, string> = {
  new: "connecting",
  connecting: "connecting",
  connected: "connected",
  disconnected: "unstable",
  failed: "failed",
  closed: "closed",
};

function trackKey(stream: MediaStream | null): string {
  return stream ? stream.getTracks().map((t) => t.id).join(",") : "";
}

export function CallView({ call, media }: { call: Call; media: LocalMedia }) {
  const snap = useSyncExternalStore(call.subscribe, call.getSnapshot, call.getSnapshot);
  const net = useSyncExternalStore(reachability.subscribe, reachability.getSnapshot, reachability.getServerSnapshot);
  const status = callStatus(snap, net);
  const headingRef = useRef<HTMLHeadingElement>(null);

  // After Join (or a reload's resume) focus goes to the call's heading: the
  // button that had it is gone, and the heading says where we are.
  useEffect(() => headingRef.current?.focus(), []);

  // The tab's title names the room we are in (the backend may move us).
  useEffect(() => {
    document.title = `${snap.room} · Switchboard`;
  }, [snap.room]);

  // This screen shows the connection status; the page-wide banner stands back.
  useEffect(() => reachability.claimForCall(), []);

  // Lost the server: probe it (quickly while it is down), and retry the
  // moment the network or the server is back instead of waiting out the
  // backoff, so that the banner clears within a second of recovery.
  const up = net.online && net.server;
  const wasUp = useRef(up);
  useEffect(() => {
    if (snap.status === "reconnecting" && wasUp.current) reachability.check();
  }, [snap.status]);
  useEffect(() => {
    if (up && !wasUp.current) call.client.retryNow();
    wasUp.current = up;
  }, [up, call]);
  const [panel, setPanel] = useState<Panel>(() =>
    typeof window !== "undefined" && window.matchMedia("(min-width: 1000px)").matches ? "chat" : null,
  );
  // Messages from others seen when the chat panel was last open.
  const [seen, setSeen] = useState(0);
  const [copied, setCopied] = useState(false);
  const [screenError, setScreenError] = useState("");
  const settingsRef = useRef<HTMLDialogElement>(null);
  const tabIds = useId();
  const received = snap.chat.filter((m) => !m.mine).length;
  const unread = panel === "chat" ? 0 : Math.max(0, received - seen);
  const showPanel = (next: Panel) => {
    if (panel === "chat" || next === "chat") setSeen(received);
    setPanel(next);
  };

  // Arrow keys move between the side panel's tabs (the tabs pattern).
  const onTabKey = (e: ReactKeyboardEvent<HTMLDivElement>) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight" && e.key !== "Home" && e.key !== "End") return;
    e.preventDefault();
    const next: Panel = e.key === "Home" ? "people" : e.key === "End" ? "chat" : panel === "people" ? "chat" : "people";
    showPanel(next);
    document.getElementById(`${tabIds}-${next}-tab`)?.focus();
  };

  const toggleScreen = useCallback(async () => {
    setScreenError("");
    try {
      await call.toggleScreen();
    } catch (err) {
      if (!(err instanceof DOMException && err.name === "NotAllowedError")) {
        setScreenError(err instanceof Error ? err.message : "Screen sharing failed.");
      }
    }
  }, [call]);

  // Keyboard shortcuts (as in common meeting apps): Ctrl/⌘+D mic, Ctrl/⌘+E camera.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey || e.shiftKey) return;
      const k = e.key.toLowerCase();
      if (k === "d") {
        e.preventDefault();
        call.toggleMic();
      } else if (k === "e") {
        e.preventDefault();
        call.toggleCam();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [call]);

  const copyLink = async () => {
    try {
      await navigator.clipboard.writeText(roomLink(snap.room));
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      /* clipboard blocked: the link is visible in the address bar */
    }
  };

  const m = snap.media;
  const micOn = Boolean(m.audio) && m.micOn;
  const camOn = Boolean(m.camera) && m.camOn;
  const sharing = Boolean(m.screen);
  // Without the publish permission the camera and share buttons stay (and
  // keep focus) but do nothing, and say why.
  const pub = publishControls(snap.publish);
  const publishHintId = `${tabIds}-publish-hint`;
  const tiles = 1 + snap.peers.length;
  const cols = tiles <= 1 ? 1 : tiles <= 4 ? 2 : tiles <= 9 ? 3 : 4;

  return (
    <div className={`call${panel ? " call-with-panel" : ""}`} data-testid="call" data-status={snap.status}>
      <p className="sr-only" role="status" aria-live="polite" data-testid="announcer">
        {snap.announcement?.text ?? ""}
      </p>
      <header className="call-header">
        <Brand compact />
        <div className="call-title">
          <h1 className="room-name" title={snap.room} ref={headingRef} tabIndex={-1}>
            {snap.room}
          </h1>
          <button type="button" className="btn btn-small" onClick={copyLink} aria-live="polite">
            <LinkIcon width={16} height={16} /> {copied ? "Link copied" : "Copy invite link"}
          </button>
        </div>
        <SignalStatus status={status} />
      </header>

      <ConnectionBanner
        status={status}
        onAction={(a) => {
          if (a.kind === "camera-off" && camOn) call.toggleCam();
          else if (a.kind === "stop-share" && sharing) void toggleScreen();
        }}
        onDismiss={(b) => {
          if (b.state === "strained") call.dismissMeshLoad();
          else if (b.state === "publish-revoked" || b.state === "publish-denied") call.dismissPublish();
        }}
      />

      <main className="stage" aria-label="Participants' video">
        <div className="grid" style={{ ["--cols" as string]: cols }} data-count={tiles}>
          <VideoTile
            peerId={snap.selfId || "self"}
            name={snap.selfName}
            stream={call.mesh.local}
            trackKey={[m.audio?.id, m.camera?.id, m.screen?.id].join(",")}
            local
            audioOn={micOn}
            videoOn={sharing || camOn}
            screen={sharing}
            viewer={!snap.publish.allowed}
          />
          {snap.peers.map((p) => (
            <VideoTile
              key={`${p.id}:${p.generation}`}
              peerId={p.id}
              name={p.name || p.id}
              stream={p.stream}
              trackKey={trackKey(p.stream)}
              audioOn={p.attributes.audio !== "off"}
              videoOn={p.attributes.video !== "off"}
              screen={p.attributes.screen === "on"}
              connectionState={p.connectionState}
              presence={p.presence}
              viewer={!p.mayPublish}
            />
          ))}
        </div>
        {snap.peers.length === 0 && snap.status === "joined" && (
          <p className="alone">
            You&apos;re the only one here. Share the invite link to bring others in.
          </p>
        )}
      </main>

      {panel && (
        <aside className="panel" aria-label="Side panel">
          <div className="panel-tabs">
            <div role="tablist" aria-label="Side panel" className="panel-tablist" onKeyDown={onTabKey}>
              <button
                type="button"
                role="tab"
                id={`${tabIds}-people-tab`}
                aria-controls={`${tabIds}-people`}
                aria-selected={panel === "people"}
                tabIndex={panel === "people" ? 0 : -1}
                className="panel-tab"
                onClick={() => showPanel("people")}
              >
                People ({tiles})
              </button>
              <button
                type="button"
                role="tab"
                id={`${tabIds}-chat-tab`}
                aria-controls={`${tabIds}-chat`}
                aria-selected={panel === "chat"}
                tabIndex={panel === "chat" ? 0 : -1}
                className="panel-tab"
                onClick={() => showPanel("chat")}
              >
                Chat
              </button>
            </div>
            <button type="button" className="icon-btn" onClick={() => showPanel(null)} aria-label="Close panel">
              <CloseIcon />
            </button>
          </div>
          <div
            role="tabpanel"
            className="panel-body"
            id={`${tabIds}-${panel}`}
            aria-labelledby={`${tabIds}-${panel}-tab`}
          >
            {panel === "people" ? <PeopleList snap={snap} micOn={micOn} camOn={camOn || sharing} /> : <Chat call={call} snap={snap} />}
          </div>
        </aside>
      )}

      <nav className="controls" aria-label="Call controls">
        <button
          type="button"
          className={`ctl${micOn ? "" : " ctl-off"}`}
          onClick={() => call.toggleMic()}
          aria-keyshortcuts="Control+D"
          title={`${micOn ? "Mute" : "Unmute"} (Ctrl+D)`}
          disabled={!m.audio}
        >
          {micOn ? <MicIcon /> : <MicOffIcon />}
          <span className="ctl-label">{micOn ? "Mute" : "Unmute"}</span>
        </button>
        <button
          type="button"
          className={`ctl${camOn ? "" : " ctl-off"}`}
          onClick={() => {
            if (!pub.disabled) call.toggleCam();
          }}
          aria-keyshortcuts="Control+E"
          title={pub.hint ?? `${camOn ? "Stop video" : "Start video"} (Ctrl+E)`}
          disabled={!m.camera}
          aria-disabled={pub.disabled || undefined}
          aria-describedby={pub.disabled ? publishHintId : undefined}
          data-testid="camera-button"
        >
          {camOn ? <CamIcon /> : <CamOffIcon />}
          <span className="ctl-label">{camOn ? "Stop video" : "Start video"}</span>
        </button>
        <button
          type="button"
          className={`ctl${sharing ? " ctl-active" : ""}`}
          onClick={() => {
            if (!pub.disabled) void toggleScreen();
          }}
          title={pub.hint ?? (sharing ? "Stop sharing your screen" : "Share your screen")}
          aria-disabled={pub.disabled || undefined}
          aria-describedby={pub.disabled ? publishHintId : undefined}
          data-testid="share-button"
        >
          <ScreenIcon />
          <span className="ctl-label">{sharing ? "Stop share" : "Share"}</span>
        </button>
        {pub.hint && (
          <span id={publishHintId} className="sr-only" data-testid="publish-hint">
            {pub.hint}
          </span>
        )}
        <button
          type="button"
          className="ctl"
          onClick={() => settingsRef.current?.showModal()}
          title="Audio and video settings"
          aria-haspopup="dialog"
        >
          <SettingsIcon />
          <span className="ctl-label">Devices</span>
        </button>
        <button
          type="button"
          className={`ctl${panel === "people" ? " ctl-active" : ""}`}
          onClick={() => showPanel(panel === "people" ? null : "people")}
          aria-pressed={panel === "people"}
        >
          <PeopleIcon />
          <span className="ctl-label">People</span>
          <span className="count">{tiles}</span>
        </button>
        <button
          type="button"
          className={`ctl${panel === "chat" ? " ctl-active" : ""}`}
          onClick={() => showPanel(panel === "chat" ? null : "chat")}
          aria-pressed={panel === "chat"}
        >
          <ChatIcon />
          <span className="ctl-label">Chat</span>
          {unread > 0 && <span className="count count-alert">{unread}<span className="sr-only"> unread</span></span>}
        </button>
        <button type="button" className="ctl ctl-leave" onClick={() => call.leave()} title="Leave the call">
          <LeaveIcon />
          <span className="ctl-label">Leave</span>
        </button>
      </nav>
      {screenError && (
        <p className="toast toast-error" role="alert">
          {screenError}
        </p>
      )}

      <dialog ref={settingsRef} className="dialog" aria-labelledby="settings-title">
        <form method="dialog">
          <h2 id="settings-title">Audio and video</h2>
          <DeviceSelects media={media} />
          <div className="dialog-actions">
            <button type="submit" className="btn btn-primary">
              Done
            </button>
          </div>
        </form>
      </dialog>
    </div>
  );
}

function SignalStatus({ status }: { status: StatusView }) {
  const { state, text } = status.indicator;
  return (
    <span className={`pill pill-${state}`} data-testid="signal-status" data-state={state}>
      <span className="dot" aria-hidden="true" />
      {text}
    </span>
  );
}

/**
 * The call's one banner (see callStatus.ts); a polite live region. Advice
 * (the mesh-load warning) comes with the button that follows it and one
 * that closes it.
 */
function ConnectionBanner({
  status,
  onAction,
  onDismiss,
}: {
  status: StatusView;
  onAction: (action: BannerAction) => void;
  onDismiss: (banner: StatusBanner) => void;
}) {
  const b = status.banner;
  if (!b) return null;
  return (
    <div className={`banner banner-${b.tone}`} role="status" data-testid="connection-banner" data-state={b.state}>
      {b.busy && <span className="spinner" aria-hidden="true" />}
      <span className="banner-text">{b.text}</span>
      {(b.action || b.dismissible) && (
        <span className="banner-actions">
          {b.action && (
            <button type="button" className="btn btn-small" onClick={() => b.action && onAction(b.action)}>
              {b.action.label}
            </button>
          )}
          {b.dismissible && (
            <button type="button" className="btn btn-small" onClick={() => onDismiss(b)}>
              Dismiss
            </button>
          )}
        </span>
      )}
      {b.detail && (
        <details className="banner-details">
          <summary>Details</summary>
          <code>{b.detail}</code>
        </details>
      )}
    </div>
  );
}

function PeopleList({ snap, micOn, camOn }: { snap: CallSnapshot; micOn: boolean; camOn: boolean }) {
  const size = roomSize(1 + snap.peers.length, snap.maxParticipants);
  return (
    <>
    <p className="room-size muted" data-testid="room-size" data-full={size.full ? "true" : "false"}>
      {size.text}
      {size.fullText && (
        <>
          {" "}
          <strong className="room-full">{size.fullText}</strong>
        </>
      )}
    </p>
    <ul className="people" data-testid="people">
      <li className="person">
        <span className="person-avatar" aria-hidden="true">
          {initials(snap.selfName)}
        </span>
        <span className="person-name">
          <span>
            {snap.selfName} <span className="muted">(you{snap.publish.allowed ? "" : ", viewer"})</span>
          </span>
        </span>
        <PresenceIcons audio={micOn} video={camOn} />
      </li>
      {snap.peers.map((p) => (
        <li className="person" key={p.id} data-peer-id={p.id}>
          <span className="person-avatar" aria-hidden="true">
            {initials(p.name || p.id)}
          </span>
          <span className="person-name">
            <span>
              {p.name || p.id}
              {!p.mayPublish && <span className="muted"> (viewer)</span>}
            </span>
            <span className={`conn conn-${p.presence === "reconnecting" ? "disconnected" : p.connectionState}`}>
              {p.presence === "reconnecting" ? "reconnecting" : CONNECTION_TEXT[p.connectionState]}
            </span>
          </span>
          <PresenceIcons audio={p.attributes.audio !== "off"} video={p.attributes.video !== "off"} />
        </li>
      ))}
    </ul>
    </>
  );
}

function PresenceIcons({ audio, video }: { audio: boolean; video: boolean }) {
  return (
    <span className="presence">
      <span className={audio ? "" : "off"} title={audio ? "Microphone on" : "Microphone off"}>
        {audio ? <MicIcon width={16} height={16} /> : <MicOffIcon width={16} height={16} />}
        <span className="sr-only">{audio ? "Microphone on" : "Microphone off"}</span>
      </span>
      <span className={video ? "" : "off"} title={video ? "Camera on" : "Camera off"}>
        {video ? <CamIcon width={16} height={16} /> : <CamOffIcon width={16} height={16} />}
        <span className="sr-only">{video ? "Camera on" : "Camera off"}</span>
      </span>
    </span>
  );
}

const timeFmt = typeof Intl !== "undefined" ? new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" }) : null;

function Chat({ call, snap }: { call: Call; snap: CallSnapshot }) {
  const [draft, setDraft] = useState("");
  const inputId = useId();
  const logRef = useRef<HTMLDivElement>(null);
  const anyOpen = snap.peers.some((p) => p.chatOpen);

  useEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [snap.chat.length]);

  const send = (e: FormEvent) => {
    e.preventDefault();
    if (call.sendChat(draft)) setDraft("");
  };

  return (
    <div className="chat">
      {/* The log is the live region around the list (a list item's parent must be the list). */}
      <div className="chat-log" ref={logRef} role="log" aria-live="polite" aria-label="Chat messages" data-testid="chat-log">
        <ol className="chat-list">
          {snap.chat.length === 0 && (
            <li className="chat-empty muted">
              Messages go straight to the others in the call (peer to peer) and are not stored.
            </li>
          )}
          {snap.chat.map((msg) => (
            <li key={msg.id} className={`chat-msg${msg.mine ? " mine" : ""}`} data-testid="chat-message">
              <div className="chat-meta">
                <span className="chat-from">{msg.mine ? "You" : msg.name}</span>
                <time dateTime={new Date(msg.sentAt).toISOString()}>{timeFmt?.format(msg.sentAt)}</time>
              </div>
              <p className="chat-text">{msg.text}</p>
            </li>
          ))}
        </ol>
      </div>
      <form className="chat-form" onSubmit={send}>
        <label htmlFor={inputId} className="sr-only">
          Message
        </label>
        <input
          id={inputId}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          placeholder={anyOpen ? "Send a message to everyone" : snap.peers.length ? "Connecting chat…" : "No one to chat with yet"}
          maxLength={MAX_CHAT_CHARS}
          autoComplete="off"
        />
        <button type="submit" className="icon-btn icon-btn-primary" aria-label="Send message" disabled={!draft.trim() || !anyOpen}>
          <SendIcon />
        </button>
      </form>
    </div>
  );
}
