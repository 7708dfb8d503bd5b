/**
 * The call's one status model: from the signaling state, the last notice
 * and the browser's network, the single indicator (the pill in the header)
 * and at most one banner, worded for a person. Both come from the same
 * inputs here, so they cannot contradict each other ("Connected" beside
 * "can't reach the server"). Error codes never reach the words; they go to
 * `detail`, which the banner shows behind a "Details" disclosure.
 *
 * Priority, highest first: offline, reconnecting, joining, an error or
 * updates the server's message rate kept us from sending ("The call is
 * busy; ..."), a reconnection ("Reconnected."), a move to another room
 * ("You were moved to breakout-1.") or the publish permission given back
 * (these notices pass by themselves), then the publish permission withheld
 * (it lasts, so the person may dismiss it; the camera and share buttons
 * keep saying it), then the mesh-load warning (the device is not keeping
 * up with the call; see rtc/meshLoad.ts), which is advice, not trouble:
 * the indicator stays "Connected".
 */
import { closeErrorCode } from "@switchboard/signaling";
import { ErrorCode } from "@switchboard/signaling/proto";
import type { CallSnapshot } from "../rtc/call";
import type { MeshLoadWarning } from "../rtc/meshLoad";
import type { PublishView } from "../rtc/publishPermission";
import { PUBLISH_DENIED_TEXT, PUBLISH_GRANTED_TEXT, PUBLISH_REVOKED_TEXT } from "./publishControls";

export type IndicatorState = "connected" | "connecting" | "reconnecting" | "offline" | "disconnected";

export interface StatusBanner {
  /** Also the banner's data-state, for tests. */
  state:
    | "offline"
    | "reconnecting"
    | "connecting"
    | "resumed"
    | "rejoined"
    | "moved"
    | "error"
    | "busy"
    | "publish-granted"
    | "publish-revoked"
    | "publish-denied"
    | "strained";
  tone: "info" | "warn" | "ok" | "error";
  text: string;
  /** For the "Details" disclosure: codes and numbers, not for everyone. */
  detail?: string;
  busy?: boolean;
  /** A button that does what the banner advises. */
  action?: BannerAction;
  /** The person may close the banner (advice, not a problem to wait out). */
  dismissible?: boolean;
}

export interface BannerAction {
  kind: "camera-off" | "stop-share";
  label: string;
}

export interface StatusView {
  indicator: { state: IndicatorState; text: string };
  banner: StatusBanner | null;
}

type Inputs = Pick<CallSnapshot, "status" | "attempt" | "retryInMs" | "notice" | "room" | "meshLoad" | "publish">;

export function callStatus(snap: Inputs, net: { online: boolean }): StatusView {
  if (!net.online) {
    return {
      indicator: { state: "offline", text: "Offline" },
      banner: {
        state: "offline",
        tone: "warn",
        text: "You're offline. The call reconnects when your network is back.",
        busy: true,
      },
    };
  }
  switch (snap.status) {
    case "reconnecting": {
      const secs = snap.retryInMs ? Math.max(1, Math.round(snap.retryInMs / 1000)) : 0;
      return {
        indicator: { state: "reconnecting", text: "Reconnecting" },
        banner: {
          state: "reconnecting",
          tone: "warn",
          text: "Lost contact with the server. Reconnecting…",
          detail: `attempt ${snap.attempt}${secs ? `, next try in ${secs} s` : ""}`,
          busy: true,
        },
      };
    }
    case "idle":
    case "connecting":
      return {
        indicator: { state: "connecting", text: "Connecting" },
        banner: { state: "connecting", tone: "info", text: `Joining ${snap.room}…`, busy: true },
      };
    case "closed":
      return { indicator: { state: "disconnected", text: "Disconnected" }, banner: null };
    case "joined": {
      const n = snap.notice;
      const indicator = { state: "connected" as const, text: "Connected" };
      if (!n) return { indicator, banner: publishBanner(snap.publish) ?? (snap.meshLoad ? meshLoadBanner(snap.meshLoad) : null) };
      switch (n.kind) {
        case "error":
          return { indicator, banner: { state: "error", tone: "error", text: errorText(n.code), detail: n.detail } };
        case "undelivered":
          return { indicator, banner: { state: "busy", tone: "warn", text: UNDELIVERED_TEXT, detail: n.detail } };
        case "publishGranted":
          return { indicator, banner: { state: "publish-granted", tone: "ok", text: PUBLISH_GRANTED_TEXT } };
        case "resumed":
        case "rejoined":
          return { indicator, banner: { state: n.kind, tone: "ok", text: "Reconnected." } };
        case "moved":
          return { indicator, banner: { state: "moved", tone: "info", text: movedText(n.room, n.by) } };
      }
    }
  }
}

