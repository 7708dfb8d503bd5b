/**
 * The call's session kept in sessionStorage (this tab only), so that a
 * reload resumes it: the room sees no leave and join, and only the media is
 * set up again. It is kept under the page's room (`?r=`) even when the
 * backend moved the session to another room: the session knows that room
 * (`session.room`) and resumes there. It holds a resume token and an access token: sessionStorage
 * is per tab and per origin, and an entry is dropped when the call ends.
 */
import type { StoredSession } from "@switchboard/signaling";
import type { PublishView } from "../rtc/publishPermission";

/**
 * How long after the page went away a saved session is still tried. The
 * server's resume window is 60 s by default; a resume refused after it only
 * costs a fresh Join.
 */
export const SAVED_SESSION_MAX_AGE_MS = 55_000;

export interface SavedCall {
  /** The page's room (`?r=`): the key; the session may be in another room since (`session.room`). */
  room: string;
  name: string;
  identity: string;
  selfId: string;
  micOn: boolean;
  camOn: boolean;
  session: StoredSession;
  /** What the page knew of our publish permission (why it is withheld, a dismissed banner). */
  publish?: PublishView;
  /** When it was last written (ms since the epoch). */
  savedAt: number;
}

const key = (room: string) => `switchboard.call:${room}`;

function storage(): Storage | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null; // storage disabled
  }
}

export function saveCall(call: Omit<SavedCall, "savedAt">): void {
  try {
    storage()?.setItem(key(call.room), JSON.stringify({ ...call, savedAt: Date.now() }));
  } catch {
    /* quota or disabled: the next page joins afresh */
  }
}

export function forgetCall(room: string): void {
  storage()?.removeItem(key(room));
}

/** The saved call of this room, if recent enough to resume. */
export function loadCall(room: string, now = Date.now()): SavedCall | null {
  const raw = storage()?.getItem(key(room));
  if (!raw) return null;
  try {
    const c = JSON.parse(raw) as Partial<SavedCall>;
    const s = c.session;
    const ok =
      c.room === room &&
      typeof c.name === "string" &&
      typeof c.identity === "string" &&
      typeof c.selfId === "string" &&
      typeof c.savedAt === "number" &&
      now - c.savedAt < SAVED_SESSION_MAX_AGE_MS &&
      s !== undefined &&
      typeof s.sessionId === "string" &&
      typeof s.resumeToken === "string" &&
      typeof s.token === "string" &&
      /^\d+$/.test(s.lastSeq ?? "") &&
      /^\d+$/.test(s.nextClientSeq ?? "") &&
      (s.room === undefined || typeof s.room === "string") &&
      (s.maxParticipants === undefined || typeof s.maxParticipants === "number");
    if (ok) {
      const publish = isPublishView(c.publish) ? c.publish : undefined;
      return { micOn: true, camOn: true, ...c, publish } as SavedCall;
    }
  } catch {
    /* not ours */
  }
  forgetCall(room);
  return null;
}

function isPublishView(v: unknown): v is PublishView {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.allowed === "boolean" &&
    (o.deniedBy === null || o.deniedBy === "join" || o.deniedBy === "revoked") &&
    typeof o.dismissed === "boolean"
  );
}
