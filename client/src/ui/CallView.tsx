"use client";
/** The in-call screen: video grid, side panel (people, chat) and controls. */
import { useCallback, useEffect, useId, useRef, useState, useSyncExternalStore, type FormEvent } from "react";
import type { Call, CallSnapshot } from "../rtc/call";
import type { LocalMedia } from "../rtc/media";
import { MAX_CHAT_CHARS } from "../rtc/mesh";
import { Brand } from "./Brand";
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
  const [panel, setPanel] = useState<Panel>(() =>
    typeof window !== "undefined" && window.matchMedia("(min-width: 1000px)").matches ? "chat" : null,
  );
  // Messages from others seen when the chat panel was last open.
  const [seen, setSeen] = useState(0);
  const [copied, setCopied] = useState(false);
  const [screenError, setScreenError] = useState("");
  const settingsRef = useRef<HTMLDialogElement>(null);
  const received = snap.chat.filter((m) => !m.mine).length;
  const unread = panel === "chat" ? 0 : Math.max(0, received - seen);
  const showPanel = (next: Panel) => {
    if (panel === "chat" || next === "chat") setSeen(received);
    setPanel(next);
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
  const tiles = 1 + snap.peers.length;
  const cols = tiles <= 1 ? 1 : tiles <= 4 ? 2 : tiles <= 9 ? 3 : 4;

  return (
    <div className={`call${panel ? " call-with-panel" : ""}`} data-testid="call" data-status={snap.status}>
      <header className="call-header">
        <Brand compact />
        <div className="call-title">
          <h1 className="room-name" title={snap.room}>
            {snap.room}
          </h1>
          <button type="button" className="btn btn-small" onClick={copyLink} aria-live="polite">
            <LinkIcon width={16} height={16} /> {copied ? "Link copied" : "Copy invite link"}
          </button>
        </div>
        <SignalStatus snap={snap} />
      </header>

      <ConnectionBanner snap={snap} />

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
        <aside className="panel" aria-label={panel === "chat" ? "Chat" : "People"}>
          <div className="panel-tabs" role="tablist" aria-label="Side panel">
            <button
              type="button"
              role="tab"
              aria-selected={panel === "people"}
              className="panel-tab"
              onClick={() => showPanel("people")}
            >
              People ({tiles})
            </button>
            <button
              type="button"
              role="tab"
              aria-selected={panel === "chat"}
              className="panel-tab"
              onClick={() => showPanel("chat")}
            >
              Chat
            </button>
            <button type="button" className="icon-btn" onClick={() => showPanel(null)} aria-label="Close panel">
              <CloseIcon />
            </button>
          </div>
          {panel === "people" ? <PeopleList snap={snap} micOn={micOn} camOn={camOn || sharing} /> : <Chat call={call} snap={snap} />}
        </aside>
      )}

      <nav className="controls" aria-label="Call controls">
        <button
          type="button"
          className={`ctl${micOn ? "" : " ctl-off"}`}
          onClick={() => call.toggleMic()}
          aria-pressed={!micOn}
          aria-label={micOn ? "Mute microphone" : "Unmute microphone"}
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
          onClick={() => call.toggleCam()}
          aria-pressed={!camOn}
          aria-label={camOn ? "Turn camera off" : "Turn camera on"}
          aria-keyshortcuts="Control+E"
          title={`Camera ${camOn ? "off" : "on"} (Ctrl+E)`}
          disabled={!m.camera}
        >
          {camOn ? <CamIcon /> : <CamOffIcon />}
          <span className="ctl-label">{camOn ? "Stop video" : "Start video"}</span>
        </button>
        <button
          type="button"
          className={`ctl${sharing ? " ctl-active" : ""}`}
          onClick={() => void toggleScreen()}
          aria-pressed={sharing}
          aria-label={sharing ? "Stop sharing screen" : "Share screen"}
        >
          <ScreenIcon />
          <span className="ctl-label">{sharing ? "Stop share" : "Share"}</span>
        </button>
        <button
          type="button"
          className="ctl"
          onClick={() => settingsRef.current?.showModal()}
          aria-label="Audio and video settings"
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
          aria-label={`People (${tiles})`}
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
          aria-label={unread ? `Chat (${unread} unread)` : "Chat"}
        >
          <ChatIcon />
          <span className="ctl-label">Chat</span>
          {unread > 0 && <span className="count count-alert">{unread}</span>}
        </button>
        <button type="button" className="ctl ctl-leave" onClick={() => call.leave()} aria-label="Leave call">
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

function SignalStatus({ snap }: { snap: CallSnapshot }) {
  const text =
    snap.status === "joined"
      ? "Connected"
      : snap.status === "reconnecting"
        ? "Reconnecting"
        : snap.status === "connecting"
          ? "Connecting"
          : "Offline";
  return (
    <span className={`pill pill-${snap.status}`} data-testid="signal-status" data-state={snap.status}>
      <span className="dot" aria-hidden="true" />
      {text}
    </span>
  );
}

function ConnectionBanner({ snap }: { snap: CallSnapshot }) {
  if (snap.status === "reconnecting") {
    const secs = snap.retryInMs ? Math.max(1, Math.round(snap.retryInMs / 1000)) : 0;
    return (
      <div className="banner banner-warn" role="status" data-testid="connection-banner" data-state="reconnecting">
        <span className="spinner" aria-hidden="true" />
        Connection lost. Reconnecting{secs ? ` (attempt ${snap.attempt}, next try in ${secs}s)` : ""}… Your call
        continues if it comes back quickly.
      </div>
    );
  }
  if (snap.status === "connecting") {
    return (
      <div className="banner" role="status" data-testid="connection-banner" data-state="connecting">
        <span className="spinner" aria-hidden="true" />
        Joining {snap.room}…
      </div>
    );
  }
  if (snap.notice) {
    return (
      <div
        className={`banner ${snap.notice.kind === "error" ? "banner-error" : "banner-ok"}`}
        role="status"
        data-testid="connection-banner"
        data-state={snap.notice.kind}
      >
        {snap.notice.text}
      </div>
    );
  }
  return null;
}

function PeopleList({ snap, micOn, camOn }: { snap: CallSnapshot; micOn: boolean; camOn: boolean }) {
  return (
    <ul className="people" data-testid="people">
      <li className="person">
        <span className="person-avatar" aria-hidden="true">
          {initials(snap.selfName)}
        </span>
        <span className="person-name">
          <span>
            {snap.selfName} <span className="muted">(you)</span>
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
            {p.name || p.id}
            <span className={`conn conn-${p.presence === "reconnecting" ? "disconnected" : p.connectionState}`}>
              {p.presence === "reconnecting" ? "reconnecting" : CONNECTION_TEXT[p.connectionState]}
            </span>
          </span>
          <PresenceIcons audio={p.attributes.audio !== "off"} video={p.attributes.video !== "off"} />
        </li>
      ))}
    </ul>
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
  const logRef = useRef<HTMLOListElement>(null);
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
      <ol className="chat-log" ref={logRef} role="log" aria-live="polite" aria-label="Chat messages" data-testid="chat-log">
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