/**
 * Signaling dropped an update of ours for a message rate (the room's, or
 * this connection's) and could not send it again: a peer may not connect,
 * or others may see an old mute state. The call goes on.
 */
export const UNDELIVERED_TEXT = "The call is busy; some updates could not be sent.";

/**
 * Where we are now, after a move: the application's backend moved us, or a
 * new session (after a lost one) went back to the room the token grants.
 */
export function movedText(room: string, by: "backend" | "rejoin"): string {
  return by === "backend" ? `You were moved to ${room}.` : `Reconnected. You're back in ${room}.`;
}

/** The publish permission withheld, unless the person dismissed it. */
export function publishBanner(p: PublishView): StatusBanner | null {
  if (p.allowed || p.dismissed) return null;
  const revoked = p.deniedBy !== "join";
  return {
    state: revoked ? "publish-revoked" : "publish-denied",
    tone: "info",
    text: revoked ? PUBLISH_REVOKED_TEXT : PUBLISH_DENIED_TEXT,
    dismissible: true,
  };
}

/** The mesh-load warning in words; the measurements go to the details. */
export function meshLoadBanner(w: MeshLoadWarning): StatusBanner {
  const who = w.cause === "connection" ? "Your connection" : "This device";
  const people = w.peers === 1 ? "1 person" : `${w.peers} people`;
  const screen = w.video === "screen";
  const advice = screen ? "Stopping your screen share may help." : "Turning off your camera may help.";
  const fps = w.worstFps === null ? "frame rate not reported" : `${Math.round(w.worstFps)} fps sent`;
  const source = w.sourceFps === null ? "" : ` of ${Math.round(w.sourceFps)} captured`;
  return {
    state: "strained",
    tone: "warn",
    text: `${who} is struggling to send your video to ${people}. ${advice}`,
    detail: `${fps}${source} on the slowest of ${w.peers} connections; quality limited by ${w.limitation}`,
    action: screen ? { kind: "stop-share", label: "Stop sharing" } : { kind: "camera-off", label: "Turn off camera" },
    dismissible: true,
  };
}

/**
 * `too_many_sessions`: the same participant (this person's identity, in
 * other tabs or on other devices) is in as many calls as the server allows.
 */
const TOO_MANY_CALLS = "You're already in the maximum number of calls at once. Leave another call, then try again.";

/** What an error from the server means for the person, without its code. */
export function errorText(code: ErrorCode): string {
  switch (code) {
    case ErrorCode.rate_limited:
      return "That was too fast. Wait a moment and try again.";
    case ErrorCode.permission_denied:
      return "You're not allowed to do that in this room.";
    case ErrorCode.message_too_large:
      return "That was too large to send.";
    case ErrorCode.room_full:
      return "This room is full.";
    case ErrorCode.too_many_sessions:
      return TOO_MANY_CALLS;
    case ErrorCode.not_found:
      return "The other person is no longer in the call.";
    default:
      return "Something went wrong. Try again.";
  }
}

/** The ended screen's words for a close reason ("code: detail"). */
export function endedText(reason: string): { title: string; text: string } {
  switch (closeErrorCode(reason)) {
    case ErrorCode.session_replaced:
      return {
        title: "You joined from somewhere else",
        text: "This tab was disconnected because the same participant joined from another tab or device.",
      };
    case ErrorCode.participant_removed:
      return { title: "You were removed from the call", text: "Someone running the room removed you." };
    case ErrorCode.room_full:
      return { title: "The room is full", text: "Try again when someone has left." };
    case ErrorCode.too_many_sessions:
      return { title: "You're in too many calls", text: TOO_MANY_CALLS };
    case ErrorCode.token_expired:
    case ErrorCode.token_revoked:
    case ErrorCode.unauthenticated:
    case ErrorCode.permission_denied:
      return { title: "The call ended", text: "Your access to this room ended. Rejoin to get a new one." };
    default:
      return { title: "The call ended", text: "The connection to the server was lost and could not be restored." };
  }
}
